"""Tables as tables: every format's table becomes ``cell | cell | cell`` lines, one per row, so a
figure can be found, read and cited by its row.

Rows go in groups of ``ROWS_PER_BLOCK`` under a copy of the header row, each group one block of
the article: chunks are cut at block boundaries first, so a chunk carrying part of a long table
carries its header too (what "2024" means in "Broadband | $1.2M | $1.5M"), and a chunk is still a
plain slice of the article's text. Used by ``rag.ingest.formats`` (HTML, PDF) and
``rag.ingest.documents`` (DOCX, ODT). PDF tables are found by pdfplumber, page by page, within the
same page and time limits as OCR (``RAG_OCR_MAX_PAGES``, ``RAG_OCR_TIMEOUT_S``).
"""

from __future__ import annotations

import io
import logging
import re
import time

log = logging.getLogger(__name__)

ROWS_PER_BLOCK = 6


def table_blocks(rows: list[list[str]]) -> list[str]:
    """A table's rows (the first one its header) as blocks of ``cell | cell`` lines."""
    lines = []
    for row in rows:
        cells: list[str] = []
        for cell in (re.sub(r"\s+", " ", text or "").strip() for text in row):
            if not cells or cell != cells[-1] or not cell:  # merged cells, repeated by the libraries, once
                cells.append(cell)
        if any(cells):
            lines.append(" | ".join(cells))
    if not lines:
        return []
    header, body = lines[0], lines[1:]
    if not body:
        return [header]
    return ["\n".join([header, *body[i:i + ROWS_PER_BLOCK]]) for i in range(0, len(body), ROWS_PER_BLOCK)]


def pdf_tables(data: bytes, max_pages: int, timeout_s: float) -> dict[int, tuple[str, list[str]]]:
    """Page number → (the page's text outside its tables, its tables' blocks), for the pages of
    the PDF in ``data`` on which pdfplumber finds a table with at least two rows and two columns."""
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError

    deadline = time.monotonic() + timeout_s
    found: dict[int, tuple[str, list[str]]] = {}
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for number, page in enumerate(pdf.pages[:max_pages], 1):
                if time.monotonic() > deadline:
                    log.warning("table extraction stopped at page %d (RAG_OCR_TIMEOUT_S)", number)
                    break
                tables = [(t.bbox, rows) for t in page.find_tables() if _real(rows := t.extract())]
                if not tables:
                    continue
                outside = page
                for bbox, _rows in tables:
                    outside = outside.outside_bbox(bbox)
                blocks = [block for _bbox, rows in sorted(tables, key=lambda t: t[0][1]) for block in table_blocks(rows)]
                found[number] = (outside.extract_text() or "", blocks)
    except (PDFSyntaxError, ValueError, KeyError, TypeError, OSError) as exc:  # tables are a bonus: the text stays
        log.warning("no tables read from a PDF: %s", type(exc).__name__)
    return found


def _real(rows: list[list[str | None]]) -> bool:
    """At least two rows and a row with two filled cells: a table, not a box drawn around text."""
    return len(rows) >= 2 and max((sum(1 for cell in row if cell) for row in rows), default=0) >= 2
