"""Stage 4 — retrieve: a question in, ranked ``Passage``s out.

Hybrid by default: dense search in Chroma (cosine over all-MiniLM-L6-v2 vectors) and BM25 over
the same chunks (``rag.ingest.lexical``, SQLite FTS5), fused by reciprocal rank (RRF, k=60), which needs no score
calibration between the two. Filters (article ids, a date range) apply to both sides.
``HybridRetriever`` is a LangChain retriever, so it composes with runnables.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from langchain_chroma import Chroma
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import PrivateAttr

from rag.answer.citations import AUTHORSHIP
from rag.ingest.chunk import chunk_body, date_number
from rag.ingest.lexical import LexicalIndex, NoLexicalIndex
from rag.ingest.store import LiveStore, store_errors
from rag.schema import Passage

RRF_K = 60
MAX_ALLOWED_IDS = 50_000  # a filter allowing more chunks is applied to an over-fetched search
OVERFETCH_MAX = 2_000
COUNT_CAP = 1_000_000  # a filter's allowed chunks are counted up to this many
Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some articles and/or a date range (ISO dates, inclusive)."""

    doc_ids: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.date_from or self.date_to)

    def to_json(self) -> dict | None:
        """What the answer object reports as applied (None when nothing restricted the search)."""
        if self.is_empty():
            return None
        return {"doc_ids": list(self.doc_ids), "date_from": self.date_from, "date_to": self.date_to}

    def chroma_where(self) -> dict | None:
        clauses: list[dict] = []
        if self.doc_ids:
            clauses.append({"doc_id": {"$in": list(self.doc_ids)}})
        if self.date_from:
            clauses.append({"date_num": {"$gte": date_number(self.date_from)}})
        if self.date_to:
            clauses.append({"date_num": {"$lte": date_number(self.date_to)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def sql_conditions(self) -> dict:
        """The same restrictions for the lexical index's SQL (``LexicalIndex.search``)."""
        return {"doc_ids": self.doc_ids, "date_from": date_number(self.date_from) if self.date_from else 0,
                "date_to": date_number(self.date_to) if self.date_to else 0}


class HybridRetriever(BaseRetriever):
    """Dense + BM25, fused by reciprocal rank. Returns ``Document``s whose metadata gains
    ``score`` (fused) and ``dense_score`` (cosine similarity, when the dense side saw the chunk)."""

    live: LiveStore
    lexical: LexicalIndex | NoLexicalIndex
    mode: Mode = "hybrid"
    fetch_k: int = 30
    k: int = 8
    _pool: ThreadPoolExecutor = PrivateAttr(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="lexical-search"))

    model_config = {"arbitrary_types_allowed": True}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                filters: Filters | None = None, k: int | None = None) -> list[Document]:
        filters = filters or Filters()
        k = k or self.k

        with self.live.reading() as store, store_errors(self.live.settings):  # e.g. the server went away mid-question
            return self._search(store, query, filters, k)

    def _search(self, store: Chroma, query: str, filters: Filters, k: int) -> list[Document]:
        ranked: dict[str, dict] = {}  # chunk_id -> {"doc": Document, "score": float, "dense": float}
        # The lexical search runs beside the dense one (SQLite, Chroma and torch release the GIL).
        lexical = None
        if self.mode in ("hybrid", "bm25"):
            lexical = self._pool.submit(self.lexical.search, expand_lexical_query(query), self.fetch_k,
                                        **filters.sql_conditions())
        if self.mode in ("hybrid", "dense"):
            for rank, (doc, distance) in enumerate(self._dense(store, query, filters)):
                entry = ranked.setdefault(doc.id, {"doc": doc, "score": 0.0, "dense": None})
                entry["score"] += 1.0 / (RRF_K + rank + 1)
                entry["dense"], entry["dense_rank"] = 1.0 - float(distance), rank + 1
        if lexical is not None:
            for rank, (chunk_id, bm25) in enumerate(lexical.result()):
                if chunk_id not in ranked:  # seen by BM25 only: its Document is fetched below
                    ranked[chunk_id] = {"doc": None, "score": 0.0, "dense": None}
                ranked[chunk_id]["score"] += 1.0 / (RRF_K + rank + 1)
                ranked[chunk_id]["bm25"], ranked[chunk_id]["bm25_rank"] = bm25, rank + 1

        best = sorted(ranked.items(), key=lambda item: item[1]["score"], reverse=True)[:k]
        missing = [chunk_id for chunk_id, entry in best if entry["doc"] is None]
        if missing:
            fetched = store.get_by_ids(missing)
            by_id = {doc.id: doc for doc in fetched}
            for chunk_id, entry in best:
                if entry["doc"] is None:
                    entry["doc"] = by_id.get(chunk_id)
        results = []
        for _chunk_id, entry in best:
            doc = entry["doc"]
            if doc is None:  # deleted between the two look-ups: a concurrent re-index
                continue
            # Each side's rank and score ride along for `rag ask --explain` (rag.answer.explain).
            doc.metadata = {**doc.metadata, "score": entry["score"], "dense_score": entry["dense"],
                            "dense_rank": entry.get("dense_rank"), "bm25_rank": entry.get("bm25_rank"),
                            "bm25_score": entry.get("bm25")}
            results.append(doc)
        return results

    def _dense(self, store: Chroma, query: str, filters: Filters) -> list[tuple[Document, float]]:
        """Dense candidates within the filters, which the engines apply: the lexical index's SQL
        names the allowed chunks and Chroma searches among exactly those ids (Chroma's own
        ``where`` over metadata takes 0.1–0.3 s at 100k chunks; this ~25 ms). A filter that allows
        a large share of the chunks is applied to an over-fetched unfiltered search instead, so no
        query carries a long id list (which would also travel to a Chroma server)."""
        if filters.is_empty():
            return store.similarity_search_with_score(query, k=self.fetch_k)
        if isinstance(self.lexical, NoLexicalIndex):  # no SQL catalogue: Chroma's metadata filter
            return store.similarity_search_with_score(query, k=self.fetch_k, filter=filters.chroma_where())
        conditions = filters.sql_conditions()
        # Counted first (an index-only count, ~2 ms at 100k; no ids travel): a filter that allows a
        # good share of the chunks (a period of a few years) is applied to an over-fetched search
        # three times the size its share needs — listing its ids alone would take longer (55 ms
        # for 20k ids at 100k chunks). A narrow one (some articles, a month) searches its ids.
        count = self.lexical.count_matching(COUNT_CAP, **conditions)
        if not count:
            return []
        share = min(1.0, count / max(self.lexical.size(), count, 1))
        overfetch = math.ceil(3 * self.fetch_k / share)
        if count <= OVERFETCH_MAX or (overfetch > OVERFETCH_MAX and count <= MAX_ALLOWED_IDS):
            allowed = self.lexical.matching_ids(MAX_ALLOWED_IDS, **conditions)
            return store.similarity_search_with_score(query, k=self.fetch_k, ids=allowed)
        # Ids and distances only for the over-fetched hits (their texts and metadata would double
        # the search's cost: 40 ms for 450 hits at 100k on a Chroma server, 18 ms without); the
        # documents of the allowed best fetch_k are read after.
        found = store._collection.query(query_embeddings=[store.embeddings.embed_query(query)],
                                        n_results=min(OVERFETCH_MAX, overfetch), include=["distances"])
        hits = list(zip(found["ids"][0], found["distances"][0], strict=True))
        keep = self.lexical.allowed([chunk_id for chunk_id, _ in hits], **conditions)
        best = [(chunk_id, distance) for chunk_id, distance in hits if chunk_id in keep][:self.fetch_k]
        documents = {doc.id: doc for doc in store.get_by_ids([chunk_id for chunk_id, _ in best])}
        return [(documents[chunk_id], distance) for chunk_id, distance in best if chunk_id in documents]


def expand_lexical_query(query: str) -> str:
    """Questions about who wrote an article should reach its "About the author" section."""
    return f"{query} author" if AUTHORSHIP.search(query) else query




def interleave(ranked_lists: list[list[Document]], k: int) -> list[Document]:
    """Round-robin merge of several rankings, first occurrence wins, at most ``k``."""
    merged: dict[str, Document] = {}
    for rank in range(max((len(r) for r in ranked_lists), default=0)):
        for ranking in ranked_lists:
            if rank < len(ranking):
                merged.setdefault(ranking[rank].id or ranking[rank].metadata.get("chunk_id", ""), ranking[rank])
    return list(merged.values())[:k]


def to_passage(doc: Document) -> Passage:
    meta = doc.metadata
    return Passage(
        chunk_id=meta.get("chunk_id", doc.id or ""),
        doc_id=meta.get("doc_id", ""),
        title=meta.get("title", ""),
        text=chunk_body(doc),
        section=meta.get("section", ""),
        date=meta.get("date", ""),
        author=meta.get("author", ""),
        source=meta.get("source", ""),
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        score=float(meta.get("score", 0.0)),
        dense_score=meta.get("dense_score"),
        page=int(meta.get("page") or 0),
        page_end=int(meta.get("page_end") or 0),
        ocr=bool(meta.get("ocr")),
    )
