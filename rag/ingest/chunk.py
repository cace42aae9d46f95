"""Stage 2 — chunk: an ``Article`` in, LangChain ``Document`` chunks out.

Structure first: the article is cut at its section headings, each section is split on paragraphs,
then lines, then sentences, then words (LangChain's ``RecursiveCharacterTextSplitter``), with
lengths measured in the embedding model's own word pieces. Each chunk's ``page_content`` is a
one-line header (title, date, section) followed by a blank line and the body; the header helps
both retrievers find "the June 2026 order" and is counted against the model's limit, so no chunk
is ever silently truncated by the embedder. Metadata keys: see ``rag.schema``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date as Date

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.schema import Article

# Paragraph, line, sentence end, clause, word, character. Regexes keep the separator with the
# following piece, so every chunk is an exact slice of the article text.
SEPARATORS = [r"\n\n", r"\n", r"(?<=[.!?])\s+(?=[\"“(\[]?[A-Z0-9])", r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+", ""]


class Chunker:
    """Splits articles into chunks that fit the embedding model.

    ``count_tokens`` counts word pieces without special tokens; ``model_max_tokens`` is the
    embedding model's sequence limit (special tokens included).
    """

    def __init__(self, count_tokens: Callable[[str], int], model_max_tokens: int,
                 chunk_tokens: int = 110, overlap_tokens: int = 20) -> None:
        self.count_tokens = count_tokens
        self.model_max_tokens = model_max_tokens
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens

    @property
    def signature(self) -> str:
        """Changes whenever the same article would be cut differently."""
        return f"v1/{self.model_max_tokens}/{self.chunk_tokens}/{self.overlap_tokens}/{SEPARATORS}"

    def split(self, article: Article) -> list[Document]:
        chunks: list[Document] = []
        for section, start, end in sections_of(article):
            header = chunk_header(article, section)
            # Two for [CLS]/[SEP]; the header and the blank line after it share the window.
            room = self.model_max_tokens - 2 - self.count_tokens(header + "\n\n")
            body_tokens = max(16, min(self.chunk_tokens, room))
            splitter = RecursiveCharacterTextSplitter(
                separators=SEPARATORS, is_separator_regex=True, keep_separator="start",
                chunk_size=body_tokens, chunk_overlap=min(self.overlap_tokens, body_tokens // 3),
                length_function=self.count_tokens, strip_whitespace=True,
            )
            cursor = start
            for body in splitter.split_text(article.text[start:end]):
                for piece in self._enforce_limit(body, room):
                    # Pieces come in order and overlap a little: search from just after the
                    # previous piece's start so a repeated sentence maps to the right place.
                    body_start = article.text.find(piece, cursor, end)
                    if body_start < 0:  # cannot happen for exact slices; never guess a span
                        raise ValueError(f"chunk of {article.doc_id} is not a slice of its text")
                    cursor = body_start + 1
                    chunks.append(make_chunk(article, section, header, piece, body_start))
        return chunks

    def _enforce_limit(self, body: str, room: int) -> list[str]:
        """The splitter's size is a target; cut anything still over the hard limit between words.

        Pieces are exact slices of ``body`` (never re-joined), so spans stay true.
        """
        if self.count_tokens(body) <= room:
            return [body]
        pieces: list[str] = []
        start = end = None
        for word in re.finditer(r"\S+", body):
            if start is not None and self.count_tokens(body[start:word.end()]) > room:
                pieces.append(body[start:end])
                start = None
            if start is None:
                start = word.start()
            end = word.end()
        if start is not None:
            pieces.append(body[start:end])
        return pieces


def sections_of(article: Article) -> list[tuple[str, int, int]]:
    """(heading, start, end) of the text under each heading; the heading line itself excluded."""
    bounds: list[tuple[str, int, int]] = []
    previous_end, previous_heading = 0, ""
    for h_start, h_end, heading in article.headings:
        bounds.append((previous_heading, previous_end, h_start))
        previous_end, previous_heading = h_end, heading
    bounds.append((previous_heading, previous_end, len(article.text)))
    return [(h, s, e) for h, s, e in bounds if article.text[s:e].strip()]


def chunk_header(article: Article, section: str) -> str:
    parts = [article.title]
    if article.date:
        parts.append(f"({readable_date(article.date)})")
    header = " ".join(parts)
    if section and section != article.title:
        header += f" — {section}"
    return " ".join(header.split())  # one line, always


def readable_date(iso: str) -> str:
    """"2025-01-14" -> "January 14, 2025": how people write dates in questions."""
    try:
        return Date.fromisoformat(iso).strftime("%B %-d, %Y")
    except ValueError:
        return iso


def date_number(iso: str) -> int:
    """"2025-01-14" -> 20250114 (0 when unknown): Chroma range filters need numbers."""
    digits = iso.replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def make_chunk(article: Article, section: str, header: str, body: str, start: int) -> Document:
    end = start + len(body)
    pages = pages_spanned(article.pages, start, end)
    # Everything a chunk carries goes into its id, so a changed title, author or position is
    # re-written by the indexer instead of being skipped as "unchanged".
    identity = "\n".join([article.doc_id, f"{start}:{end}", article.author, article.source, header, body,
                          *([f"pages {pages[0]}-{pages[1]}"] if pages else []), *(["ocr"] if article.ocr else [])])
    chunk_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return Document(
        id=chunk_id,
        page_content=f"{header}\n\n{body}",
        metadata={
            "doc_id": article.doc_id, "title": article.title, "section": section, "date": article.date,
            "date_num": date_number(article.date), "author": article.author, "source": article.source,
            "start": start, "end": end, "chunk_id": chunk_id, "body_offset": len(header) + 2,
            **({"page": pages[0], "page_end": pages[1]} if pages else {}),
            **({"ocr": True} if article.ocr else {}),
        },
    )


def pages_spanned(page_starts: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """(first page, last page) of the text ``[start, end)`` of a paged article; None when unpaged."""
    if not page_starts:
        return None
    first = last = page_starts[0][1]
    for offset, page in page_starts:
        if offset <= start:
            first = page
        if offset < end:
            last = page
    return first, max(first, last)


def chunk_body(doc: Document) -> str:
    """The chunk's own text, without the header line."""
    return doc.page_content[doc.metadata.get("body_offset", 0):]
