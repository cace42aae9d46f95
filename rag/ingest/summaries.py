"""Where article summaries are kept: beside the index's records (the same SQLite file or PostgreSQL
database, ``RAG_RECORD_DB_URL``, so several machines share them), one row per article, keyed by the
article's index fingerprint (``rag.ingest.index.Fingerprints``) so a changed article is known to
need a new one. Written by ``rag.answer.summary``; removed with their article.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Engine

from rag.db import migrate, now


@dataclass
class KeyPoint:
    text: str
    chunk_id: str  # the passage it is cited to
    start: int  # the passage's span in the article (for the source card and the citation)
    end: int
    passage: str = ""  # the passage's text, for the citation's quote


@dataclass
class Summary:
    doc_id: str
    title: str
    date: str
    source: str
    fingerprint: str  # the article's index fingerprint when summarised (rag.ingest.index.Fingerprints)
    points: list[KeyPoint]
    method: str  # "extractive" or the model's name
    created_at: str = field(default_factory=now)
    seconds: float = 0.0
    tokens: int = 0  # tokens the model wrote (0 for extractive)


MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS article_summaries (namespace VARCHAR(200) NOT NULL, doc_id VARCHAR(500) NOT NULL, "
    "fingerprint VARCHAR(64) NOT NULL, method VARCHAR(300) NOT NULL, summary TEXT NOT NULL, "
    "created_at VARCHAR(40) NOT NULL, PRIMARY KEY (namespace, doc_id))",
]


class SummaryStore:
    """doc_id → its latest summary, in the records database (``RAG_RECORD_DB_URL``)."""

    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace
        migrate(engine, "summaries", MIGRATIONS)

    def get(self, doc_id: str) -> Summary | None:
        with self.engine.begin() as db:
            row = db.execute(text("SELECT summary FROM article_summaries WHERE namespace = :ns AND doc_id = :d"),
                             {"ns": self.namespace, "d": doc_id}).fetchone()
        return _summary_from(row[0]) if row else None

    def fingerprints(self) -> dict[str, str]:
        return {doc_id: fingerprint for doc_id, (fingerprint, _method) in self.versions().items()}

    def versions(self) -> dict[str, tuple[str, str]]:
        """doc_id → (the article fingerprint it summarises, the method that wrote it)."""
        with self.engine.begin() as db:
            rows = db.execute(text("SELECT doc_id, fingerprint, method FROM article_summaries WHERE namespace = :ns"),
                              {"ns": self.namespace})
            return {doc_id: (fingerprint, method) for doc_id, fingerprint, method in rows}

    def pending(self) -> int:
        """Indexed articles with no summary of their current version (fingerprints are the index's,
        ``rag.ingest.index.Fingerprints``, kept in the same database)."""
        with self.engine.connect() as db:
            return int(db.execute(text(
                "SELECT count(*) FROM article_fingerprints AS f LEFT JOIN article_summaries AS s "
                "ON s.namespace = f.namespace AND s.doc_id = f.doc_id AND s.fingerprint = f.fingerprint "
                "WHERE f.namespace = :ns AND s.doc_id IS NULL"), {"ns": self.namespace}).scalar() or 0)

    def save(self, summary: Summary) -> None:
        """One article's summary, in its own transaction: a run killed midway keeps what it finished."""
        with self.engine.begin() as db:
            db.execute(text("DELETE FROM article_summaries WHERE namespace = :ns AND doc_id = :d"),
                       {"ns": self.namespace, "d": summary.doc_id})
            db.execute(text("INSERT INTO article_summaries VALUES (:ns, :d, :f, :m, :s, :at)"),
                       {"ns": self.namespace, "d": summary.doc_id, "f": summary.fingerprint, "m": summary.method,
                        "s": json.dumps(asdict(summary), ensure_ascii=False), "at": summary.created_at})

    def forget(self, doc_ids: list[str]) -> None:
        with self.engine.begin() as db:
            for doc_id in doc_ids:
                db.execute(text("DELETE FROM article_summaries WHERE namespace = :ns AND doc_id = :d"),
                           {"ns": self.namespace, "d": doc_id})


def _summary_from(raw: str) -> Summary:
    data = json.loads(raw)
    data["points"] = [KeyPoint(**p) for p in data["points"]]
    return Summary(**data)
