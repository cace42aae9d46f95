"""Stage 1 — load: files, folders, URLs, feeds and records in, cleaned ``Article``s out.

Formats: ``.txt``, ``.md``, ``.html``/``.htm``, ``.pdf`` (read by ``rag.ingest.formats``, cleaned by
``rag.ingest.clean``). Each file becomes one article whose id is the file's stem; a web page or
feed entry (fetched by ``rag.ingest.fetch``), one whose id comes from its URL; a ``.jsonl`` line,
one with the record's id. Files found in a folder must not lead out of it (``read_contained``).

A source that cannot be read (binary, empty, broken, undecodable) raises ``LoadError`` with the
reason; ``load_sources`` collects those and carries on with the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rag.ingest.clean import build_article
from rag.ingest.formats import (
    LoadError,
    decode_text,
    html_metadata,
    is_hidden,
    normalise_date,
    parse_html,
    parse_markup,
    parse_pdf,
)
from rag.schema import Article

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".odt"}
LIST_SUFFIXES = {".jsonl", ".urls"}  # records of articles; lists of URLs
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class LoadResult:
    articles: list[Article] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    kept: list[str] = field(default_factory=list)  # doc ids of feed entries skipped as unchanged (stay indexed)
    feed_entries: list = field(default_factory=list)  # rag.ingest.feeds.FeedEntry loaded now: remembered once indexed
    feeds: list[str] = field(default_factory=list)  # the URL sources that turned out to be feeds


def iter_files(paths: list[Path]) -> list[tuple[Path, Path | None]]:
    """Expand folders (recursively, skipping hidden entries) into ``(file, root)`` pairs of supported
    files, in stable order. ``root`` is the folder the file was found in: it must not leave it
    (``read_contained``); a file named directly has no root (the operator chose it, link or not)."""
    files: list[tuple[Path, Path | None]] = []
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if indexable_below(path, child) and child.is_file():
                    files.append((child, path))
        else:
            files.append((path, None))
    return files


def indexable_below(folder: Path, file: Path) -> bool:
    """Is ``file`` (inside ``folder``) one the loader reads? Hidden files and folders are skipped."""
    hidden = any(part.startswith(".") for part in file.relative_to(folder).parts)
    return not hidden and file.suffix.lower() in SUPPORTED_SUFFIXES | LIST_SUFFIXES


def read_contained(path: Path, root: Path | None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path``, read once, after checking that the file actually opened lies inside
    ``root`` (``None``: anywhere). A symbolic link in an indexed folder that leads out of it (to a
    ``.env``, ``/etc/passwd``) is refused; the check is made on the opened file itself, so swapping
    a link in between a check and the read cannot slip another file through."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not hang the indexer
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as file:
        opened = _opened_path(fd, path)
        if root is not None and not opened.is_relative_to(root.resolve()):
            raise LoadError("a link leading out of the indexed folder; not read")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError("not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise LoadError(f"file too large (over {limit // 1_000_000} MB)")
    return data


def _opened_path(fd: int, path: Path) -> Path:
    """Where the open file ``fd`` really is (Linux: /proc/self/fd; elsewhere: ``path`` resolved)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return path.resolve()


def file_path(path: Path) -> str:
    """How an article remembers the file it came from: absolute, folders resolved, the file's own name
    kept (a link is known by its name) — the watcher finds a deleted file's articles by it."""
    return str(Path(path).absolute().parent.resolve() / Path(path).name)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FeedLimits:
    """What one feed may cost per indexing run: one deadline for the feed and all its pages, and a
    cap on the pages fetched (the rest — new or updated entries — are fetched on the next run)."""

    seconds: float = 300.0
    pages: int = 50


def load_sources(sources: list[str], fetch: Callable[..., tuple[bytes, str]] | None = None,
                 progress: Callable[[list, int], Iterable] | None = None,
                 skip_entry: Callable[[object, str], bool] | None = None,
                 within: list[Path] | None = None, feed_limits: FeedLimits = FeedLimits(), ocr=None) -> LoadResult:
    """Load files, folders, http(s) URLs (web pages, PDFs, RSS/Atom feeds), ``.urls`` lists of
    URLs and ``.jsonl`` records. ``skip_entry(entry, doc_id)``: whether a feed entry is indexed
    and unchanged, so its page need not be fetched (``rag.ingest.feeds.SourceLog``). Files found in a
    folder must lie inside it; with ``within`` (the watcher's folders), files named directly must
    lie inside one of those folders too. ``ocr`` (``rag.ingest.ocr.Ocr``; None: off) reads scanned PDF pages.

    Every source that fails is reported with its reason in ``failures``; the rest still load.
    """
    fetch = fetch or load_url_bytes
    result = LoadResult()
    seen: dict[str, str] = {}

    def add(article: Article, origin: str) -> None:
        if article.doc_id in seen:
            result.failures.append((origin, f"duplicate document id {article.doc_id!r} (also {seen[article.doc_id]})"))
            return
        seen[article.doc_id] = origin
        result.articles.append(article)

    work: list[str | tuple[Path, Path | None]] = []  # URLs and files, expanded first so progress can count them
    for source in sources:
        if is_url(source):
            work.append(source)
        elif not Path(source).exists():
            result.failures.append((source, "no such file or folder"))
        else:
            for file, root in iter_files([Path(source)]):
                if root is None and within is not None:  # a watched folder's file: it must stay inside
                    root = next((f for f in within if Path(file_path(file)).is_relative_to(Path(f).resolve())), None)
                    if root is None:
                        result.failures.append((str(file), "outside the watched folders; not read"))
                        continue
                work.append((file, root))
    for item in progress(work, len(work)) if progress else work:
        if isinstance(item, str):
            _collect(result, item, lambda u=item: _load_web(u, fetch, result, add, skip_entry, feed_limits, ocr))
            continue
        file, root = item
        if file.suffix.lower() == ".jsonl":
            _collect(result, str(file), lambda f=file, r=root: [add(a, f"{f}:{n}") for n, a in load_jsonl(f, result, r)])
        elif file.suffix.lower() == ".urls":
            try:
                urls = read_url_list(file, root)
            except LoadError as exc:
                result.failures.append((str(file), str(exc)))
                continue
            for url in urls:
                _collect(result, url, lambda u=url: _load_web(u, fetch, result, add, skip_entry, feed_limits, ocr))
        else:
            _collect(result, str(file), lambda f=file, r=root: add(load_file(f, r, ocr), str(f)))
    return result


def _load_web(url: str, fetch: Callable[..., tuple[bytes, str]], result: LoadResult,
              add: Callable[[Article, str], None], skip_entry: Callable[[object, str], bool] | None,
              limits: FeedLimits, ocr=None) -> None:
    """A web page or PDF becomes one article; a feed, one per entry (each entry's page fetched
    through the same ``fetch``, so every hop is checked as for a pasted URL), all of it within
    the feed's ``limits``."""
    from rag.ingest.feeds import is_feed, read_feed

    deadline = time.monotonic() + limits.seconds
    body, content_type = fetch(url, deadline=deadline)
    if not is_feed(body, content_type):
        add(page_article(url, body, content_type, ocr), url)
        return
    try:
        entries = read_feed(url, body)
    except ValueError as exc:
        raise LoadError(str(exc)) from exc
    result.feeds.append(url)
    to_fetch = []
    for entry in entries:
        doc_id = url_doc_id(entry.link)
        if skip_entry is not None and skip_entry(entry, doc_id):
            result.kept.append(doc_id)
        else:
            to_fetch.append((entry, doc_id))
    for done, (entry, doc_id) in enumerate(to_fetch):
        if done == limits.pages or time.monotonic() >= deadline:
            why = (f"at most {limits.pages} pages per run" if done == limits.pages
                   else f"the feed's {limits.seconds:g} s were used up")
            # A failure, so --prune leaves the feed's articles alone; not remembered, so fetched next run.
            result.failures.append((url, f"{len(to_fetch) - done} entries left for the next run ({why})"))
            return

        def load_entry(entry=entry, doc_id=doc_id) -> None:
            add(page_article(entry.link, *fetch(entry.link, deadline=deadline), ocr), entry.link)
            result.feed_entries.append(replace(entry, doc_id=doc_id))

        _collect(result, entry.link, load_entry)


def _collect(result: LoadResult, origin: str, action: Callable[[], object]) -> None:
    try:
        action()
    except LoadError as exc:
        result.failures.append((origin, str(exc)))


def load_paths(paths: list[Path]) -> LoadResult:
    """Load every supported file under ``paths`` (``load_sources`` also takes URLs and lists)."""
    return load_sources([str(p) for p in paths])


# --- records and web pages -------------------------------------------------------------------

def load_jsonl(path: Path, result: LoadResult, root: Path | None = None) -> list[tuple[int, Article]]:
    """``{id, title, text, date, url}`` per line; a bad line is reported, the others load."""
    try:
        lines = read_contained(path, root).decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise LoadError(f"cannot read JSONL: {exc}") from exc
    articles = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not str(record.get("id", "")).strip() \
                    or not str(record.get("text", "")).strip():
                raise LoadError('each record needs a non-empty "id" and "text"')
            date = normalise_date(str(record["date"])) if record.get("date") else ""
            articles.append((number, article_from_text(
                safe_doc_id(str(record["id"])), str(record["text"]), title=str(record.get("title") or ""),
                date=date, source=str(record.get("url") or f"{path}:{number}"),
                author=str(record.get("author") or ""))))
        except json.JSONDecodeError as exc:
            result.failures.append((f"{path}:{number}", f"not JSON ({exc.msg})"))
        except LoadError as exc:
            result.failures.append((f"{path}:{number}", str(exc)))
    return articles


def read_url_list(path: Path, root: Path | None = None) -> list[str]:
    """One URL per line; blank lines and ``#`` comments ignored."""
    lines = read_contained(path, root).decode("utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def load_url_bytes(url: str, deadline: float | None = None) -> tuple[bytes, str]:
    """The strict default fetch: public hosts only (``rag.ingest.fetch``)."""
    from rag.ingest.fetch import Fetcher

    return Fetcher()(url, deadline=deadline)


def page_article(url: str, body: bytes, content_type: str, ocr=None) -> Article:
    """The article in a fetched web page (or PDF), extracted by trafilatura with its metadata."""
    doc_id = url_doc_id(url)
    if "pdf" in content_type or body.startswith(b"%PDF"):
        return build_article(doc_id, parse_pdf(body, ocr, url), fallback_source=url)
    import trafilatura
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(body), "lxml")
    meta = html_metadata(soup)
    # Hidden elements go first: trafilatura would keep text a reader never sees.
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all(is_hidden):
        tag.decompose()
    cleaned = str(soup)
    extracted = trafilatura.bare_extraction(cleaned, url=url, with_metadata=True, include_comments=False,
                                            include_tables=True, favor_precision=True)
    data = extracted.as_dict() if hasattr(extracted, "as_dict") else (extracted or {})
    if (data.get("text") or "").strip():
        parsed = parse_markup(data["text"], markdown=False)
        parsed.title = data.get("title") or meta.get("title") or parsed.title
    else:  # trafilatura found no main text: fall back to the visible blocks
        parsed = parse_html(cleaned)
    parsed.date = parsed.date or meta.get("date", "") or normalise_date(str(data.get("date") or ""))
    parsed.author = parsed.author or meta.get("author", "") or str(data.get("author") or "")
    parsed.source = url
    return build_article(doc_id, parsed, fallback_source=url)


def url_doc_id(url: str) -> str:
    """A readable, stable id: the last path segment (or host) plus a short hash of the full URL."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    segments = [p for p in parts.path.split("/") if p]
    stem = Path(segments[-1]).stem if segments else parts.netloc
    return f"{safe_doc_id(stem)[:60]}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


def safe_doc_id(value: str) -> str:
    """Ids become Chroma metadata and file-like names: letters, digits, ``-_.`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-.")
    if not cleaned:
        raise LoadError(f"cannot make a document id from {value!r}")
    return cleaned[:200]


def load_file(path: Path, root: Path | None = None, ocr=None) -> Article:
    """Read one file into a cleaned ``Article``; raises ``LoadError`` with the reason. ``root``: the
    folder it was found in, which the file (after links) must not leave."""
    if not path.exists():
        raise LoadError("no such file")
    if not path.is_file():
        raise LoadError("not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    data = read_contained(path, root)
    if not data.strip():
        raise LoadError("empty file")
    if suffix == ".pdf":
        parsed = parse_pdf(data, ocr, path.name)
    elif suffix in (".docx", ".odt"):
        from rag.ingest.documents import parse_docx, parse_odt

        parsed = parse_docx(data) if suffix == ".docx" else parse_odt(data)
    else:
        text = decode_text(data)
        parsed = parse_html(text) if suffix in {".html", ".htm"} else parse_markup(text, markdown=suffix != ".txt")
    return replace(build_article(path.stem, parsed, fallback_source=str(path.resolve())), path=file_path(path))


def article_from_text(doc_id: str, text: str, *, title: str = "", date: str = "", author: str = "",
                      source: str = "", markdown: bool = True) -> Article:
    """Build an article from text that did not come from a file (JSONL records, fetched pages)."""
    parsed = parse_markup(text, markdown=markdown)
    parsed.title = title or parsed.title
    parsed.date = date or parsed.date
    parsed.author = author or parsed.author
    parsed.source = source or parsed.source
    return build_article(doc_id, parsed, fallback_source=source)
