"""Keep the index in step with folders as files arrive: ``python -m rag index PATH … --watch``.

watchfiles (Rust ``notify``: inotify on Linux) reports changes in batches, debounced, so a file
copied in pieces or saved twice is indexed once. Each batch goes through ``run_indexing`` (the
same lock, loader and summary line as a one-off run) for the files added or changed; a deleted
file's article is removed, found by its source path, so articles from other sources are never
touched. The chat picks the changes up as after any re-index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from rag.ingest.feeds import SourceLog
from rag.ingest.index import IndexSummary, indexer_lock, open_record_manager, remove_articles, run_indexing
from rag.ingest.load import file_path, indexable_below
from rag.redact import redact_text

DEBOUNCE_MS = 1600  # watchfiles' default: changes within this window make one batch


class Indexable(DefaultFilter):
    """watchfiles' own ignores (``.git``, editor swap and backup files, …), then the loader's rule
    for a folder's files (``rag.ingest.load.indexable_below``: supported types, nothing hidden)."""

    def __init__(self, roots: list[str]) -> None:
        super().__init__()
        self.roots = [Path(root).resolve() for root in roots]

    def __call__(self, change, path: str) -> bool:
        file = Path(path).resolve()
        root = next((r for r in self.roots if file.is_relative_to(r)), None)
        return super().__call__(change, path) and root is not None and indexable_below(root, file)


def watch_folders(components, paths: list[str], *, report: Callable[[IndexSummary], None],
                  stop: threading.Event | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
    """Index each debounced batch of changes under ``paths`` until ``stop`` is set (or Ctrl-C,
    which raises ``KeyboardInterrupt`` to the caller between batches)."""
    records = open_record_manager(components.settings)
    log = SourceLog(records.engine, records.namespace)
    for changes in watch(*paths, watch_filter=Indexable(paths), debounce=debounce_ms, stop_event=stop):
        changed = sorted({p for change, p in changes if change != Change.deleted and Path(p).is_file()})
        deleted = sorted({p for change, p in changes if change == Change.deleted and not Path(p).exists()})
        # The files are read only if they (after links) lie inside a watched folder: the filter
        # above saw them before the read, and a link can be swapped in between.
        summary = run_indexing(components, changed, wait=True, log_sources=False,
                               within=[Path(p) for p in paths]) if changed else IndexSummary()
        if deleted:
            summary.removed += remove_deleted_files(components, deleted)
        for path in paths:
            log.checked(redact_text(path), "watched folder", summary.line())
        report(summary)


def remove_deleted_files(components, files: list[str]) -> list[str]:
    """Remove the articles indexed from ``files``: found by the file each was read from
    (``SourceLog``), or — for articles indexed before that was kept — by a source that is the path."""
    sources = [str(Path(f).resolve()) for f in files]
    with indexer_lock(components.settings, wait=True):
        records = open_record_manager(components.settings)
        from_files = SourceLog(records.engine, records.namespace).forget_files([file_path(Path(f)) for f in files])
        store = components.store()
        found = store.get(where={"source": {"$in": sources}}, include=["metadatas"])
        doc_ids = sorted({meta["doc_id"] for meta in found["metadatas"]} | set(from_files))
        if doc_ids:
            remove_articles(doc_ids, store=store, record_manager=records)
    return doc_ids
