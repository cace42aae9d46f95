"""Stage 4a — the lexical (BM25) side of retrieval, kept in step with the Chroma collection.

bm25s scores every chunk's ``page_content`` (header + body, English stop words removed, Snowball
stems). The index lives in memory and is rebuilt from the collection whenever the collection's
``generation`` (bumped by every indexing run, see ``rag.index``) differs from the one it was built
at, so a running app sees re-indexed articles on its next question.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import bm25s
import numpy as np
import Stemmer

from rag.store import LiveStore, store_errors

_STEMMER = Stemmer.Stemmer("english")
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import; keep our output clean


def tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


class LexicalIndex:
    def __init__(self, live: LiveStore) -> None:
        self.live = live
        self._lock = threading.Lock()
        self._generation: object = object()  # never equal to a real generation
        self._retriever: bm25s.BM25 | None = None
        self.ids: list[str] = []
        self.metadatas: list[dict] = []

    def refresh_if_stale(self) -> None:
        with store_errors(self.live.settings):
            generation = self.live.generation()
        if generation == self._generation:
            return
        with self._lock:
            if generation != self._generation:
                self._rebuild()
                self._generation = generation

    def _rebuild(self) -> None:
        with self.live.reading() as store:
            data = store.get(include=["documents", "metadatas"])
        ids, texts, metadatas = data["ids"], data["documents"], data["metadatas"]
        retriever = None
        if ids:
            retriever = bm25s.BM25()
            retriever.index(tokenize(texts), show_progress=False)
        # Swap all three together: a concurrent search sees either the old or the new index.
        self._retriever, self.ids, self.metadatas = retriever, ids, metadatas

    def search(self, query: str, k: int, allow: Callable[[dict], bool] | None = None, *,
               refresh: bool = True) -> list[tuple[int, float]]:
        """(position, score) of the best ``k`` chunks with a positive score; positions index ``ids``.

        ``refresh=False`` when the caller already refreshed (and holds the store's read gate).
        """
        if refresh:
            self.refresh_if_stale()
        retriever, metadatas = self._retriever, self.metadatas
        if retriever is None:
            return []
        query_tokens = [t for t in tokenize([query])[0] if t in retriever.vocab_dict]
        if not query_tokens:
            return []
        scores = retriever.get_scores(query_tokens)
        if allow is not None:
            scores = np.where([allow(m) for m in metadatas], scores, 0.0)
        top = np.argsort(-scores)[:k]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
