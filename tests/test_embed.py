"""The embedder's tokenizer and the indexing prefetcher."""

import threading

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from rag.embed import EmbeddingPrefetcher


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
