"""Indexing: load → chunk → embed/store, incrementally, through LangChain's indexing API.

``langchain_core.indexing.index`` with a persistent ``SQLRecordManager`` (from langchain-classic)
keeps a record of every chunk written, keyed by its stable ``chunk_id``: unchanged chunks are
skipped without re-embedding, the old chunks of a changed article are removed (cleanup by
``doc_id``), and with ``prune`` the articles whose files are gone are removed as well.

Every chunk written to or deleted from Chroma is written to or deleted from the lexical index
(``rag.ingest.lexical``, beside the records) in the same call, so readers search it at once.
After a write the collection's ``generation`` number is bumped; readers of an embedded Chroma
reopen it when they see a new one (``rag.ingest.store.LiveStore``) — no restart needed.
Only one indexer may run per index at a time (``indexer_lock``: a file lock under ``RAG_DATA_DIR``,
or with shared state an advisory lock in PostgreSQL, held across machines).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from langchain_classic.indexes import SQLRecordManager
from langchain_classic.indexes._sql_record_manager import Base as RecordTables
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import index as langchain_index
from sqlalchemy import Column, MetaData, String, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from rag.db import StateDatabaseError, engine_for, lock_key, migrate, server_name
from rag.ingest import feeds, runs
from rag.ingest.chunk import Chunker
from rag.ingest.embed import EmbeddingPrefetcher
from rag.ingest.feeds import SourceLog
from rag.ingest.lexical import LexicalIndex, NoLexicalIndex, collection_key, open_lexical_index
from rag.ingest.summaries import SummaryStore
from rag.logs import event_log, log_event
from rag.redact import redact_text
from rag.schema import Article
from rag.settings import Settings

if TYPE_CHECKING:  # chromadb is imported when a store is opened, not by importing this module
    from langchain_chroma import Chroma

log = logging.getLogger(__name__)


class IndexBusyError(Exception):
    pass


class DiskFullError(Exception):
    pass


class IndexLockLostError(Exception):
    pass


LOCK_LOST = ("the record database restarted (or dropped this indexer's connection) during indexing, and with it "
             "the indexer lock: stopped so that two indexers never write at once. What was written is kept; "
             "run the same command again to finish")


def _is_disk_full(exc: BaseException) -> bool:
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "disk is full" in str(exc).lower() or "no space left" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass
class IndexSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed, {len(self.failed)} failed "
                f"({self.chunks_written} chunks written, {self.chunks_deleted} deleted) in {self.seconds:.1f} s")


def run_indexing(components, sources: list[str], *, prune: bool = False, rebuild: bool = False, wait: bool = False,
                 progress=None, load_progress=None, report: Callable[[str], None] = lambda message: None,
                 embeddings: Embeddings | None = None, log_sources: bool = True,
                 within: list[Path] | None = None) -> IndexSummary:
    """What `python -m rag index` and the admin tab both do: lock, load, index, report.

    ``components`` is a ``rag.components.Components``; ``embeddings`` replaces its embedding model
    for computing vectors (the CLI passes an ``EmbeddingProcess``). With ``prune``, articles missing from
    ``sources`` are removed — unless some source failed to load, since a page that is down
    must not count as deleted. ``within``: folders every file must lie inside (the watcher's).
    """
    settings = components.settings
    with indexer_lock(settings, wait=wait) as still_locked:
        started, started_at = time.perf_counter(), runs.now()
        try:
            summary = _index_sources(components, sources, prune=prune, rebuild=rebuild, progress=progress,
                                     load_progress=load_progress, report=report, embeddings=embeddings,
                                     log_sources=log_sources, within=within, still_locked=still_locked)
        except BaseException as exc:  # Ctrl-C included: the run did not finish, and /metrics says so
            _remember_run(settings, runs.IndexingRun(started_at, time.perf_counter() - started, 0, False))
            log_event(event_log, "indexing_run", "indexing run failed after %.1f s (%s)",
                      time.perf_counter() - started, type(exc).__name__, finished=False,
                      seconds=round(time.perf_counter() - started, 2), error=type(exc).__name__)
            raise
        summary.seconds = time.perf_counter() - started
        _remember_run(settings, runs.IndexingRun(started_at, summary.seconds, len(summary.failed), True,
                                                 summary.chunks_written))
        log_event(event_log, "indexing_run", "indexing run: %s", summary.line(), finished=True,
                  seconds=round(summary.seconds, 2), added=len(summary.added), updated=len(summary.updated),
                  removed=len(summary.removed), failed_sources=len(summary.failed),
                  chunks_written=summary.chunks_written)
    return summary


def _remember_run(settings: Settings, run: runs.IndexingRun) -> None:
    try:
        record_manager = open_record_manager(settings)
        runs.IndexingRuns(record_manager.engine, record_manager.namespace).record(run)
    except Exception as exc:  # the database that failed the run may be the one we would write to
        event_log.warning("could not record the indexing run: %s", type(exc).__name__)


def _index_sources(components, sources: list[str], *, prune: bool, rebuild: bool, progress, load_progress,
                   report: Callable[[str], None], embeddings: Embeddings | None, log_sources: bool,
                   within: list[Path] | None, still_locked: IndexerLock) -> IndexSummary:
    """``run_indexing``'s work, inside the indexer lock."""
    from rag.ingest.fetch import Fetcher
    from rag.ingest.load import FeedLimits, load_sources
    from rag.ingest.ocr import Ocr

    settings, started = components.settings, time.perf_counter()
    if rebuild:
        from rag.ingest.store import delete_collection

        delete_collection(settings, components.client)
        components.forget_store()
        forget_all_records(open_record_manager(settings))
    record_manager = open_record_manager(settings)
    log = SourceLog(record_manager.engine, record_manager.namespace)
    # A feed entry is skipped unfetched if it is unchanged and its article is still indexed.
    loaded = load_sources(sources, fetch=Fetcher.from_settings(settings), progress=load_progress,
                          skip_entry=lambda entry, doc_id: log.indexed_unchanged(entry) == doc_id
                          and bool(record_manager.list_keys(group_ids=[doc_id], limit=1)), within=within,
                          feed_limits=FeedLimits(settings.feed_timeout_s, settings.feed_max_pages),
                          ocr=Ocr.from_settings(settings))
    for source, reason in loaded.failures:
        report(f"skipped {source}: {reason}")
    if prune and loaded.failures:
        report("not pruning: some sources failed to load; fix them and run again")
    try:
        summary = index_articles(loaded.articles, store=lambda: components.store(create=True),
                                 embeddings=embeddings or components.embedding_model,
                                 record_manager=record_manager, chunker=components.chunker,
                                 prune=prune and not loaded.failures, progress=progress, keep=loaded.kept,
                                 still_locked=still_locked)
    except Exception as exc:
        if _is_disk_full(exc):
            raise DiskFullError(
                f"the disk holding {settings.data_dir} is full. Free some space and run the same command "
                "again: what was indexed before is intact, and the run resumes where it stopped") from exc
        raise
    log.remember(loaded.feed_entries)  # only now: a failed write is retried next time
    log.remember_files({a.path: a.doc_id for a in loaded.articles if a.path})
    summary.failed = loaded.failures
    summary.seconds = time.perf_counter() - started
    for source in sources if log_sources else ():  # the Admin tab's list of sources
        log.checked(redact_text(source), source_kind(source, loaded.feeds), summary.line())
    return summary


def source_kind(source: str, feeds: list[str]) -> str:
    if source in feeds:
        return "feed"
    if source.startswith(("http://", "https://")):
        return "web page"
    return "folder" if Path(source).is_dir() else "file"


_FINGERPRINTS = Table("article_fingerprints", MetaData(), Column("namespace", String(255), primary_key=True),
                      Column("doc_id", String(255), primary_key=True), Column("fingerprint", String(64)))
# The record database's schema, for SQLite and PostgreSQL alike. Every table is created "if not
# exists": record databases from before these migrations were numbered already hold them.
RECORD_MIGRATIONS = [
    lambda db: RecordTables.metadata.create_all(db),  # LangChain's record manager's own tables
    CreateTable(_FINGERPRINTS, if_not_exists=True),
    *feeds.MIGRATIONS,
    # The indexer lock's fencing token (PostgreSQL): each holder takes the next number, and every
    # write checks it still has the latest (``IndexerLock.fence``).
    "CREATE TABLE IF NOT EXISTS indexer_fences (lock_name VARCHAR(200) PRIMARY KEY, token BIGINT NOT NULL)",
    *runs.MIGRATIONS,  # indexing runs, for the web app's /metrics
]


def open_record_manager(settings: Settings) -> SQLRecordManager:
    if not settings.shared_state:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_for(settings.record_db_url, settings.db_timeouts)
    migrate(engine, "records", RECORD_MIGRATIONS)
    return SQLRecordManager(namespace=f"chroma/{settings.collection}", engine=engine)


def lexical_index_of(record_manager: SQLRecordManager) -> LexicalIndex | NoLexicalIndex:
    """The lexical index lives beside the records, in the same database (``rag.ingest.lexical``)."""
    return open_lexical_index(record_manager.engine, record_manager.namespace)


def backfill_lexical(store: Chroma, lexical: LexicalIndex | NoLexicalIndex, page: int = 5000) -> None:
    """Fill an empty lexical index from the collection, a page at a time."""
    offset = 0
    while True:
        batch = store.get(include=["documents", "metadatas"], limit=page, offset=offset)
        lexical.add(batch["ids"], batch["documents"], batch["metadatas"])
        if len(batch["ids"]) < page:
            return
        offset += page


def forget_all_records(record_manager: SQLRecordManager) -> None:
    """Empty the record manager's namespace (for ``--rebuild``: the collection is gone too)."""
    lexical_index_of(record_manager).clear()
    keys = record_manager.list_keys()
    for start in range(0, len(keys), 5000):  # SQLite caps the parameters of one statement
        record_manager.delete_keys(keys[start:start + 5000])
    fingerprints = Fingerprints(record_manager)
    fingerprints.forget(list(fingerprints.all()))
    summaries = SummaryStore(record_manager.engine, record_manager.namespace)
    summaries.forget(list(summaries.fingerprints()))


BUSY = "another indexer is running on this index; wait for it, or pass --wait to queue behind it"


@contextmanager
def indexer_lock(settings: Settings, *, wait: bool) -> Iterator[IndexerLock]:
    """Hold the one-indexer-per-index lock for the ``with`` block, or raise ``IndexBusyError``
    (unless ``wait``: then queue behind the indexer that holds it). Yields a check that raises
    ``IndexLockLostError`` if the lock is no longer held (``index_articles`` calls it between batches).

    With shared state on PostgreSQL it is a session advisory lock, so it holds across machines and
    the server releases it when the holder's connection dies (a killed indexer) — and when the
    server restarts under a live indexer, hence the check. Otherwise a file lock under
    ``RAG_DATA_DIR``, which the OS releases when the process dies and nothing else takes away."""
    if settings.shared_state:
        with _advisory_lock(settings, wait=wait) as check:
            yield check
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.data_dir / "index.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout as exc:
        raise IndexBusyError(BUSY) from exc
    try:
        yield IndexerLock(lambda: None)
    finally:
        lock.release()


class IndexerLock:
    """The held indexer lock, as ``index_articles`` uses it: calling it raises ``IndexLockLostError``
    if the lock is gone (asked between batches), and ``fence(connection)`` does the same inside a
    write's own transaction — by the fencing token, so a holder whose lock was taken over is
    stopped before its next write even if it has not asked yet."""

    def __init__(self, check: Callable[[], None], fence: Callable[[Connection], None] | None = None) -> None:
        self._check, self.fence = check, fence

    def __call__(self) -> None:
        self._check()


@contextmanager
def _advisory_lock(settings: Settings, *, wait: bool) -> Iterator[IndexerLock]:
    engine = engine_for(settings.record_db_url, settings.db_timeouts)
    name = f"rag-indexer:{collection_key(f'chroma/{settings.collection}')}"  # the tables' own name
    key = lock_key(name)
    try:
        migrate(engine, "records", RECORD_MIGRATIONS)  # the fencing token's table
        db = engine.connect()
    except Exception as exc:
        raise StateDatabaseError(f"the record database at {server_name(engine)} is not answering "
                                 f"({type(exc).__name__}); nothing was indexed") from exc
    with db:
        if wait:  # queueing behind another indexer may take long: no statement or lock timeout for this one
            db.execute(text("SET statement_timeout = 0"))
            db.execute(text("SET lock_timeout = 0"))
            db.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            db.execute(text("RESET statement_timeout"))
            db.execute(text("RESET lock_timeout"))
        elif not db.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            raise IndexBusyError(BUSY)
        # The lock's connection sits idle between checks: a server's idle_session_timeout must not end it.
        db.execute(text("SET idle_session_timeout = 0"))
        token = db.execute(text("INSERT INTO indexer_fences VALUES (:n, 1) ON CONFLICT (lock_name) DO UPDATE "
                                "SET token = indexer_fences.token + 1 RETURNING token"), {"n": name}).scalar_one()
        db.commit()  # the lock belongs to the session: no transaction stays open while indexing

        def check() -> None:
            try:
                # pg_locks shows a 64-bit key as two unsigned 32-bit halves (objsubid 1: one bigint key).
                held = db.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                       "AND pid = pg_backend_pid() AND classid::bigint = :high "
                                       "AND objid::bigint = :low AND objsubid = 1"),
                                  {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).scalar()
                db.commit()
            except Exception as exc:  # the connection is gone, and the server freed the lock with it
                raise IndexLockLostError(LOCK_LOST) from exc
            if not held:
                raise IndexLockLostError(LOCK_LOST)

        def fence(write: Connection) -> None:
            """In a write's transaction: still the latest holder? (FOR SHARE: a new holder's token
            waits for this write to commit, and every later write of ours sees the new token.)"""
            latest = write.execute(text("SELECT token FROM indexer_fences WHERE lock_name = :n FOR SHARE"),
                                   {"n": name}).scalar()
            if latest != token:
                raise IndexLockLostError(LOCK_LOST)

        try:
            yield IndexerLock(check, fence)
        finally:
            try:
                db.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                db.commit()
            except Exception:  # the connection is gone, and with it the lock
                db.invalidate()


def index_articles(
    articles: list[Article],
    *,
    store: Chroma | Callable[[], Chroma],
    record_manager: SQLRecordManager,
    embeddings: Embeddings | None = None,
    chunker: Chunker,
    prune: bool = False,
    progress: Callable[[Iterable[Document], int], Iterable[Document]] | None = None,
    batch_size: int = 256,
    keep: Iterable[str] = (),
    still_locked: Callable[[], None] = lambda: None,
) -> IndexSummary:
    """Write ``articles`` into the store; with ``prune``, remove every article not among them or
    ``keep`` (feed entries skipped unfetched as unchanged: they are still wanted).

    An article whose fingerprint (its cleaned content, metadata and the chunker's settings)
    matches the one recorded at its last successful indexing is skipped before chunking. All
    others go through LangChain's ``index()``, which writes only chunks it has no record of and
    removes the article's chunks that are no longer produced. The chunks it will have to embed
    are handed to an ``EmbeddingPrefetcher`` as soon as they are cut, so the model computes while
    this thread chunks the remaining articles and writes (indexing then runs at ~the model's speed).

    ``store`` may be a function that opens it: it is called only once there is something to write
    or remove, after the model has started computing. ``embeddings`` defaults to the store's.
    ``still_locked`` (from ``indexer_lock``) is called before each batch is written and before
    pruning: it raises if this indexer has lost its lock, so the run stops instead of writing beside another.
    """
    started = time.perf_counter()
    opened: list[Chroma] = []

    def the_store() -> Chroma:
        if not opened:
            opened.append(store() if callable(store) else store)
        return opened[0]

    summary = IndexSummary()
    lexical = lexical_index_of(record_manager)
    if lexical.size() == 0 and record_manager.list_keys(limit=1):  # an index built before the lexical table
        backfill_lexical(the_store(), lexical)
    elif not lexical.articles_complete() and not isinstance(lexical, NoLexicalIndex):
        log.info("filling the article list once from the collection's metadata (an index built before it was kept)")
        listed = time.perf_counter()
        rows = articles_in_store(the_store(), lexical)
        lexical.fill_articles(rows)
        log.info("article list filled: %d articles in %.0f s", len(rows), time.perf_counter() - listed)
    fingerprints = Fingerprints(record_manager)
    known = fingerprints.all()
    todo: dict[str, tuple[str, list[Document]]] = {}
    prefetcher: EmbeddingPrefetcher | None = None
    try:
        for article in articles:
            fingerprint = article_fingerprint(article, chunker)
            if known.get(article.doc_id) == fingerprint:
                summary.unchanged.append(article.doc_id)
                continue
            chunks = chunker.split(article)
            new_keys = {d.metadata["chunk_id"] for d in chunks}
            old_keys = set(record_manager.list_keys(group_ids=[article.doc_id]))
            bucket = summary.added if not old_keys else summary.unchanged if old_keys == new_keys else summary.updated
            bucket.append(article.doc_id)
            todo[article.doc_id] = (fingerprint, chunks)
            # Embed what index() will write ahead of it, while the rest is chunked and written.
            new_texts = [d.page_content for d in chunks if d.metadata["chunk_id"] not in old_keys]
            if new_texts and prefetcher is None:
                prefetcher = EmbeddingPrefetcher(embeddings or the_store().embeddings, group_size=batch_size)
                prefetcher.submit(new_texts)
                if getattr(prefetcher.model, "runs_in_this_process", True):
                    prefetcher.wait_until_running()
            elif new_texts:
                prefetcher.submit(new_texts)

        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        docs = [doc for _, chunks in todo.values() for doc in chunks]
        for doc in docs:
            doc.metadata["indexed_at"] = stamp
        if docs:
            from rag.ingest.store import writer_for  # chromadb is imported only when there is something to write

            stream: Iterable[Document] = progress(docs, len(docs)) if progress else docs
            stream = _checked_every(batch_size, stream, still_locked)
            writer = writer_for(the_store(), lexical, prefetcher, fence=getattr(still_locked, "fence", None))
            result = langchain_index(stream, record_manager, writer,
                                     cleanup="incremental", source_id_key="doc_id", key_encoder=_chunk_key,
                                     batch_size=batch_size)
            summary.chunks_written = result["num_added"] + result["num_updated"]
            summary.chunks_deleted = result["num_deleted"]
            still_locked()  # the steps after the last batch write too
            for doc_id in todo:  # rows a crashed run may have left beside what is recorded now
                lexical.keep_only(doc_id, set(record_manager.list_keys(group_ids=[doc_id])))
            still_locked()
            fingerprints.save({doc_id: fingerprint for doc_id, (fingerprint, _) in todo.items()})
    finally:
        if prefetcher:
            prefetcher.close()
    summary.unchanged.extend(keep)
    if prune:
        still_locked()
        wanted = {a.doc_id for a in articles} | set(keep)
        gone = sorted((set(indexed_doc_ids(record_manager)) | set(known)) - wanted)
        removed = remove_articles(gone, store=the_store(), record_manager=record_manager) if gone else {}
        summary.removed = gone
        summary.chunks_deleted += sum(removed.values())
    if summary.chunks_written or summary.chunks_deleted:
        bump_generation(the_store())
    summary.seconds = time.perf_counter() - started
    return summary


def _checked_every(size: int, docs: Iterable[Document], check: Callable[[], None]) -> Iterator[Document]:
    """``docs``, calling ``check`` before each ``size`` of them (``index()`` takes them in batches of ``size``)."""
    for i, doc in enumerate(docs):
        if i % size == 0:
            check()
        yield doc


def article_fingerprint(article: Article, chunker: Chunker) -> str:
    content = json.dumps([article.doc_id, article.title, article.text, article.date, article.author,
                          article.source, article.headings, chunker.signature,
                          *([article.pages] if article.pages else []), *(["ocr"] if article.ocr else [])],
                         ensure_ascii=False)  # unpaged, not scanned: as before
    return hashlib.sha256(content.encode()).hexdigest()


class Fingerprints:
    """doc_id -> fingerprint of what was last indexed successfully, beside the record manager."""

    def __init__(self, record_manager: SQLRecordManager) -> None:
        self.engine = record_manager.engine
        self.namespace = record_manager.namespace

    def all(self) -> dict[str, str]:
        with self.engine.begin() as connection:
            rows = connection.execute(text(
                "SELECT doc_id, fingerprint FROM article_fingerprints WHERE namespace = :ns"), {"ns": self.namespace})
            return dict(rows.fetchall())

    def count(self) -> int:
        """Articles indexed (one fingerprint each)."""
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM article_fingerprints WHERE namespace = :ns"),
                                          {"ns": self.namespace}).scalar() or 0)

    def save(self, fingerprints: dict[str, str]) -> None:
        with self.engine.begin() as connection:  # delete + insert: portable across SQL databases
            self._delete(connection, list(fingerprints))
            for doc_id, fingerprint in fingerprints.items():
                connection.execute(text("INSERT INTO article_fingerprints VALUES (:ns, :doc_id, :fingerprint)"),
                                   {"ns": self.namespace, "doc_id": doc_id, "fingerprint": fingerprint})

    def forget(self, doc_ids: list[str]) -> None:
        with self.engine.begin() as connection:
            self._delete(connection, doc_ids)

    def _delete(self, connection, doc_ids: list[str]) -> None:
        for doc_id in doc_ids:
            connection.execute(text("DELETE FROM article_fingerprints WHERE namespace = :ns AND doc_id = :doc_id"),
                               {"ns": self.namespace, "doc_id": doc_id})


def remove_articles(doc_ids: list[str], *, store: Chroma, record_manager: SQLRecordManager) -> dict[str, int]:
    """Delete every chunk of each article; returns chunks removed per doc id (0 = was not indexed)."""
    lexical_index_of(record_manager).delete_articles(doc_ids)
    removed: dict[str, int] = {}
    for doc_id in doc_ids:
        keys = record_manager.list_keys(group_ids=[doc_id])
        # Also sweep the store itself, so chunks written before a crash (not yet recorded) go too.
        stored = store.get(where={"doc_id": doc_id}, include=[])["ids"]
        ids = sorted(set(keys) | set(stored))
        if ids:
            store.delete(ids=ids)
            record_manager.delete_keys(keys)
        removed[doc_id] = len(ids)
    Fingerprints(record_manager).forget(doc_ids)
    SummaryStore(record_manager.engine, record_manager.namespace).forget(doc_ids)  # a summary goes with its article
    if any(removed.values()):
        bump_generation(store)
    return removed


def indexed_doc_ids(record_manager: SQLRecordManager) -> list[str]:
    with record_manager._make_session() as session:  # the manager has no public "list groups"
        from langchain_classic.indexes._sql_record_manager import UpsertionRecord

        rows = session.query(UpsertionRecord.group_id).filter(
            UpsertionRecord.namespace == record_manager.namespace).distinct()
        return sorted(r[0] for r in rows if r[0])


def list_articles(store: Chroma, lexical: LexicalIndex | NoLexicalIndex | None = None) -> list[dict]:
    """One row per indexed article: doc_id, title, date, source, chunks, indexed_at — from the
    lexical index's article list when it has one (``rag.ingest.lexical``), else from Chroma."""
    if lexical is not None and (rows := lexical.articles()) is not None:
        return rows
    return articles_in_store(store, lexical)


def articles_in_store(store: Chroma, lexical: LexicalIndex | NoLexicalIndex | None = None) -> list[dict]:
    """``list_articles`` from every chunk's metadata in Chroma, read by the word index's chunk ids
    when it has them (5,000 ids a request: ~0.3 s at any size), else page by page (an offset Chroma
    skips row by row: 2.5 s a page at 500k, 3.7 s at 950k — at 1M chunks unfinished after 12 min)."""
    rows: dict[str, dict] = {}
    pages = lexical.chunk_id_pages() if lexical is not None and lexical.size() else None
    metadatas = (meta for ids in pages for meta in store.get(ids=ids, include=["metadatas"])["metadatas"]) \
        if pages is not None else iter_metadatas(store)
    for meta in metadatas:
        row = rows.setdefault(meta["doc_id"], {
            "doc_id": meta["doc_id"], "title": meta.get("title", ""), "date": meta.get("date", ""),
            "source": meta.get("source", ""), "chunks": 0, "indexed_at": meta.get("indexed_at", ""),
        })
        row["chunks"] += 1
        row["indexed_at"] = max(row["indexed_at"], meta.get("indexed_at", ""))
    return sorted(rows.values(), key=lambda r: r["doc_id"])


def iter_metadatas(store: Chroma, page: int = 5000) -> Iterator[dict]:
    offset = 0
    while True:
        batch = store.get(include=["metadatas"], limit=page, offset=offset)
        yield from batch["metadatas"]
        if len(batch["ids"]) < page:
            return
        offset += page


def bump_generation(store: Chroma) -> int:
    collection = store._collection
    metadata = dict(collection.metadata or {})
    metadata["generation"] = int(metadata.get("generation", 0)) + 1
    collection.modify(metadata=metadata)
    return metadata["generation"]


def _chunk_key(doc: Document) -> str:
    return doc.metadata["chunk_id"]
