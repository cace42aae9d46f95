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
