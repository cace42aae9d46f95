"""Chunking: structure-aware, spans map back to the text, nothing over the embedder's limit."""

from rag.ingest.chunk import Chunker, chunk_body
from rag.ingest.load import load_file

from .conftest import REPO


def test_every_chunk_body_is_the_exact_span_of_the_cleaned_text(embedding_model):
    article = load_file(REPO / "corpus" / "us-ai-export-controls-anthropic.txt")
    chunks = Chunker(embedding_model.count_tokens, embedding_model.max_tokens).split(article)
    assert len(chunks) > 10
    for doc in chunks:
        meta = doc.metadata
        assert article.text[meta["start"]:meta["end"]] == chunk_body(doc)


def test_no_chunk_exceeds_the_embedding_models_window(embedding_model):
    article = load_file(REPO / "corpus" / "us-ai-export-controls-anthropic.txt")
    # A tiny window forces the hard limit to bite, not just the splitter's target.
    for window in (embedding_model.max_tokens, 60):
        chunker = Chunker(embedding_model.count_tokens, window, chunk_tokens=500, overlap_tokens=10)
        for doc in chunker.split(article):
            assert embedding_model.count_tokens(doc.page_content) + 2 <= window


def test_chunks_carry_their_section_heading_and_article_metadata(embedding_model):
    article = load_file(REPO / "corpus" / "us-ai-export-controls-anthropic.txt")
    chunks = Chunker(embedding_model.count_tokens, embedding_model.max_tokens).split(article)
    kimi = next(d for d in chunks if "Kimi 2.7" in d.page_content)
    assert kimi.metadata["section"] == "The Cybersecurity Paradox and Adversary Advantage"
    assert kimi.metadata["doc_id"] == "us-ai-export-controls-anthropic"
    assert kimi.page_content.startswith(article.title)  # the header line travels with the body
    bio = next(d for d in chunks if "is an AI Systems Integrator" in d.page_content)
    assert bio.metadata["section"] == "About the author"


def test_chunk_ids_are_stable_and_unique(embedding_model):
    article = load_file(REPO / "corpus" / "us-ai-export-controls-anthropic.txt")
    chunker = Chunker(embedding_model.count_tokens, embedding_model.max_tokens)
    first = [d.metadata["chunk_id"] for d in chunker.split(article)]
    second = [d.metadata["chunk_id"] for d in chunker.split(article)]
    assert first == second and len(set(first)) == len(first)
