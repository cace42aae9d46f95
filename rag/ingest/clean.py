"""Stage 1b — clean: parsed blocks in, an ``Article`` out, without what is not article text.

Dropped: paragraphs repeated verbatim or as the start of an earlier one (a bio printed twice) and
trailers ("Comments", "Share this", "Related posts"). An author bio at the end names the author
when no byline did, and becomes its own section so "who wrote this?" can find it.
"""

from __future__ import annotations

import re

from rag.ingest.formats import TRAILER, LoadError, Parsed
from rag.schema import Article

AUTHOR_BIO = re.compile(r"^((?:[A-Z][\w'’.\-]+\s){1,3}[A-Z][\w'’.\-]+) (?:is|was) (?:an?|the) ")


def build_article(doc_id: str, parsed: Parsed, *, fallback_source: str) -> Article:
    # (kind, text, page): a paged source's page numbers (parsed.pages) stay beside their blocks.
    pages = parsed.pages if len(parsed.pages) == len(parsed.blocks) else [0] * len(parsed.blocks)
    blocks = _drop_trailers(_drop_repeats([(k, t, p) for (k, t), p in zip(parsed.blocks, pages, strict=True)]))
    if not any(kind == "para" for kind, _, _ in blocks):
        raise LoadError("no article text found")
    author = parsed.author
    # An author bio at the end ("Jane Doe is a ...") names the author and becomes its own
    # section, so "who wrote this?" can find it.
    for i in range(max(0, len(blocks) - 2), len(blocks)):
        kind, text, page = blocks[i]
        if kind == "para" and (m := AUTHOR_BIO.match(text)) and (not author or author in text):
            author = author or m.group(1)
            if i == 0 or blocks[i - 1][0] != "heading":
                blocks.insert(i, ("heading", "About the author", page))
            break
    text_parts: list[str] = []
    headings: list[tuple[int, int, str]] = []
    page_starts: list[tuple[int, int]] = []
    offset = 0
    for kind, block, page in blocks:
        if kind == "heading":
            headings.append((offset, offset + len(block), block))
        if page and (not page_starts or page_starts[-1][1] != page):
            page_starts.append((offset, page))
        text_parts.append(block)
        offset += len(block) + 2
    title = parsed.title or _first_words(blocks[0][1])
    return Article(doc_id=doc_id, title=title, text="\n\n".join(text_parts), date=parsed.date, author=author,
                   source=parsed.source or fallback_source, headings=headings, pages=page_starts, ocr=parsed.ocr)


def _normal_key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


Block = tuple[str, str, int]  # (kind, text, page: 0 when unpaged)


def _drop_repeats(blocks: list[Block]) -> list[Block]:
    """Drop a paragraph repeated verbatim, or repeated as a prefix of an earlier one (bio printed twice)."""
    kept: list[Block] = []
    seen: list[str] = []
    for kind, text, page in blocks:
        key = _normal_key(text)
        if kind == "para" and len(key) >= 60 and any(key == old or old.startswith(key) for old in seen):
            continue
        if kind == "para" and len(key) >= 60:
            seen.append(key)
        kept.append((kind, text, page))
    return kept


def _drop_trailers(blocks: list[Block]) -> list[Block]:
    while blocks and len(blocks[-1][1]) <= 60 and (TRAILER.match(blocks[-1][1]) or blocks[-1][0] == "heading"):
        blocks = blocks[:-1]
    return blocks


def _first_words(text: str, n: int = 10) -> str:
    words = text.split()
    return " ".join(words[:n]) + ("…" if len(words) > n else "")
