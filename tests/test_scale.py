"""More chunks than one SQLite statement can address, through the real write path.

40,000 chunks — beyond SQLite's 32,766 variables per statement, where the in-memory BM25 that
read the whole collection in one ``get()`` stopped answering — indexed by ``index_articles``
with stand-in vectors (``rag.quality.synthetic``), then asked in hybrid mode, with and without a filter.
"""

from __future__ import annotations

import pytest

from .conftest import SHARED

pytestmark = pytest.mark.slow
SCIFACT = SHARED / "datasets" / "scifact"


@pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/datasets/scifact")
def test_hybrid_answers_over_40k_chunks(tmp_path, embedding_model):
    from rag.answer.retrieve import Filters
    from rag.components import Components
    from rag.ingest.index import index_articles, open_record_manager
    from rag.quality.synthetic import StandInEmbeddings, scifact_texts, synthetic_articles
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", llm="extractive", _env_file=None)
    parts = Components(settings, embedding_model=embedding_model)
    texts = scifact_texts(SCIFACT)
    records, store = open_record_manager(settings), parts.store(create=True)
    written = 0
    for first in range(0, 16_000, 4_000):
        written += index_articles(synthetic_articles(texts, 4_000, start=first), store=store,
                                  embeddings=StandInEmbeddings(), record_manager=records, chunker=parts.chunker,
                                  batch_size=1000).chunks_written
    assert written > 32_766 + 1_000 and store._collection.count() == written

    title, abstract = texts[123]
    question = " ".join(abstract.split()[:25])  # words only that abstract (and its repeats) holds
    answer = parts.pipeline.ask(question)
    assert answer.contexts and not answer.refused, answer
    assert {p.doc_id for p in answer.contexts[:3]} & {f"syn-{n}" for n in range(123, 16_000, len(texts))}

    dated = [a for a in synthetic_articles(texts, 4_000) if a.date.startswith("2019")]
    only_2019 = Filters(date_from="2019-01-01", date_to="2019-12-31")
    passages = parts.retriever.invoke(question, filters=only_2019)
    assert passages and all(p.metadata["date"].startswith("2019") for p in passages) and dated


def test_a_record_database_without_full_text_search_keeps_dense_retrieval_and_says_what_hybrid_needs():
    from types import SimpleNamespace

    from rag.ingest.lexical import LexicalIndexError, NoLexicalIndex, open_lexical_index

    lexical = open_lexical_index(SimpleNamespace(dialect=SimpleNamespace(name="mysql")), "chroma/articles")
    assert isinstance(lexical, NoLexicalIndex)
    lexical.add(["a"], ["text"], [{}])  # the indexer's writes are no-ops: dense indexing goes on
    with pytest.raises(LexicalIndexError, match="RAG_RETRIEVAL_MODE=dense"):
        lexical.search("question", 5)
