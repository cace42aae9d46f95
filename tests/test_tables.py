"""Tables as tables (issue 34 item 3): rows of ``cell | cell`` in PDF (pdfplumber), DOCX, ODT and
HTML, the header row in every chunk that carries part of a table, and — with the real local model —
a question about one figure of a table answered and cited to its row."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from rag.components import Components
from rag.ingest.formats import parse_html
from rag.ingest.load import load_file
from rag.ingest.tables import ROWS_PER_BLOCK, table_blocks
from rag.settings import Settings

matplotlib.use("Agg")

FUNDING = [["Program", "2022", "2023", "2024"], ["Broadband grants", "$1.1M", "$1.2M", "$1.5M"],
           ["Water systems", "$0.3M", "$0.4M", "$0.7M"], ["Road repair", "$2.0M", "$2.1M", "$2.4M"]]


def funding_pdf(path: Path, rows: list[list[str]] = FUNDING) -> Path:
    """A report page with a ruled table (matplotlib draws its cell borders as lines)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        figure = plt.figure(figsize=(8.5, 11))
        figure.text(0.08, 0.95, "Rural Infrastructure Funding Report\n\nThe state funds programs for rural towns. "
                    "The table below lists\nthe yearly amounts appropriated for each program.", va="top", fontsize=11)
        axes = figure.add_axes([0.08, 0.1, 0.84, 0.6])
        axes.axis("off")
        table = axes.table(cellText=rows[1:], colLabels=rows[0], loc="upper center", cellLoc="left")
        table.set_fontsize(10)
        pdf.savefig(figure)
        plt.close(figure)
    return path


def test_table_blocks_repeat_the_header_over_each_group_of_rows():
    rows = [["Site", "Score"], *([f"Site {n}", str(n)] for n in range(1, 15))]
    blocks = table_blocks(rows)
    assert len(blocks) == 3 and all(block.startswith("Site | Score\n") for block in blocks)
    assert blocks[0].splitlines()[1:] == [f"Site {n} | {n}" for n in range(1, ROWS_PER_BLOCK + 1)]
    assert table_blocks([["A", "A", "B"], ["", "", ""], ["x", "y", "z"]]) == ["A | B\nx | y | z"], "merged, empty"
    assert table_blocks([]) == []


def test_a_pdf_table_comes_out_as_rows_whose_figures_differ_only_by_row(tmp_path):
    article = load_file(funding_pdf(tmp_path / "funding.pdf"))
    lines = article.text.splitlines()
    for row in FUNDING:
        assert " | ".join(row) in lines, row
    assert "Broadband grants $1.1M" not in article.text, "no run of cells from the text layer"
    assert "rural towns" in article.text


def test_an_html_table_comes_out_as_rows():
    parsed = parse_html("<html><body><article><h1>Funding</h1><p>Yearly amounts per program.</p><table>"
                        "<thead><tr><th>Program</th><th>2023</th><th>2024</th></tr></thead><tbody>"
                        "<tr><td>Broadband grants</td><td>$1.2M</td><td>$1.5M</td></tr>"
                        "<tr><td>Water systems</td><td><p>$0.4M</p></td><td>$0.7M</td></tr></tbody></table>"
                        "</article></body></html>")
    assert ("para", "Program | 2023 | 2024\nBroadband grants | $1.2M | $1.5M\nWater systems | $0.4M | $0.7M") \
        in parsed.blocks


def test_every_chunk_with_part_of_a_long_table_carries_its_header(tmp_path, embedding_model):
    rows = [["County", "Miles of road", "Bridges", "Budget 2024"],
            *([f"County number {n}", f"{100 + n} miles", f"{n} bridges", f"${n}.{n}M"] for n in range(1, 41))]
    article = load_file(funding_pdf(tmp_path / "counties.pdf", rows))
    chunks = Components(Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None),
                        embedding_model=embedding_model).chunker.split(article)
    with_rows = [c for c in chunks if "County number" in c.page_content]
    assert len(with_rows) >= 3
    for chunk in with_rows:
        assert "County | Miles of road | Bridges | Budget 2024" in chunk.page_content
    found = "\n".join(c.page_content for c in with_rows)
    assert all(f"County number {n} | " in found for n in range(1, 41)), "no row lost"


@pytest.mark.slow
def test_the_real_local_model_answers_a_table_figure_cited_to_its_row(tmp_path, embedding_model):
    from .test_local_llm import local_model_over

    folder = tmp_path / "reports"
    folder.mkdir()
    funding_pdf(folder / "funding.pdf")
    parts = local_model_over(tmp_path, embedding_model, [folder])
    answer = parts.pipeline.ask("What was the 2024 figure for water systems?")  # the issue's own wording
    assert answer.llm == "local/qwen2.5-coder-1.5b"
    assert not answer.refused and "0.7" in answer.answer, answer.answer
    assert any("Water systems | $0.3M | $0.4M | $0.7M" in c.text for c in answer.citations), answer.citations
    assert "$0.4M" not in answer.answer.replace("$0.4M | $0.7M", ""), "not the 2023 figure of the same row"


def test_the_model_is_shown_a_table_row_with_its_header_one_row_per_line():
    from rag.answer.context import focus, passage_units
    from rag.schema import Passage

    rows = [["County", "Bridges", "Budget 2024"], *([f"County {n}", f"{n} bridges", f"${n}.5M"] for n in range(1, 7))]
    text = "Counties report their bridges each spring.\n\n" + table_blocks(rows)[0]
    units = passage_units(text)
    assert units[1] == ("County | Bridges | Budget 2024", "") and units[5] == ("County 4 | 4 bridges | $4.5M",
                                                                                "County | Bridges | Budget 2024")
    passage = Passage(chunk_id="c", doc_id="d", title="Bridges", text=text, dense_score=0.5)
    [shown] = focus("How many bridges does County 4 have?", [passage], None, budget_tokens=20, max_passages=1)
    # The header, then (rows skipped: "…") the row asked about, each on its own line.
    assert shown.shown == "County | Bridges | Budget 2024\n… County 4 | 4 bridges | $4.5M", shown.shown
