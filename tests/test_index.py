"""Indexing into a real Chroma (temp dir): incremental, model-checked, listable, removable."""

import pytest
from sqlalchemy import text

from rag.components import Components
from rag.ingest.embed import EmbeddingModel
from rag.ingest.index import articles_in_store, index_articles, list_articles, open_record_manager, remove_articles
from rag.ingest.load import load_paths
from rag.ingest.store import IndexMismatchError, StoreError, open_store


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
    other = EmbeddingModel("other-model")
    other.__dict__["_config"] = {"dimension": 768, "max_tokens": 512}  # never loads: the check comes first
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        open_store(indexed.settings, indexed.client, other)


def test_missing_index_says_how_to_build_it(settings, embedding_model):
    parts = Components(settings, embedding_model=embedding_model)
    with pytest.raises(StoreError, match="python -m rag index"):
        parts.store()


def test_a_second_indexer_gets_a_clear_message(settings):
    from rag.ingest.index import IndexBusyError, indexer_lock

    with indexer_lock(settings, wait=False), pytest.raises(IndexBusyError, match="--wait"), \
            indexer_lock(settings, wait=False):
        pass
    with indexer_lock(settings, wait=False):  # free again once the first is done
        pass


def test_killing_the_indexer_mid_run_then_rerunning_matches_a_fresh_build(tmp_path):
    """kill -9 during embedding, re-run, compare with a clean build: no duplicates, orphans or gaps."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from .conftest import REPO

    docs = REPO.parent / "shared" / "datasets" / "digitalgov-ai-news" / "docs"
    if not docs.exists():
        pytest.skip("../shared/datasets not available")

    def run(data_dir, kill_after: float | None = None):
        env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_EMBED_BATCH_SIZE": "8"}
        command = [sys.executable, "-m", "rag", "index", str(docs)]
        if kill_after is None:
            return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:  # progress lines: kill once some chunks are written
            if "chunks" in line and not line.startswith("embedding and writing: 0"):
                time.sleep(kill_after)
                break
        embedder = psutil.Process(process.pid).children()  # the model's child process (rag.ingest.embed.EmbeddingProcess)
        process.send_signal(signal.SIGKILL)
        process.wait()
        _, alive = psutil.wait_procs(embedder, timeout=60)
        assert embedder and not alive, "the embedding child exits with its parent"
        return process

    def snapshot(data_dir):
        from rag.components import Components
        from rag.settings import Settings

        store = Components(Settings(data_dir=data_dir, _env_file=None)).store()
        data = store.get(include=["metadatas"])
        return sorted(data["ids"]), sorted((m["doc_id"], m["start"], m["end"]) for m in data["metadatas"])

    killed = tmp_path / "killed"
    assert run(killed, kill_after=1.0).returncode == -signal.SIGKILL
    assert run(killed).returncode == 0
    fresh = tmp_path / "fresh"
    assert run(fresh).returncode == 0
    ids, spans = snapshot(killed)
    assert len(ids) == len(set(ids)), "no duplicate chunks"
    assert (ids, spans) == snapshot(fresh), "same chunks as a fresh build: nothing orphaned or missing"


def test_disk_filling_up_during_indexing_is_clear_and_loses_nothing(tmp_path):
    """A real full disk: RAG_DATA_DIR on a 4 MB tmpfs (needs root, as in CI; skipped otherwise)."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    docs = REPO.parent / "shared" / "datasets" / "us-ai-policy" / "docs"
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if not docs.exists() or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs ../shared/datasets and permission to mount a tmpfs")
    try:
        env = {**os.environ, "RAG_DATA_DIR": str(mount_point / "data"), "RAG_LLM": "extractive"}

        def rag(*args):
            return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO, env=env, capture_output=True,
                                  text=True, timeout=600)

        assert rag("index", "corpus").returncode == 0
        full = rag("index", "corpus", str(docs))
        assert full.returncode != 0 and "disk" in full.stderr and "is full" in full.stderr
        assert "Traceback" not in full.stderr
        assert "Kimi" in rag("ask", "Which Chinese model has comparable exploitation capabilities?").stdout, \
            "what was indexed before still answers"
        subprocess.run(["mount", "-o", "remount,size=400m", str(mount_point)], check=True)
        assert rag("index", "corpus", str(docs)).returncode == 0
        listed = {row.split()[0] for row in rag("docs").stdout.splitlines()[:-1]}
        assert "us-ai-export-controls-anthropic" in listed and len(listed) == 1 + len(list(docs.glob("*.md")))
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


class NoChroma:
    """A store that must not be read: the article list comes from the word index."""

    def get(self, *args, **kwargs):
        raise AssertionError("the article list read every chunk's metadata from Chroma")


def test_the_word_index_keeps_the_article_list_chromas_metadata_gives(settings, embedding_model, corpus_dir):
    """The list (Admin tab, `rag docs`, the overview's catalogue) is read from a table kept with the
    chunks, not from every chunk's metadata in Chroma (~110 s at 1M chunks on a Chroma server); it
    follows additions, updates that drop chunks, pruning and removals exactly as Chroma's metadata does."""
    parts = Components(settings, embedding_model=embedding_model)
    long_read = corpus_dir / "long-read.md"
    long_read.write_text("# Port Dredging Plan\n\n" + "\n\n".join(
        f"Section {i}: the harbour authority will dredge berth {i} to fourteen metres, at a cost of "
        f"{i} million, and publish sediment tests for each berth before the work starts." for i in range(60)))
    run_index(parts, corpus_dir)

    def kept_and_scanned():
        return list_articles(NoChroma(), parts.lexical), articles_in_store(parts.store())

    kept, scanned = kept_and_scanned()
    assert kept == scanned and len(kept) == 4
    assert {r["doc_id"]: r["chunks"] for r in kept}["long-read"] > 3

    long_read.write_text("# Port Dredging Plan, revised\n\nOnly berth 1 will be dredged this year.\n")
    (corpus_dir / "solar-schools.html").unlink()
    run_index(parts, corpus_dir, prune=True)
    kept, scanned = kept_and_scanned()
    assert kept == scanned
    rows = {r["doc_id"]: r for r in kept}
    assert rows["long-read"]["chunks"] == 1 and rows["long-read"]["title"] == "Port Dredging Plan, revised"
    assert "solar-schools" not in rows

    remove_articles(["harbour-tolls"], store=parts.store(), record_manager=open_record_manager(settings))
    kept, scanned = kept_and_scanned()
    assert kept == scanned and {r["doc_id"] for r in kept} == {"library-hours", "long-read"}
    assert parts.articles() == kept


def test_an_index_built_before_the_article_list_lists_from_chroma_until_the_next_run_fills_it(indexed, corpus_dir):
    scanned = articles_in_store(indexed.store())
    t = indexed.lexical.t
    with indexed.lexical.engine.begin() as db:  # the word index as the release before the list left it
        db.execute(text(f"DROP TABLE {t}_articles"))
        db.execute(text("DELETE FROM schema_migrations WHERE store LIKE 'articles/%'"))
        db.execute(text("UPDATE schema_migrations SET number = 1 WHERE store LIKE 'lexical/%'"))
    from rag.ingest.lexical import open_lexical_index

    upgraded = open_lexical_index(indexed.lexical.engine, f"chroma/{indexed.settings.collection}")
    assert upgraded.articles() is None and list_articles(indexed.store(), upgraded) == scanned
    run_index(indexed, corpus_dir)  # nothing changed: the run only fills the list
    assert list_articles(NoChroma(), upgraded) == scanned
