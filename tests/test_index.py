"""Indexing into a real Chroma (temp dir): incremental, model-checked, listable, removable."""

import pytest

from rag.components import Components
from rag.index import index_articles, list_articles, open_record_manager, remove_articles
from rag.load import load_paths
from rag.store import IndexMismatchError, StoreError, open_store


def run_index(parts: Components, corpus_dir, prune: bool = False):
    return index_articles(load_paths([corpus_dir]).articles, store=parts.store(create=True),
                          record_manager=open_record_manager(parts.settings), chunker=parts.chunker, prune=prune)


def test_first_run_adds_rerun_skips_change_updates_prune_removes(settings, embedding_model, corpus_dir):
    parts = Components(settings, embedding_model=embedding_model)
    first = run_index(parts, corpus_dir)
    assert sorted(first.added) == ["harbour-tolls", "library-hours", "solar-schools"]
    total = parts.store()._collection.count()
    assert total == first.chunks_written > 0

    again = run_index(parts, corpus_dir)
    assert len(again.unchanged) == 3 and again.chunks_written == 0 and again.chunks_deleted == 0

    path = corpus_dir / "library-hours.txt"
    path.write_text(path.read_text().replace("18 percent", "25 percent"))
    (corpus_dir / "solar-schools.html").unlink()
    changed = run_index(parts, corpus_dir, prune=True)
    assert changed.updated == ["library-hours"] and changed.removed == ["solar-schools"]
    texts = parts.store().get()["documents"]
    assert any("25 percent" in t for t in texts) and not any("18 percent" in t for t in texts)
    assert {r["doc_id"] for r in list_articles(parts.store())} == {"harbour-tolls", "library-hours"}


def test_docs_listing_and_remove(indexed):
    rows = {r["doc_id"]: r for r in list_articles(indexed.store())}
    assert rows["solar-schools"]["title"] == "Solar Panels for Every School" and rows["solar-schools"]["chunks"] >= 1
    removed = remove_articles(["solar-schools", "nope"], store=indexed.store(),
                              record_manager=open_record_manager(indexed.settings))
    assert removed["solar-schools"] >= 1 and removed["nope"] == 0
    assert "solar-schools" not in {r["doc_id"] for r in list_articles(indexed.store())}


def test_lexical_index_sees_reindexed_articles_without_restart(indexed, corpus_dir):
    retriever = indexed.retriever
    assert not retriever.lexical.search("zeppelin", 5)
    (corpus_dir / "zeppelin.md").write_text("# Zeppelin Port\n\nA zeppelin mooring mast opened at the harbour.\n")
    run_index(indexed, corpus_dir)
    assert retriever.lexical.search("zeppelin", 5), "the BM25 side refreshed itself after the re-index"


def test_opening_an_index_with_another_embedding_model_is_a_clear_error(indexed):
    other = indexed.embedding_model.__class__(name="other-model", embeddings=indexed.embedding_model.embeddings,
                                              dimension=768, max_tokens=512)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        open_store(indexed.settings, indexed.client, other)


def test_missing_index_says_how_to_build_it(settings, embedding_model):
    parts = Components(settings, embedding_model=embedding_model)
    with pytest.raises(StoreError, match="python -m rag index"):
        parts.store()
