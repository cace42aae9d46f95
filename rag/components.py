"""The composition root: build the long-lived objects once, from the settings, and hand them out.

The CLI, the web app and the evaluator all start here, so they share one way of wiring the
pipeline. Tests build the same objects from a temporary ``Settings`` (or pass fakes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import chromadb
from langchain_chroma import Chroma

from rag.answer import Pipeline, build_pipeline
from rag.chunk import Chunker
from rag.embed import EmbeddingModel, load_embedding_model
from rag.lexical import LexicalIndex
from rag.llm import Generator
from rag.retrieve import HybridRetriever
from rag.settings import Settings
from rag.store import make_chroma_client, open_store


@dataclass
class Components:
    settings: Settings
    embedding_model: EmbeddingModel | None = None
    client: chromadb.ClientAPI | None = None
    generator: Generator | None = None
    _store: Chroma | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.embedding_model = self.embedding_model or load_embedding_model(self.settings)
        self.client = self.client or make_chroma_client(self.settings)

    def store(self, *, create: bool = False) -> Chroma:
        if self._store is None:
            self._store = open_store(self.settings, self.client, self.embedding_model, create=create)
        return self._store

    def forget_store(self) -> None:
        """After the collection was dropped (``index --rebuild``): reopen it on next use."""
        self._store = None
        self.__dict__.pop("retriever", None)
        self.__dict__.pop("pipeline", None)

    @cached_property
    def chunker(self) -> Chunker:
        model = self.embedding_model
        return Chunker(model.count_tokens, model.max_tokens, self.settings.chunk_tokens,
                       self.settings.chunk_overlap_tokens)

    @cached_property
    def retriever(self) -> HybridRetriever:
        store = self.store()
        return HybridRetriever(store=store, lexical=LexicalIndex(store), mode=self.settings.retrieval_mode,
                               fetch_k=self.settings.fetch_k, k=max(8, self.settings.top_k))

    @cached_property
    def pipeline(self) -> Pipeline:
        return build_pipeline(self.settings, self.retriever, self.generator)
