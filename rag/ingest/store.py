"""Stage 3b — store: the Chroma collection, embedded or on a Chroma server.

``RAG_CHROMA_HOST`` unset: a ``PersistentClient`` under ``RAG_DATA_DIR/chroma`` (one process
writes at a time). Set: ``chromadb.HttpClient`` to a ``chroma run`` server, for several app
processes. The collection records the embedding model and dimension it was built with; opening it
with a different model is an ``IndexMismatchError`` that says how to rebuild.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.embeddings import Embeddings

from rag.ingest.embed import EmbeddingModel
from rag.settings import Settings


class StoreError(Exception):
    """The message says what to do (paths, hosts included) and is for operators: the CLI and the
    server log. Readers get ``reader_message``, which names no server detail."""

    reader_message = "The article index cannot be reached right now. Please try again in a moment."


class IndexMismatchError(StoreError):
    pass


def make_chroma_client(settings: Settings) -> chromadb.ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        headers = {}
        if settings.chroma_token:
            token = settings.chroma_token.get_secret_value()
            headers[settings.chroma_token_header] = (
                f"Bearer {token}" if settings.chroma_token_header == "Authorization" else token)
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, headers=headers,
                                       settings=chroma_settings)
        except Exception as exc:  # chromadb raises plain ValueError/ConnectionError variants
            if refused_credentials(exc):
                raise StoreError(refused_message(settings)) from exc
            raise StoreError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc}). "
                "Start it with `chroma run --path DIR --host 127.0.0.1 --port PORT`, or unset RAG_CHROMA_HOST."
            ) from exc
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)
    except Exception as exc:  # a damaged sqlite file or segment surfaces as many different errors
        raise StoreError(damaged_message(settings, exc)) from exc


def damaged_message(settings: Settings, exc: Exception) -> str:
    return (f"the index in {settings.chroma_dir} cannot be opened ({type(exc).__name__}: {str(exc)[:200]}). "
            f"It is rebuilt from the sources: delete {settings.chroma_dir}, then run `python -m rag index --rebuild` "
            "(and index any other sources you had added)")


def refused_credentials(exc: BaseException) -> bool:
    """Did the server (or the auth proxy in front of it) answer 401/403?

    chromadb turns a JSON error body into ``AuthorizationError``/``ChromaAuthError``; a proxy's
    plain 401 page arrives as a bare ``Exception`` or ``httpx.HTTPStatusError`` with the page as text.
    """
    while exc is not None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403) or type(exc).__name__ in ("AuthorizationError", "ChromaAuthError"):
            return True
        if any(mark in str(exc) for mark in ("401 Authorization Required", "403 Forbidden", "Unauthorized")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def refused_message(settings: Settings) -> str:
    given = "a wrong token" if settings.chroma_token else "no token"
    return (f"the Chroma server at {settings.chroma_host}:{settings.chroma_port} refused the request: {given} was "
            "sent. Set RAG_CHROMA_TOKEN (and RAG_CHROMA_TOKEN_HEADER, if its proxy reads X-Chroma-Token) to the "
            "token the server expects")


@contextmanager
def store_errors(settings: Settings) -> Iterator[None]:
    """Turn whatever a failing Chroma raises (server gone, damaged segment, refused token) into a
    ``StoreError`` whose message says what to do."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(unreachable_message(settings, exc)) from exc


def unreachable_message(settings: Settings, exc: Exception) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):  # the lexical index's database (rag.ingest.lexical), e.g. PostgreSQL restarting
        from rag.db import engine_for, server_name

        engine = engine_for(settings.record_db_url, settings.db_timeouts)
        where = engine.url.database if engine.dialect.name == "sqlite" else server_name(engine)
        return (f"the record database at {where} is not answering ({type(exc.orig).__name__}). "
                "Check that it is up; answers resume when it is back")
    if settings.chroma_host and refused_credentials(exc):
        return refused_message(settings)
    if settings.chroma_host:
        return (f"the Chroma server at {settings.chroma_host}:{settings.chroma_port} is not answering "
                f"({type(exc).__name__}). Check that `chroma run` is up; answers resume when it is back")
    return damaged_message(settings, exc)


def open_store(settings: Settings, client: chromadb.ClientAPI, model: EmbeddingModel, *,
               create: bool = False) -> Chroma:
    """The LangChain vector store over the collection; refuses a collection built with another model."""
    try:
        existing = {c.name if hasattr(c, "name") else c for c in client.list_collections()}
    except Exception as exc:
        raise StoreError(unreachable_message(settings, exc)) from exc
    if settings.collection not in existing and not create:
        error = StoreError(f"no index yet in {describe_location(settings)}. Build it with: python -m rag index")
        error.reader_message = "No articles have been indexed yet."
        raise error
    if settings.collection in existing:
        metadata = client.get_collection(settings.collection).metadata or {}
        built_with = metadata.get("embed_model")
        if built_with and (built_with != model.name or metadata.get("embed_dim") != model.dimension):
            raise IndexMismatchError(
                f"the index was built with embedding model {built_with!r} ({metadata.get('embed_dim')}-d) but "
                f"RAG_EMBED_MODEL is {model.name!r} ({model.dimension}-d). Rebuild it with: "
                "python -m rag index --rebuild"
            )
    return Chroma(
        collection_name=settings.collection,
        embedding_function=model,
        client=client,
        collection_metadata={"embed_model": model.name, "embed_dim": model.dimension},
        collection_configuration={"hnsw": {"space": "cosine"}},
    )


class MirroredChroma(Chroma):
    """The indexer's writer: every chunk written to or deleted from the collection is written to
    or deleted from the lexical index (``rag.ingest.lexical``) in the same call, so the two never drift.

    Order matters for crashes: the lexical row is added before Chroma's (a crash leaves at most a
    row the next run re-adds idempotently or reconciles away) and deleted after it.
    """

    def __init__(self, lexical, fence=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lexical = lexical
        self.fence = fence  # rag.ingest.index.IndexerLock.fence: checked inside the lexical write's transaction

    def add_texts(self, texts, metadatas=None, ids=None, **kwargs) -> list[str]:
        texts = list(texts)
        if ids is None:
            raise ValueError("the indexer always passes chunk ids")
        metadatas = list(metadatas or [{} for _ in texts])
        # Vectors first (the slow part), then the fenced lexical write, then Chroma's at once: an
        # indexer whose lock was taken over stops before either write, not after a batch's embedding.
        vectors = self.embeddings.embed_documents(texts)
        self.lexical.add(list(ids), texts, metadatas, fence=self.fence)
        self._collection.upsert(ids=list(ids), embeddings=vectors, metadatas=metadatas, documents=texts)
        return list(ids)

    def delete(self, ids: list[str] | None = None, **kwargs) -> None:
        super().delete(ids, **kwargs)
        if ids:
            self.lexical.delete(list(ids))


def writer_for(store: Chroma, lexical, embeddings: Embeddings | None = None, fence=None) -> MirroredChroma:
    """The same collection, written together with ``lexical``; vectors computed through
    ``embeddings`` (indexing's prefetcher) when given; every write fenced by ``fence`` when given."""
    return MirroredChroma(lexical, fence, client=store._client, collection_name=store._collection.name,
                          embedding_function=embeddings or store.embeddings)


def delete_collection(settings: Settings, client: chromadb.ClientAPI) -> None:
    try:
        client.delete_collection(settings.collection)
    except Exception:  # absent already: nothing to delete
        pass


def describe_location(settings: Settings) -> str:
    if settings.chroma_host:
        return f"Chroma server {settings.chroma_host}:{settings.chroma_port}"
    return str(settings.chroma_dir)


def article_text(store: Chroma, doc_id: str) -> tuple[dict, str]:
    """An indexed article's metadata and cleaned text, rebuilt from its chunks' spans.

    Chunks cover the text under every heading, so placing each body at its ``start`` offset
    restores the article with the same offsets the citations use (``text[start:end]`` is the
    passage) — no second copy of the article is kept anywhere. The gaps between sections are the
    heading lines, refilled from each chunk's ``section``.
    """
    data = store.get(where={"doc_id": doc_id}, include=["documents", "metadatas"])
    pieces = sorted(zip(data["metadatas"], data["documents"], strict=True), key=lambda p: p[0]["start"])
    if not pieces:
        return {}, ""
    text = ""
    for meta, page in pieces:
        start, end = meta["start"], meta["end"]
        if start > len(text):  # a gap: the heading line(s) before this section
            gap = start - len(text)
            heading = meta.get("section", "")
            filler = f"\n\n{heading}\n\n" if heading and len(heading) + 4 <= gap else "\n\n"
            text += filler[:gap].ljust(gap)
        if end > len(text):
            body = page[meta.get("body_offset", 0):]
            text = text[:start] + body
    return pieces[0][0], text


class ReadWriteGate:
    """Many readers at once, or one writer alone (writers wait for readers to finish)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextmanager
    def read(self):
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def write(self):
        with self._condition:
            self._condition.wait_for(lambda: not self._writing and self._readers == 0)
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


class LiveStore:
    """The store as a long-running reader (the web app) sees it, kept current across re-indexes.

    Every indexing run bumps the collection's ``generation`` (see ``rag.ingest.index``). A Chroma server
    serves every process the same data, but the embedded store keeps its vector index in memory,
    so a write made by another process (``python -m rag index`` while the app runs) stays invisible
    to dense search. When a reader notices a new generation it reopens the embedded client — after
    the questions in flight have finished with the old one, so none of them fails.
    """

    def __init__(self, settings: Settings, model: EmbeddingModel, client: chromadb.ClientAPI | None = None) -> None:
        self.settings = settings
        self.model = model
        self.client = client or make_chroma_client(settings)
        self._store: Chroma | None = None
        self._generation: object = None
        self._gate = ReadWriteGate()

    def store(self, *, create: bool = False) -> Chroma:
        if self._store is None:
            self._store = open_store(self.settings, self.client, self.model, create=create)
            self._generation = self.generation()
        return self._store

    def forget(self) -> None:
        """After the collection was dropped (``index --rebuild``)."""
        self._store = None

    def generation(self) -> object:
        collection = self.client.get_collection(self.settings.collection)
        return (collection.metadata or {}).get("generation", 0)

    @contextmanager
    def reading(self) -> Iterator[Chroma]:
        """The store for one read; store failures become a ``StoreError`` that says what to do."""
        with store_errors(self.settings):
            store = self.store()
            generation = self.generation()
        if not self.settings.chroma_host and generation != self._generation:
            with self._gate.write():
                if self.generation() != self._generation:
                    store = self._reopen()
        with self._gate.read():
            yield self._store or store

    def _reopen(self) -> Chroma:
        self.client.close()
        self.client = make_chroma_client(self.settings)
        self._store = open_store(self.settings, self.client, self.model)
        self._generation = self.generation()
        return self._store
