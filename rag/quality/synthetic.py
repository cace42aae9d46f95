"""Synthetic corpora for scale tests and benchmarks: real texts, stand-in vectors.

Articles are real SciFact abstracts (``../shared/datasets/scifact``), repeated under new ids and
spread over ten years of dates, so chunking, BM25 statistics and date filters behave as with real
text. Only the embedding is replaced: ``StandInEmbeddings`` gives each text a deterministic
random unit vector (no model time), so millions of chunks can go through the real write path —
``rag.ingest.index.index_articles`` — in minutes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.ingest.load import article_from_text
from rag.schema import Article


class StandInEmbeddings(Embeddings):
    """A random unit vector per text, the same every time for the same text."""

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        vector = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return (vector / np.linalg.norm(vector)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def scifact_texts(folder: Path) -> list[tuple[str, str]]:
    """(title, abstract) of every SciFact document with text."""
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    return [(row.get("title", ""), row["text"]) for row in rows if row.get("text", "").strip()]


def synthetic_articles(texts: list[tuple[str, str]], count: int, *, start: int = 0, seed: int = 7) -> Iterator[Article]:
    """``count`` articles (ids ``syn-<n>`` from ``start``), dated between 2015 and 2024."""
    rng = random.Random(seed + start)
    for n in range(start, start + count):
        title, text = texts[n % len(texts)]
        date = f"{rng.randint(2015, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield article_from_text(f"syn-{n}", text, title=title, date=date)
