"""The composition root: build the long-lived objects once, from the settings, and hand them out.

The CLI, the web app and the evaluator all start here, so they share one way of wiring the
pipeline. Tests build the same objects from a temporary ``Settings`` (or pass fakes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from rag.ingest.chunk import Chunker
from rag.ingest.embed import EmbeddingModel, load_embedding_model
from rag.redact import redact_text
from rag.settings import Settings

if TYPE_CHECKING:  # imported where used: `rag index` never loads the answer side (a second of imports)
    import chromadb
    from langchain_chroma import Chroma

    from rag.answer.llm import Generator
    from rag.answer.overview import Catalog
    from rag.answer.pipeline import Pipeline
    from rag.answer.retrieve import HybridRetriever
    from rag.ingest.lexical import LexicalIndex, NoLexicalIndex
    from rag.ingest.store import LiveStore
    from rag.ingest.summaries import SummaryStore

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    embedding_model: EmbeddingModel | None = None
    generator: Generator | None = None
    live: LiveStore | None = field(default=None, repr=False)
    on_summary_wanted: Callable[[str], None] | None = field(default=None, repr=False)
    _opening: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.embedding_model = self.embedding_model or load_embedding_model(self.settings)

    def live_store(self) -> LiveStore:
        """The connection to Chroma, made on first use: an indexing run imports chromadb (half a
        second) only once it has something to write, while the embedding model is already computing."""
        with self._opening:
            if self.live is None:
                from rag.ingest.store import LiveStore

                self.live = LiveStore(self.settings, self.embedding_model)
            return self.live

    @property
    def client(self) -> chromadb.ClientAPI:
        return self.live_store().client

    def store(self, *, create: bool = False) -> Chroma:
        return self.live_store().store(create=create)

    def forget_store(self) -> None:
        """After the collection was dropped (``index --rebuild``): reopen it on next use."""
        self.live_store().forget()

    @cached_property
    def chunker(self) -> Chunker:
        model = self.embedding_model
        return Chunker(model.count_tokens, model.max_tokens, self.settings.chunk_tokens,
                       self.settings.chunk_overlap_tokens)

    @cached_property
    def lexical(self) -> LexicalIndex | NoLexicalIndex:
        """The word index beside the records (``rag.ingest.lexical``), with the article list."""
        from rag.db import engine_for
        from rag.ingest.lexical import open_lexical_index

        return open_lexical_index(engine_for(self.settings.record_db_url, self.settings.db_timeouts),
                                  f"chroma/{self.settings.collection}")

    def articles(self) -> list[dict]:
        """One row per indexed article (``rag.ingest.index.list_articles``)."""
        from rag.ingest.index import list_articles

        return list_articles(self.store(), self.lexical)

    @cached_property
    def catalog(self) -> Catalog:
        """The article list, re-read only when the index changes (its generation)."""
        from rag.answer.overview import Catalog

        return Catalog(self.articles, lambda: self.live_store().generation())

    @cached_property
    def retriever(self) -> HybridRetriever:
        from rag.answer.retrieve import HybridRetriever
        from rag.ingest.lexical import NoLexicalIndex
        from rag.ingest.store import StoreError

        self.store()  # fail now, with a clear message, if there is no index
        live = self.live_store()
        lexical = self.lexical
        if isinstance(lexical, NoLexicalIndex) and self.settings.retrieval_mode != "dense":
            raise StoreError(lexical.reason)  # said at start-up, not on every question
        if self.settings.retrieval_mode != "dense" and lexical.size() == 0 and self.store()._collection.count():
            log.warning("the lexical index in %s is empty but the collection is not: every process must share "
                        "the indexer's RAG_RECORD_DB_URL (or run `python -m rag index` once); answering from "
                        "dense search alone until it is filled", redact_text(self.settings.record_db_url))
        return HybridRetriever(live=live, lexical=lexical, mode=self.settings.retrieval_mode,
                               fetch_k=self.settings.fetch_k,
                               k=max(8, self.settings.top_k, self.settings.candidate_passages))

    @cached_property
    def summaries(self) -> SummaryStore:
        """Prepared article summaries (``rag.answer.summary``), beside the index's records."""
        from rag.db import engine_for
        from rag.ingest.summaries import SummaryStore

        if not self.settings.shared_state:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SummaryStore(engine_for(self.settings.record_db_url, self.settings.db_timeouts), f"chroma/{self.settings.collection}")

    def fingerprints(self) -> dict[str, str]:
        """doc_id → index fingerprint of every indexed article (what a summary is keyed by)."""
        from rag.ingest.index import Fingerprints, open_record_manager

        return Fingerprints(open_record_manager(self.settings)).all()

    @cached_property
    def pipeline(self) -> Pipeline:
        from rag.answer.context import SentenceVectors
        from rag.answer.overview import Overview
        from rag.answer.pipeline import build_pipeline

        overview = Overview(self.retriever, self.summaries, self.catalog,
                            SentenceVectors(self.embedding_model), self.settings.min_dense_score,
                            on_missing_summary=self.summary_wanted)
        return build_pipeline(self.settings, self.retriever, self.generator, self.embedding_model, overview)

    def summarize(self, **kwargs):
        """Prepare the summaries that are missing or stale (``rag.answer.summary.summarize_all``) with
        the configured model: the extractive backend picks central sentences; a chat model writes
        points that are then checked."""
        from rag.answer.context import SentenceVectors
        from rag.answer.summary import summarize_all

        generator = self.pipeline.generator
        return summarize_all(self.store(), self.summaries, self.fingerprints(),
                             vectors=SentenceVectors(self.embedding_model), chat_model=generator.chat_model,
                             model_name=generator.name, **kwargs)

    def summary_wanted(self, doc_id: str) -> None:
        """A reader asked for a summary not prepared yet: the app's background summariser, when
        there is one (``rag.web``), takes the hint; elsewhere ``python -m rag summarize`` writes it."""
        if self.on_summary_wanted is not None:
            self.on_summary_wanted(doc_id)
