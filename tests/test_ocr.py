"""Scanned PDF pages read by the real Tesseract (issue 34 item 2): a two-page PDF whose second page is
only an image of text. Skips where Debian's tesseract-ocr is absent (``.ci/run`` installs it)."""

from __future__ import annotations

import io
import shutil
import textwrap
import time
from pathlib import Path

import matplotlib
import pytest

from rag.ingest.formats import LoadError
from rag.ingest.load import load_file
from rag.ingest.ocr import Ocr

matplotlib.use("Agg")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="Debian's tesseract-ocr is not installed (.ci/run installs it)")

TYPED = ("Port Budget Review. The port authority approved a maintenance plan for the east quay. "
         "Crane inspections happen every spring and every autumn.")
SCANNED = ("The authority will replace seventeen mooring bollards on the west pier. "
           "Replacement work starts in March and costs about two million dollars.")


def page_image(text: str):
    """A page as a scanner sees it: an image of the text, no text layer."""
    import matplotlib.pyplot as plt
    from PIL import Image

    figure = plt.figure(figsize=(8.5, 11), dpi=150)
    figure.text(0.08, 0.92, "\n".join(textwrap.wrap(text, 70)), va="top", fontsize=13, family="DejaVu Sans")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    plt.close(figure)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def text_page_pdf(text: str) -> bytes:
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        figure = plt.figure(figsize=(8.5, 11))
        figure.text(0.08, 0.92, "\n".join(textwrap.wrap(text, 70)), va="top", fontsize=13)
        pdf.savefig(figure)
        plt.close(figure)
    return buffer.getvalue()


def mixed_pdf(path: Path, scanned_pages: int = 1) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(text_page_pdf(TYPED))))
    for _ in range(scanned_pages):
        image = io.BytesIO()
        page_image(SCANNED).save(image, format="PDF", resolution=150)
        writer.append(PdfReader(io.BytesIO(image.getvalue())))
    with path.open("wb") as out:
        writer.write(out)
    return path


@needs_tesseract
def test_the_scanned_page_of_a_mixed_pdf_is_recognised_marked_and_paged(tmp_path, embedding_model):
    from rag.components import Components
    from rag.settings import Settings
    from rag.web.present import passage_card

    article = load_file(mixed_pdf(tmp_path / "port.pdf"), ocr=Ocr())
    text = " ".join(article.text.split()).lower()
    assert "crane inspections happen every spring" in text, "page 1 keeps its own text layer"
    for words in ("seventeen mooring bollards", "west pier", "two million dollars"):
        assert words in text, words
    assert article.ocr and [page for _, page in article.pages] == [1, 2]
    parts = Components(Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None),
                       embedding_model=embedding_model)
    chunks = parts.chunker.split(article)
    assert all(chunk.metadata["ocr"] for chunk in chunks)
    scanned = [c for c in chunks if "bollards" in c.page_content]
    assert scanned and scanned[0].metadata["page_end"] == 2

    from rag.answer.retrieve import to_passage

    card = passage_card(to_passage(scanned[0]), 1, 1, cited=True)
    assert "text recognised from a scan — check against the original" in card and "p. " in card


@needs_tesseract
def test_ocr_is_bounded_by_pages_and_time(tmp_path):
    one_page = load_file(mixed_pdf(tmp_path / "long.pdf", scanned_pages=3), ocr=Ocr(max_pages=1))
    assert one_page.text.lower().count("bollards") == 1, "only the first scanned page was read"
    started = time.monotonic()
    with pytest.raises(LoadError, match="OCR recognised none"):
        _scan_only(tmp_path, Ocr(timeout_s=0.5))  # no time left for a page: stopped before Tesseract starts
    assert time.monotonic() - started < 10


def _scan_only(tmp_path: Path, ocr: Ocr):
    path = tmp_path / "scan-only.pdf"
    page_image(SCANNED).save(path, format="PDF", resolution=150)
    return load_file(path, ocr=ocr)


def test_with_ocr_off_a_scan_only_pdf_is_refused_and_a_mixed_one_keeps_its_text_pages(tmp_path):
    with pytest.raises(LoadError, match="no extractable text"):
        _scan_only(tmp_path, None)
    article = load_file(mixed_pdf(tmp_path / "port.pdf"), ocr=None)
    assert "Crane inspections" in article.text and "bollards" not in article.text and not article.ocr
