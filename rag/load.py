"""Stage 1 — load: files and folders in, cleaned ``Article``s out.

Formats: ``.txt``, ``.md``, ``.html``/``.htm``, ``.pdf``. Each file becomes one article whose id is
the file's stem. Metadata (title, date, author, source URL) is taken from what the file carries:
a first-line title and ``Date:``/``Source:``/``Author:`` header lines (txt/md), meta tags (HTML),
document info (PDF). Cleaning drops what is not article text: repeated paragraphs (a bio printed
twice), trailers such as a stray "Comments" line, and HTML that a reader would not see.

A file that cannot be read (binary, empty, broken, undecodable) raises ``LoadError`` with the
reason; ``load_paths`` collects those and carries on with the rest.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import stat
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rag.schema import Article

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}
LIST_SUFFIXES = {".jsonl", ".urls"}  # records of articles; lists of URLs
MAX_FILE_BYTES = 50 * 1024 * 1024


class LoadError(Exception):
    """A file that cannot become an article; the message says why."""


@dataclass
class LoadResult:
    articles: list[Article] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    kept: list[str] = field(default_factory=list)  # doc ids of feed entries skipped as unchanged (stay indexed)
    feed_entries: list = field(default_factory=list)  # rag.feeds.FeedEntry loaded now: remembered once indexed
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
                 within: list[Path] | None = None, feed_limits: FeedLimits = FeedLimits()) -> LoadResult:
    """Load files, folders, http(s) URLs (web pages, PDFs, RSS/Atom feeds), ``.urls`` lists of
    URLs and ``.jsonl`` records. ``skip_entry(entry, doc_id)``: whether a feed entry is indexed
    and unchanged, so its page need not be fetched (``rag.feeds.SourceLog``). Files found in a
    folder must lie inside it; with ``within`` (the watcher's folders), files named directly must
    lie inside one of those folders too.

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
            _collect(result, item, lambda u=item: _load_web(u, fetch, result, add, skip_entry, feed_limits))
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
                _collect(result, url, lambda u=url: _load_web(u, fetch, result, add, skip_entry, feed_limits))
        else:
            _collect(result, str(file), lambda f=file, r=root: add(load_file(f, r), str(f)))
    return result


def _load_web(url: str, fetch: Callable[..., tuple[bytes, str]], result: LoadResult,
              add: Callable[[Article, str], None], skip_entry: Callable[[object, str], bool] | None,
              limits: FeedLimits) -> None:
    """A web page or PDF becomes one article; a feed, one per entry (each entry's page fetched
    through the same ``fetch``, so every hop is checked as for a pasted URL), all of it within
    the feed's ``limits``."""
    from rag.feeds import is_feed, read_feed

    deadline = time.monotonic() + limits.seconds
    body, content_type = fetch(url, deadline=deadline)
    if not is_feed(body, content_type):
        add(page_article(url, body, content_type), url)
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
            add(page_article(entry.link, *fetch(entry.link, deadline=deadline)), entry.link)
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
    """The strict default fetch: public hosts only (``rag.fetch``)."""
    from rag.fetch import Fetcher

    return Fetcher()(url, deadline=deadline)


def page_article(url: str, body: bytes, content_type: str) -> Article:
    """The article in a fetched web page (or PDF), extracted by trafilatura with its metadata."""
    doc_id = url_doc_id(url)
    if "pdf" in content_type or body.startswith(b"%PDF"):
        return build_article(doc_id, parse_pdf(body), fallback_source=url)
    import trafilatura
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(body), "lxml")
    meta = _html_metadata(soup)
    # Hidden elements go first: trafilatura would keep text a reader never sees.
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for tag in soup.find_all(_is_hidden):
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


def load_file(path: Path, root: Path | None = None) -> Article:
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
        parsed = parse_pdf(data)
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


# --- decoding --------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM) first, else the most likely legacy encoding."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError("cannot decode text: not UTF-8 and no other encoding fits")
    text = str(best)
    control = sum(1 for ch in text[:4000] if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    if control > 40:
        raise LoadError("binary file (mostly control characters), not text")
    return text


# --- parsing: every format becomes title/metadata plus a list of blocks ----------------------


@dataclass
class Parsed:
    blocks: list[tuple[str, str]]  # (kind, text) with kind "heading" or "para"
    title: str = ""
    date: str = ""
    author: str = ""
    source: str = ""


# Every pattern here runs on untrusted lines of any length, so each one is linear: no two
# adjacent quantifiers can match the same characters (a 100 KB line of spaces or brackets
# must not hold the index lock; tests/test_hostile.py feeds them). Trimming is done in Python.

# "Date: 2025-01-14", "**Publication Date:** 04/21/2026", "Author(s): ..." — the value after the colon.
HEADER_LINE = re.compile(r"^[*_]*([A-Za-z][A-Za-z .()]{0,30}):[*_]*(.+)$")
HEADER_KEYS = {
    "date": "date", "published": "date", "publication date": "date", "source": "source", "url": "source",
    "author": "author", "authors": "author", "author(s)": "author", "by": "author",
}
RULE_LINE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(\S.*)$")  # the text: trailing "#"s are trimmed by _heading_text
LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)])\s+")
MD_LINK = re.compile(r"!\[[^\[\]]*\]\([^()]*\)|\[([^\[\]]+)\]\((?:[^()]|\([^()]*\))*\)")


def parse_markup(text: str, *, markdown: bool) -> Parsed:
    """Plain text or Markdown: a title line, optional header lines, then paragraphs and headings."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    parsed = Parsed(blocks=[])
    body_start = _read_header(lines, parsed, markdown)
    for chunk in _split_blank_lines(lines[body_start:]):
        for kind, block in _blocks_of(chunk, markdown):
            if kind == "heading" and not parsed.title and not parsed.blocks:
                parsed.title = block
            else:
                parsed.blocks.append((kind, block))
    return parsed


def _read_header(lines: list[str], parsed: Parsed, markdown: bool) -> int:
    """Consume a leading title and ``Key: value`` lines; return the index where the body starts."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines):
        first = lines[i].strip()
        heading = MD_HEADING.match(first) if markdown else None
        if heading:
            parsed.title, i = _strip_inline(_heading_text(heading)), i + 1
        elif _looks_like_heading(first) and not HEADER_LINE.match(first):
            parsed.title, i = first, i + 1
    # Header lines may follow the title, separated by blank lines.
    j = i
    while j < len(lines) and j < i + 12:
        line = lines[j].strip()
        if not line:
            j += 1
            continue
        match = HEADER_LINE.match(line)
        if RULE_LINE.match(line):
            j += 1
            i = j
            continue
        # A header line is "Key: value" with a short key; "Date" etc. are kept, the rest skipped.
        if not match or (match.group(1).strip().lower() not in HEADER_KEYS and not line.startswith("*")):
            break
        key, value = HEADER_KEYS.get(match.group(1).strip().lower()), match.group(2).strip()
        if key == "date":
            parsed.date = parsed.date or normalise_date(value)
        elif key == "source":
            parsed.source = parsed.source or value
        elif key == "author":
            parsed.author = parsed.author or value
        j += 1
        i = j
    return i


def _split_blank_lines(lines: list[str]) -> list[list[str]]:
    chunks, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def _blocks_of(lines: list[str], markdown: bool) -> list[tuple[str, str]]:
    """One blank-line-separated chunk of lines to blocks.

    Hard-wrapped paragraphs (short lines) are joined; files that put one paragraph per line
    (long lines, no blank lines — like the shipped article) keep each line as its own block.
    """
    one_paragraph_per_line = max(len(line) for line in lines) > 160 or len(lines) == 1
    blocks: list[tuple[str, str]] = []
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            blocks.append(("para", _strip_inline(" ".join(s.strip() for s in buffer)) if markdown else
                           " ".join(s.strip() for s in buffer)))
            buffer.clear()

    for line in lines:
        stripped = line.strip()
        if markdown and (RULE_LINE.match(stripped) or _is_link_list(stripped)):
            flush()
            continue
        heading = MD_HEADING.match(stripped) if markdown else None
        if TRAILER.match(stripped):  # "Comments", "Share": never part of a paragraph
            flush()
            blocks.append(("para", stripped))
        elif heading:
            flush()
            blocks.append(("heading", _strip_inline(_heading_text(heading))))
        elif markdown and (LIST_ITEM.match(line) or stripped.startswith("|")):
            flush()
            buffer.append(stripped)
        elif one_paragraph_per_line:
            flush()
            if _looks_like_heading(stripped) and len(lines) > 1:
                blocks.append(("heading", stripped))
            else:
                buffer.append(stripped)
                flush()
        else:
            buffer.append(stripped)
    flush()
    return [(kind, _collapse_spaces(text)) for kind, text in blocks if text.strip()]


def _heading_text(match: re.Match) -> str:
    """"## Title ##" → "Title" (closing hashes only count after a space, as in CommonMark)."""
    text = match.group(2).strip()
    without = text.rstrip("#")
    if without != text and (not without or without[-1] in " \t"):
        text = without.strip()
    return text


def _is_link_list(line: str) -> bool:
    """A line that is mostly Markdown links (breadcrumbs, share bars): navigation, not text."""
    links = MD_LINK.findall(line)
    return len(links) >= 3 and len(MD_LINK.sub("", line).strip(" >|/·-")) < 0.2 * len(line)


def _looks_like_heading(line: str) -> bool:
    """A short line without sentence punctuation at its end, starting with a capital."""
    words = line.split()
    return (
        2 <= len(words) <= 16
        and len(line) <= 110
        and line[0].isupper()
        and line[-1] not in '.!?;:,"”’)'
    )


def _strip_inline(text: str) -> str:
    """Markdown links to their text; images dropped; entities decoded. Emphasis and inline HTML stay."""
    return html.unescape(MD_LINK.sub(lambda m: m.group(1) or "", text))


PUNCTUATION_RUN = re.compile(r"([^\w\s])\1{16,}")


def _collapse_spaces(text: str) -> str:
    """Runs of spaces to one; decoration runs ("=====", 100 KB of "[") to 16 characters, which
    also spares the chunker from splitting a run character by character."""
    text = PUNCTUATION_RUN.sub(lambda m: m.group(1) * 16, text)
    return re.sub(r"[ \t\u00a0\u2009\u202f]+", " ", text).strip()


def parse_html(html: str) -> Parsed:
    """HTML: metadata from meta tags; text from the visible article body only.

    Scripts, styles, navigation and anything hidden from a reader (``hidden``, ``display:none``,
    ``aria-hidden``) are removed first: hidden text is a classic prompt-injection carrier.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    if soup.find() is None:
        raise LoadError("broken HTML: no elements found")
    meta = _html_metadata(soup)
    for tag in soup(["script", "style", "noscript", "template", "iframe", "svg", "form", "nav", "footer",
                     "header", "aside", "button", "select", "input", "textarea", "object", "embed"]):
        tag.decompose()
    for tag in soup.find_all(_is_hidden):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks: list[tuple[str, str]] = []
    for element in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "pre", "td"]):
        if element.find_parent(["p", "li", "blockquote", "pre", "td"]) is not None:
            continue  # nested inside a block we already take whole
        text = _collapse_spaces(element.get_text(" "))
        if not text:
            continue
        kind = "heading" if element.name and element.name[0] == "h" and element.name[1:].isdigit() else "para"
        blocks.append((kind, text))
    if not blocks:  # no block elements: take the visible text by lines
        text = root.get_text("\n")
        blocks = [("para", _collapse_spaces(line)) for line in text.split("\n") if line.strip()]
    title = meta.get("title", "")
    if blocks and blocks[0][0] == "heading" and (not title or blocks[0][1] in title or title in blocks[0][1]):
        title = title or blocks[0][1]
        blocks = blocks[1:]
    return Parsed(blocks=blocks, title=title, date=meta.get("date", ""), author=meta.get("author", ""),
                  source=meta.get("source", ""))


def _is_hidden(tag) -> bool:
    if tag.attrs is None:
        return False
    style = (tag.get("style") or "").replace(" ", "").lower()
    return (
        tag.has_attr("hidden")
        or tag.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
        or "font-size:0" in style
    )


def _html_metadata(soup) -> dict[str, str]:
    def meta(*names: str) -> str:
        for name in names:
            tag = soup.find("meta", attrs={"property": name}) or soup.find("meta", attrs={"name": name})
            if tag and tag.get("content", "").strip():
                return tag["content"].strip()
        return ""

    title = meta("og:title", "twitter:title", "dc.title") or (soup.title.get_text(strip=True) if soup.title else "")
    date = meta("article:published_time", "date", "dc.date", "pubdate", "og:published_time")
    if not date and (time_tag := soup.find("time", attrs={"datetime": True})):
        date = time_tag["datetime"]
    canonical = soup.find("link", attrs={"rel": "canonical"})
    source = meta("og:url") or (canonical.get("href", "") if canonical else "")
    return {"title": title, "date": normalise_date(date) if date else "", "author": meta("author", "article:author", "dc.creator"),
            "source": source}


def parse_pdf(data: bytes) -> Parsed:
    """PDF: document info for metadata; page text treated as hard-wrapped plain text."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("encrypted PDF: decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"broken PDF: {exc}") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise LoadError("PDF has no extractable text (scanned images need OCR first)")
    parsed = parse_markup(text, markdown=False)
    title = str(info.get("/Title") or "").strip()
    parsed.title = title or parsed.title
    parsed.author = str(info.get("/Author") or "").strip() or parsed.author
    created = str(info.get("/CreationDate") or "")
    if not parsed.date and (m := re.match(r"D:(\d{4})(\d{2})(\d{2})", created)):
        parsed.date = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return parsed


# --- cleaning --------------------------------------------------------------------------------

TRAILER = re.compile(
    r"^(\d+\s+)?(comments?|leave a (comment|reply)|share( this( article| post)?)?|related( articles| posts| stories)?"
    r"|advertisement|read more|subscribe( now)?|sign up for our newsletter|tags?:.*|filed under:.*|print|email)\s*\d*$",
    re.IGNORECASE,
)
AUTHOR_BIO = re.compile(r"^((?:[A-Z][\w'’.\-]+\s){1,3}[A-Z][\w'’.\-]+) (?:is|was) (?:an?|the) ")


def build_article(doc_id: str, parsed: Parsed, *, fallback_source: str) -> Article:
    blocks = _drop_trailers(_drop_repeats(parsed.blocks))
    if not any(kind == "para" for kind, _ in blocks):
        raise LoadError("no article text found")
    author = parsed.author
    # An author bio at the end ("Jane Doe is a ...") names the author and becomes its own
    # section, so "who wrote this?" can find it.
    for i in range(max(0, len(blocks) - 2), len(blocks)):
        kind, text = blocks[i]
        if kind == "para" and (m := AUTHOR_BIO.match(text)) and (not author or author in text):
            author = author or m.group(1)
            if i == 0 or blocks[i - 1][0] != "heading":
                blocks.insert(i, ("heading", "About the author"))
            break
    text_parts: list[str] = []
    headings: list[tuple[int, int, str]] = []
    offset = 0
    for kind, block in blocks:
        if kind == "heading":
            headings.append((offset, offset + len(block), block))
        text_parts.append(block)
        offset += len(block) + 2
    title = parsed.title or _first_words(blocks[0][1])
    return Article(doc_id=doc_id, title=title, text="\n\n".join(text_parts), date=parsed.date, author=author,
                   source=parsed.source or fallback_source, headings=headings)


def _normal_key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def _drop_repeats(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop a paragraph repeated verbatim, or repeated as a prefix of an earlier one (bio printed twice)."""
    kept: list[tuple[str, str]] = []
    seen: list[str] = []
    for kind, text in blocks:
        key = _normal_key(text)
        if kind == "para" and len(key) >= 60 and any(key == old or old.startswith(key) for old in seen):
            continue
        if kind == "para" and len(key) >= 60:
            seen.append(key)
        kept.append((kind, text))
    return kept


def _drop_trailers(blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    while blocks and len(blocks[-1][1]) <= 60 and (TRAILER.match(blocks[-1][1]) or blocks[-1][0] == "heading"):
        blocks = blocks[:-1]
    return blocks


def _first_words(text: str, n: int = 10) -> str:
    words = text.split()
    return " ".join(words[:n]) + ("…" if len(words) > n else "")


def normalise_date(value: str) -> str:
    """Any common date spelling to ISO ``YYYY-MM-DD``; "" when it is not a date."""
    from dateutil import parser as date_parser

    value = value.strip()
    if m := re.match(r"^(\d{4})-(\d{2})-(\d{2})", value):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    try:
        return date_parser.parse(value, fuzzy=True).date().isoformat()
    except (ValueError, OverflowError):
        return ""
