"""Stage 1a — formats: the bytes of one file (or fetched page) in, its text blocks and metadata out.

``.txt``/``.md`` (a first-line title and ``Date:``/``Source:``/``Author:`` header lines, Markdown
headings, lists and links), ``.html`` (meta tags; only the text a reader would see) and ``.pdf``
(document info; its text layer). Bytes are decoded as UTF-8 or the most likely legacy encoding.
Anything that cannot become text — binary, undecodable, broken, encrypted — raises ``LoadError``
with the reason. ``rag.ingest.clean`` turns the ``Parsed`` result into an ``Article``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

from rag.ingest.tables import pdf_tables, table_blocks


class LoadError(Exception):
    """A file that cannot become an article; the message says why."""


# A line that ends an article rather than belonging to it (rag.ingest.clean drops it at the end).
TRAILER = re.compile(
    r"^(\d+\s+)?(comments?|leave a (comment|reply)|share( this( article| post)?)?|related( articles| posts| stories)?"
    r"|advertisement|read more|subscribe( now)?|sign up for our newsletter|tags?:.*|filed under:.*|print|email)\s*\d*$",
    re.IGNORECASE,
)


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
    pages: list[int] = field(default_factory=list)  # a paged source: each block's page number (1-based)
    ocr: bool = False  # some of the text was recognised from scanned pages (rag.ingest.ocr)


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
    meta = html_metadata(soup)
    for tag in soup(["script", "style", "noscript", "template", "iframe", "svg", "form", "nav", "footer",
                     "header", "aside", "button", "select", "input", "textarea", "object", "embed"]):
        tag.decompose()
    for tag in soup.find_all(is_hidden):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    blocks: list[tuple[str, str]] = []
    for element in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "pre", "table"]):
        if element.find_parent(["p", "li", "blockquote", "pre", "table"]) is not None:
            continue  # nested inside a block we already take whole
        if element.name == "table":  # rows of cells (rag.ingest.tables), the header row repeated
            rows = [[cell.get_text(" ") for cell in row.find_all(["th", "td"])] for row in element.find_all("tr")]
            blocks += [("para", block) for block in table_blocks(rows)]
            continue
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


def is_hidden(tag) -> bool:
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


def html_metadata(soup) -> dict[str, str]:
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


def parse_pdf(data: bytes, ocr=None, name: str = "PDF") -> Parsed:
    """PDF: document info for metadata; page text treated as hard-wrapped plain text. ``ocr``
    (``rag.ingest.ocr.Ocr``, or None: off) reads the pages that have no text layer."""
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
    scanned = [n for n, page in enumerate(pages, 1) if len(page.strip()) < MIN_PAGE_TEXT]
    recognised = ocr.recognise(data, scanned, name) if ocr is not None and scanned else {}  # name: for its log lines
    for number, text in recognised.items():
        pages[number - 1] = text
    text = "\n\n".join(pages)
    if not text.strip():
        raise LoadError("PDF has no extractable text (scanned images need OCR: RAG_OCR=true and Debian's tesseract-ocr)"
                        if ocr is None else "PDF has no text, and OCR recognised none in its first pages")
    # Tables as rows (pdfplumber), in place of the run of cells the text layer gives for them.
    max_pages, timeout_s = (ocr.max_pages, ocr.timeout_s) if ocr else (50, 600.0)  # OCR's limits, or its defaults
    tables = {} if len(scanned) == len(pages) else pdf_tables(data, max_pages, timeout_s)
    for number, (outside, _blocks) in tables.items():
        pages[number - 1] = outside
    parsed = parse_markup("\n\n".join(pages), markdown=False)
    parsed.pages = pages_of_blocks(parsed.blocks, pages)
    for number, (_outside, blocks) in sorted(tables.items(), reverse=True):  # after the page's own text
        at = next((i for i, page in enumerate(parsed.pages) if page > number), len(parsed.blocks))
        parsed.blocks[at:at] = [("para", block) for block in blocks]
        parsed.pages[at:at] = [number] * len(blocks)
    parsed.ocr = bool(recognised and any(t.strip() for t in recognised.values()))
    title = str(info.get("/Title") or "").strip()
    parsed.title = title or parsed.title
    parsed.author = str(info.get("/Author") or "").strip() or parsed.author
    created = str(info.get("/CreationDate") or "")
    if not parsed.date and (m := re.match(r"D:(\d{4})(\d{2})(\d{2})", created)):
        parsed.date = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return parsed



MIN_PAGE_TEXT = 20  # a PDF page with less text than this is a scan


def pages_of_blocks(blocks: list[tuple[str, str]], pages: list[str]) -> list[int]:
    """The page each block starts on. Blocks were re-wrapped from the pages' text, so both are
    compared without whitespace: each block's first characters are looked for from where the
    previous block was found (a block not found keeps the previous block's page)."""
    compact, page_at = [], []
    for number, page in enumerate(pages, 1):
        squeezed = re.sub(r"\s+", "", page)
        compact.append(squeezed)
        page_at += [number] * len(squeezed)
    whole, cursor, found, page = "".join(compact), 0, [], 1
    for _kind, text in blocks:
        probe = re.sub(r"\s+", "", text)[:40]
        at = whole.find(probe, cursor) if probe else -1
        if at >= 0:
            page, cursor = page_at[at] if at < len(page_at) else page, at + len(probe)
        found.append(page)
    return found


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
