"""Page numbers (issue 34 item 4): a PDF's chunks keep the pages they span, and every place a citation
is shown says "p. N" / "pp. N–M" — the answer object, the source card, the Markdown download,
``--explain`` and the CLI — with a PDF URL opened at that page."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib

from rag.components import Components
from rag.ingest.index import index_articles, open_record_manager
from rag.ingest.load import load_file
from rag.schema import page_label
from rag.settings import Settings

matplotlib.use("Agg")

PAGES = {
    1: ("Harbor Safety Review", "The harbor authority inspected forty cranes along the east quay during the spring. "
        "Inspectors looked at cables, brakes and the control cabins of every crane. "),
    2: ("Dredging", "Dredging of the north channel removed one hundred twenty thousand cubic meters of silt. "
        "The dredging contractor finished two months late because winter storms stopped the barges. "),
    3: ("Budget outlook", "The authority expects to spend three point four million dollars next year. "
        "Most of that budget goes to replacing the two oldest cranes and to channel maintenance. "),
}


def make_pdf(path: Path) -> Path:
    """Three pages with a real text layer (matplotlib's PDF backend), each long enough for its own chunks."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for _n, (heading, sentences) in PAGES.items():
            body = "\n".join(textwrap.wrap(sentences * 4, 80))
            figure = plt.figure(figsize=(8.5, 11))
            figure.text(0.08, 0.92, f"{heading}\n\n{body}", va="top", fontsize=10)
            pdf.savefig(figure)
            plt.close(figure)
    return path


def test_page_labels():
    assert (page_label(0), page_label(12), page_label(12, 12), page_label(12, 13)) == ("", "p. 12", "p. 12", "pp. 12–13")


def test_every_chunk_of_a_pdf_knows_the_pages_it_spans(tmp_path, embedding_model):
    article = load_file(make_pdf(tmp_path / "harbor.pdf"))
    assert [page for _, page in article.pages] == [1, 2, 3]
    parts = Components(Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None),
                       embedding_model=embedding_model)
    chunks = parts.chunker.split(article)
    assert len(chunks) >= 3
    for chunk in chunks:
        meta = chunk.metadata
        assert 1 <= meta["page"] <= meta["page_end"] <= 3
        body = article.text[meta["start"]:meta["end"]]
        for number, (_heading, sentences) in PAGES.items():
            if sentences.split(".")[0][:40] in body:
                assert meta["page"] <= number <= meta["page_end"], (number, meta["page"], meta["page_end"])
    assert {chunk.metadata["page"] for chunk in chunks} == {1, 2, 3}


def test_a_cited_pdf_passage_says_its_page_everywhere_it_is_shown(tmp_path, embedding_model):
    from rag.answer.explain import format_trace, trace
    from rag.cli import format_answer
    from rag.web.present import at_page, passage_card, turn_markdown

    settings = Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None)
    parts = Components(settings, embedding_model=embedding_model)
    article = load_file(make_pdf(tmp_path / "harbor.pdf"))
    index_articles([article], store=parts.store(create=True), record_manager=open_record_manager(settings),
                   chunker=parts.chunker)
    answer = parts.pipeline.ask("How much silt did the dredging of the north channel remove?")
    assert not answer.refused and answer.citations, answer.answer
    cited = answer.citations[0]
    assert cited.page == 2 and cited.page_end == 2
    data = answer.to_json()
    assert data["citations"][0]["page"] == 2
    assert any(context.get("page") == 2 for context in data["contexts"])
    passage = answer.contexts[cited.n - 1]
    assert "p. 2" in passage_card(passage, cited.n, 1, cited=True)
    assert "p. 2" in turn_markdown(answer, 1)
    assert "p. 2)" in format_answer(answer)
    assert "(p. 2)" in format_trace(trace(answer))
    assert at_page("https://agency.example/reports/harbor.pdf", 2) == "https://agency.example/reports/harbor.pdf#page=2"
    assert at_page("https://agency.example/reports/harbor.html", 2) == "https://agency.example/reports/harbor.html"


def test_unpaged_articles_keep_their_fingerprints_and_chunk_ids(tmp_path, embedding_model):
    """Pages change nothing for text, Markdown and HTML: an existing index is not re-written."""
    from rag.ingest.index import article_fingerprint
    from rag.ingest.load import load_paths

    from .conftest import REPO

    [article] = load_paths([REPO / "corpus"]).articles
    assert article.pages == []
    parts = Components(Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None),
                       embedding_model=embedding_model)
    chunks = parts.chunker.split(article)
    assert all("page" not in chunk.metadata for chunk in chunks)
    # The fingerprint and chunk ids as they were computed before pages existed (2e909e9): an index
    # built then is found unchanged, not re-written.
    before = json.dumps([article.doc_id, article.title, article.text, article.date, article.author, article.source,
                         article.headings, parts.chunker.signature], ensure_ascii=False)
    assert article_fingerprint(article, parts.chunker) == hashlib.sha256(before.encode()).hexdigest()
    for chunk in chunks:
        meta = chunk.metadata
        header = chunk.page_content[:meta["body_offset"] - 2]
        identity = "\n".join([article.doc_id, f"{meta['start']}:{meta['end']}", article.author, article.source, header,
                              chunk.page_content[meta["body_offset"]:]])
        assert chunk.id == hashlib.sha256(identity.encode()).hexdigest()[:32]
