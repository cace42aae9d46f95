"""Text from scanned PDF pages: each page with no text layer is rendered (pypdfium2) and read by
Tesseract (Debian's ``tesseract-ocr``, through pytesseract). A mixed PDF has only its image pages
recognised; the pages with text keep their own.

Bounded per file: at most ``max_pages`` pages are recognised (the rest are skipped, and the log
says so) and all of them within ``timeout_s`` (Tesseract is stopped when the time is up; the pages
read by then are kept). ``RAG_OCR=false`` turns it off: a PDF without any text layer is then refused
with that reason, as before. Recognised text is marked (``Article.ocr``) and the source card says
so, since a scan's words may be misread.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass

from rag.ingest.formats import LoadError

log = logging.getLogger(__name__)

DPI = 300  # Tesseract reads body text best at 300 dpi


@dataclass(frozen=True)
class Ocr:
    max_pages: int = 50
    timeout_s: float = 600.0
    language: str = "eng"

    @classmethod
    def from_settings(cls, settings) -> Ocr | None:
        return cls(settings.ocr_max_pages, settings.ocr_timeout_s) if settings.ocr else None

    def recognise(self, data: bytes, pages: list[int], name: str = "PDF") -> dict[int, str]:
        """Page number (1-based) → recognised text, for ``pages`` of the PDF in ``data``."""
        if shutil.which("tesseract") is None:
            raise LoadError("scanned pages need OCR: install Debian's tesseract-ocr, or set RAG_OCR=false")
        import pypdfium2 as pdfium
        import pytesseract

        # Tesseract's OpenMP threads fight each other on 2 cores: 12.9 s a page by default, 3.1 s
        # with one thread (benchmarks/ocr.py). An operator's own OMP_THREAD_LIMIT is kept.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")

        if len(pages) > self.max_pages:
            log.warning("%s: %d scanned pages; recognising the first %d (RAG_OCR_MAX_PAGES)", name, len(pages),
                        self.max_pages)
            pages = pages[:self.max_pages]
        deadline = time.monotonic() + self.timeout_s
        found: dict[int, str] = {}
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise LoadError(f"broken PDF: {exc}") from None
        try:
            for done, number in enumerate(pages, 1):
                left = deadline - time.monotonic()
                if left <= 1:
                    log.warning("%s: OCR stopped after %d of %d pages (RAG_OCR_TIMEOUT_S)", name, done - 1, len(pages))
                    break
                started = time.monotonic()
                image = document[number - 1].render(scale=DPI / 72).to_pil()
                try:
                    found[number] = pytesseract.image_to_string(image, lang=self.language, timeout=left)
                except RuntimeError:  # pytesseract's timeout: Tesseract was stopped
                    log.warning("%s: OCR stopped at page %d (RAG_OCR_TIMEOUT_S)", name, number)
                    break
                log.info("%s: OCR page %d (%d of %d) in %.1f s", name, number, done, len(pages),
                         time.monotonic() - started)
        finally:
            document.close()
        return found
