"""OCR quality and cost: the shipped article rendered as scanned pages, read back by Tesseract.

    python benchmarks/ocr.py [--dpi 150] [--json]

Renders ``corpus/``'s article as image-only PDF pages (matplotlib draws the text, Pillow saves the
page images as a PDF — no text layer), indexes nothing, and reads the PDF with the product's own
loader (``rag.ingest.load.load_file`` with ``rag.ingest.ocr.Ocr``). Reports the character error
rate against the original text (Levenshtein distance over whitespace-normalised text, per page,
summed) and the seconds per page on this machine; the baseline in the same run is the same PDF
with a text layer (no OCR), whose error rate is the loader's own (0 when nothing is lost).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LINES_PER_PAGE = 46


def pages_of(text: str) -> list[str]:
    lines = [line for paragraph in text.split("\n") for line in (textwrap.wrap(paragraph, 88) or [""])]
    return ["\n".join(lines[i:i + LINES_PER_PAGE]) for i in range(0, len(lines), LINES_PER_PAGE)]


def render(pages: list[str], dpi: int, scanned: bool) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from PIL import Image

    out = io.BytesIO()
    if not scanned:
        with PdfPages(out) as pdf:
            for page in pages:
                figure = plt.figure(figsize=(8.5, 11))
                figure.text(0.06, 0.96, page, va="top", fontsize=10)
                pdf.savefig(figure)
                plt.close(figure)
        return out.getvalue()
    images = []
    for page in pages:
        figure = plt.figure(figsize=(8.5, 11), dpi=dpi)
        figure.text(0.06, 0.96, page, va="top", fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        plt.close(figure)
        images.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    images[0].save(out, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def distance(a: str, b: str) -> int:
    """Levenshtein distance, one row at a time."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normal(text: str) -> str:
    return " ".join(text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, default=150, help="resolution of the 'scanned' page images")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from rag.ingest.load import load_file
    from rag.ingest.ocr import Ocr

    [source] = sorted((REPO / "corpus").glob("*.txt"))
    pages = pages_of(source.read_text())
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, scanned in (("text layer", False), ("scanned", True)):
            path = Path(folder) / f"{name.replace(' ', '-')}.pdf"
            path.write_bytes(render(pages, args.dpi, scanned))
            started = time.perf_counter()
            article = load_file(path, ocr=Ocr())
            seconds = time.perf_counter() - started
            got = {page: [] for _, page in article.pages}
            bounds = [*article.pages, (len(article.text), 0)]
            for (start, page), (end, _next) in zip(bounds, bounds[1:], strict=False):
                got[page].append(article.text[start:end])
            errors = sum(distance(normal(truth), normal(" ".join(got.get(n, [])))) for n, truth in enumerate(pages, 1))
            reference = sum(len(normal(truth)) for truth in pages)
            results[name] = {"pages": len(pages), "cer": round(errors / reference, 4), "seconds": round(seconds, 2),
                             "s_per_page": round(seconds / len(pages), 2), "ocr": article.ocr}
    if args.json:
        print(json.dumps(results))
        return
    for name, row in results.items():
        print(f"{name:>10}: {row['pages']} pages, character error rate {row['cer']:.2%}, {row['seconds']:.1f} s "
              f"({row['s_per_page']:.2f} s/page){' — OCR' if row['ocr'] else ''}")


if __name__ == "__main__":
    main()
