"""The embedder's tokenizer and the indexing prefetcher."""

import threading

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from rag.ingest.embed import EmbeddingPrefetcher


class RecordingEmbeddings(Embeddings):
    """A fake model that records each batch it is asked for, and can be made to fail."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.vectors = DeterministicFakeEmbedding(size=8)
        self.calls: list[list[str]] = []
        self.fail_with = fail_with

    def embed_documents(self, texts):
        self.calls.append(list(texts))
        if self.fail_with:
            raise self.fail_with
        return self.vectors.embed_documents(texts)

    def embed_query(self, text):
        return self.vectors.embed_query(text)


def fake(**kwargs) -> RecordingEmbeddings:
    return RecordingEmbeddings(**kwargs)


def test_prefetched_vectors_match_the_model_in_order_with_repeats_and_unsubmitted_texts():
    model = fake()
    prefetcher = EmbeddingPrefetcher(model, group_size=2)
    prefetcher.submit(["a", "b", "a", "c"])
    asked = ["c", "a", "never submitted", "b", "a"]
    assert prefetcher.embed_documents(asked) == [model.embed_query(t) for t in asked]
    embedded = [text for call in model.calls for text in call]
    assert sorted(embedded) == ["a", "b", "c", "never submitted"], "each distinct text embedded once"
    prefetcher.close()


def test_texts_are_embedded_before_they_are_asked_for():
    model = fake()
    prefetcher = EmbeddingPrefetcher(model, group_size=10)
    prefetcher.submit(["one", "two", "three"])
    for _ in range(200):  # the worker runs on its own; give it up to 2 s
        if model.calls:
            break
        threading.Event().wait(0.01)
    assert model.calls == [["one", "two", "three"]]
    assert prefetcher.embed_documents(["two"]) == [model.embed_query("two")]
    assert model.calls == [["one", "two", "three"]]  # served from what was prefetched
    prefetcher.close()


def test_a_failing_model_raises_in_the_caller_instead_of_hanging():
    prefetcher = EmbeddingPrefetcher(fake(fail_with=MemoryError("out of memory")))
    prefetcher.submit(["x"])
    with pytest.raises(MemoryError, match="out of memory"):
        prefetcher.embed_documents(["x"])


def test_after_close_texts_still_get_vectors():
    model = fake()
    prefetcher = EmbeddingPrefetcher(model)
    prefetcher.close()
    prefetcher.submit(["late"])
    assert prefetcher.embed_documents(["late"]) == [model.embed_query("late")]


def test_indexed_vectors_are_the_models_own(indexed, embedding_model):
    stored = indexed.store(create=False).get(include=["documents", "embeddings"], limit=5)
    direct = embedding_model.embed_documents(stored["documents"])
    assert np.allclose(np.array(stored["embeddings"]), np.array(direct), atol=1e-5)


def test_token_counts_match_transformers(embedding_model):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(embedding_model.path)
    for text in ["Export controls on AI chips.", "Über 1.000 GPUs — naïve café", "x " * 400, ""]:
        expected = len(reference(text, add_special_tokens=False, verbose=False)["input_ids"])
        assert embedding_model.count_tokens(text) == expected


EMBEDDING_PROCESS_SCRIPT = """
import json, sys
from rag.ingest.embed import EmbeddingModelError, EmbeddingProcess
child = EmbeddingProcess(sys.argv[1], batch_size=8)
try:
    print(json.dumps({"vectors": child.embed_documents(json.loads(sys.argv[2]))}))
except EmbeddingModelError as exc:
    print(json.dumps({"error": str(exc)}))
child.close()
print(json.dumps({"alive_after_close": child._process.is_alive()}))
"""


def run_embedding_process(model: str, texts: list[str]) -> list[dict]:
    """In a fresh interpreter, as `rag index` uses it (the process must fork before torch loads)."""
    import json
    import subprocess
    import sys

    from .conftest import REPO

    result = subprocess.run([sys.executable, "-c", EMBEDDING_PROCESS_SCRIPT, model, json.dumps(texts)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_embedding_process_gives_the_models_vectors_and_stops_on_close(embedding_model):
    texts = ["Export controls on AI chips.", "Night ferries run every 40 minutes."]
    answer, closed = run_embedding_process(embedding_model.name, texts)
    assert np.allclose(answer["vectors"], embedding_model.embed_documents(texts), atol=1e-5)
    assert closed == {"alive_after_close": False}


def test_the_embedding_process_reports_a_missing_model(tmp_path):
    answer, closed = run_embedding_process(str(tmp_path / "no-such-model"), ["anything"])
    assert "no-such-model" in answer["error"] and closed == {"alive_after_close": False}


def test_the_embedding_process_refuses_to_fork_once_torch_is_loaded(embedding_model):
    from rag.ingest.embed import EmbeddingProcess

    embedding_model.embed_query("torch is loaded now")
    with pytest.raises(RuntimeError, match="before torch"):
        EmbeddingProcess(embedding_model.name)
