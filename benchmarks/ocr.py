"""OCR quality and cost: the shipped article rendered as scanned pages, read back by Tesseract.

    python benchmarks/ocr.py [--dpi 150] [--json]

Renders ``corpus/``'s article as pages twice — with a text layer (matplotlib's PDF) and as
image-only "scans" (the page images saved as a PDF by Pillow) — and reads them back: the text
layer with pypdf (the baseline, in the same run), the scans with ``rag.ingest.ocr.Ocr`` (pypdfium2
renders, Tesseract reads). Reports each one's character error rate against the original lines
(Levenshtein distance over whitespace-normalised text, page by page, summed) and seconds per page
on this machine, and the whole loader's time on the scanned PDF.
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
    from pypdf import PdfReader

    from rag.ingest.load import load_file
    from rag.ingest.ocr import Ocr

    [source] = sorted((REPO / "corpus").glob("*.txt"))
    pages = pages_of(source.read_text())
    reference = sum(len(normal(truth)) for truth in pages)

    def cer(found: list[str]) -> float:
        return round(sum(distance(normal(t), normal(f)) for t, f in zip(pages, found, strict=True)) / reference, 4)

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        typed, scanned = render(pages, args.dpi, False), render(pages, args.dpi, True)
        started = time.perf_counter()
        layer = [page.extract_text() or "" for page in PdfReader(io.BytesIO(typed)).pages]
        results["text layer (pypdf)"] = {"cer": cer(layer), "s_per_page": round((time.perf_counter() - started)
                                                                               / len(pages), 3)}
        started = time.perf_counter()
        read = Ocr().recognise(scanned, list(range(1, len(pages) + 1)))
        results["scanned (Tesseract)"] = {"cer": cer([read.get(n, "") for n in range(1, len(pages) + 1)]),
                                          "s_per_page": round((time.perf_counter() - started) / len(pages), 2)}
        path = Path(folder) / "scanned.pdf"
        path.write_bytes(scanned)
        started = time.perf_counter()
        article = load_file(path, ocr=Ocr())
        results["scanned, whole loader"] = {"s_per_page": round((time.perf_counter() - started) / len(pages), 2),
                                            "ocr": article.ocr, "chars": len(article.text)}
    if args.json:
        print(json.dumps({"pages": len(pages), "dpi": args.dpi, **results}))
        return
    print(f"{len(pages)} pages of {source.name}, scanned at {args.dpi} dpi")
    for name, row in results.items():
        error = f"character error rate {row['cer']:.2%}, " if "cer" in row else ""
        print(f"  {name:<22} {error}{row['s_per_page']:.2f} s/page")


if __name__ == "__main__":
    main()
