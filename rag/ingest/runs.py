"""Indexing runs, as the records database remembers them: when each started, how long it took,
how many sources failed, and whether it finished. Written by ``rag.ingest.index.run_indexing``
(the CLI, the watcher and the Admin tab alike); read by the web app's ``/metrics``, so an operator
sees a failing nightly re-index on the dashboard, whichever machine ran it. The last 100 are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine

KEEP = 100

MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS indexing_runs (namespace VARCHAR(200) NOT NULL, started_at DOUBLE PRECISION NOT NULL, "
    "seconds DOUBLE PRECISION NOT NULL, failed_sources INTEGER NOT NULL, finished INTEGER NOT NULL, "
    "chunks_written INTEGER NOT NULL, PRIMARY KEY (namespace, started_at))",
]


@dataclass
class IndexingRun:
    started_at: float  # Unix time
    seconds: float
    failed_sources: int
    finished: bool  # False: the run raised (a full disk, a lost lock, a server that went away)
    chunks_written: int = 0


class IndexingRuns:
    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace

    def record(self, run: IndexingRun) -> None:
        with self.engine.begin() as db:
            db.execute(text("INSERT INTO indexing_runs VALUES (:ns, :at, :s, :failed, :finished, :chunks)"),
                       {"ns": self.namespace, "at": run.started_at, "s": run.seconds, "failed": run.failed_sources,
                        "finished": int(run.finished), "chunks": run.chunks_written})
            db.execute(text("DELETE FROM indexing_runs WHERE namespace = :ns AND started_at < (SELECT started_at "
                            "FROM indexing_runs WHERE namespace = :ns ORDER BY started_at DESC LIMIT 1 OFFSET :keep)"),
                       {"ns": self.namespace, "keep": KEEP - 1})

    def last(self) -> IndexingRun | None:
        with self.engine.connect() as db:
            row = db.execute(text("SELECT started_at, seconds, failed_sources, finished, chunks_written "
                                  "FROM indexing_runs WHERE namespace = :ns ORDER BY started_at DESC LIMIT 1"),
                             {"ns": self.namespace}).fetchone()
        return IndexingRun(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None


def now() -> float:
    return datetime.now(UTC).timestamp()
