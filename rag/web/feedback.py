"""What readers tell us, in SQLite under ``RAG_DATA_DIR`` (``app.sqlite``): their ratings and
comments on answers (``FeedbackStore``), and the questions the articles could not answer
(``UnansweredLog``).

A feedback row keeps what staff need to review an answer without re-running it: the question, the
answer, its citations, the settings (secrets removed) and the timings. An unanswered question is
kept with its time, why it was refused and the closest article — no client address, no session —
for ``RAG_QUESTION_LOG_DAYS`` days, with e-mail addresses and phone numbers redacted. The schema
evolves through numbered migrations recorded in the database itself.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rag.db import connect, migrate, now
from rag.schema import Answer

MIGRATIONS = [
    """CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        refused INTEGER NOT NULL,
        citations TEXT NOT NULL,
        settings TEXT NOT NULL,
        timings TEXT NOT NULL,
        llm TEXT NOT NULL,
        rating INTEGER,            -- 1 up, -1 down, NULL comment only
        comment TEXT NOT NULL DEFAULT '',
        reviewed INTEGER NOT NULL DEFAULT 0
    )""",
    # One row per answer: rating it again replaces the rating instead of adding rows.
    "ALTER TABLE feedback ADD COLUMN answer_id TEXT",
    "CREATE UNIQUE INDEX feedback_answer ON feedback (answer_id)",
    """CREATE TABLE unanswered (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        asked_at TEXT NOT NULL,
        question TEXT NOT NULL,
        kind TEXT NOT NULL,        -- rag.schema.REFUSAL_KINDS
        closest_doc TEXT NOT NULL DEFAULT '',
        closest_title TEXT NOT NULL DEFAULT '',
        dismissed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX unanswered_asked_at ON unanswered (asked_at)",
]


MAX_TEXT = 5000  # characters kept of a question, answer or comment


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        migrate(path, MIGRATIONS)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def record(self, answer: Answer, *, rating: int | None, comment: str = "", settings: dict | None = None) -> int:
        """Store (or, for an answer rated before, update) the feedback on ``answer``; returns the row id."""
        data = answer.to_json()
        with self._lock, self._connect() as db:
            (row_id,) = db.execute(
                "INSERT INTO feedback (created_at, question, answer, refused, citations, settings, timings, llm, "
                "rating, comment, answer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (answer_id) DO UPDATE SET rating = excluded.rating, created_at = excluded.created_at, "
                "reviewed = 0 RETURNING id",
                (now(), answer.question[:MAX_TEXT], answer.answer[:MAX_TEXT], int(answer.refused),
                 json.dumps(data["citations"]), json.dumps(settings or {}), json.dumps(data["timings"]), answer.llm,
                 rating, comment[:MAX_TEXT], answer.id),
            ).fetchone()
            return int(row_id)

    def add_comment(self, feedback_id: int, comment: str) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE feedback SET comment = ? WHERE id = ?", (comment[:MAX_TEXT], feedback_id))

    def rows(self, *, only_unreviewed: bool = False) -> list[dict]:
        """Thumbs-down first, newest first within each rating."""
        query = "SELECT * FROM feedback" + (" WHERE reviewed = 0" if only_unreviewed else "")
        query += " ORDER BY COALESCE(rating, 0) ASC, id DESC"
        with self._connect() as db:
            return [dict(row) for row in db.execute(query)]

    def row(self, feedback_id: int) -> dict | None:
        with self._connect() as db:
            found = db.execute("SELECT * FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
        return dict(found) if found is not None else None

    def mark_reviewed(self, feedback_id: int) -> None:
        with self._lock, self._connect() as db:
            db.execute("UPDATE feedback SET reviewed = 1 WHERE id = ?", (feedback_id,))


# What a reader may type that is theirs, not the question's: an e-mail address, a phone number
# (nine or more digits with the usual separators; dates and years have fewer).
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w.])\+?(?:\d[\s().-]{0,2}){9,15}(?![\w.])")
MAX_QUESTION = 500  # characters kept of an unanswered question
MAX_ROWS = 5_000  # unanswered questions kept at most (the oldest go first): grouping 5,000 took 15 s on 2 cores, and clustering memory grows with its square


def redact_personal(text: str) -> str:
    """``mail me at ann@example.org or 555-123-4567`` → ``mail me at [email] or [phone]``."""
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


class UnansweredLog:
    """The questions readers asked through the web chat and ``/ask`` that were refused: kept for
    ``days`` days (0: none kept), at most ``MAX_ROWS``, pruned as new ones arrive."""

    def __init__(self, path: Path, days: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path, self.days, self.clock = path, days, clock
        self._lock = threading.Lock()
        migrate(path, MIGRATIONS)

    def record(self, answer: Answer) -> None:
        """Keep ``answer``'s question if it was refused (and the log is on)."""
        if not answer.refused or self.days <= 0:
            return
        closest = answer.contexts[0] if answer.contexts else None
        with self._lock, connect(self.path) as db:
            db.execute("INSERT INTO unanswered (asked_at, question, kind, closest_doc, closest_title) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (self._stamp(self.clock()), redact_personal(answer.question)[:MAX_QUESTION],
                        answer.refusal_kind or "model_declined", closest.doc_id if closest else "",
                        closest.title[:300] if closest else ""))
            self._prune(db)

    def prune(self) -> None:
        with self._lock, connect(self.path) as db:
            self._prune(db)

    def _prune(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM unanswered WHERE asked_at < ?", (self._stamp(self.clock() - timedelta(days=self.days)),))
        db.execute("DELETE FROM unanswered WHERE id NOT IN (SELECT id FROM unanswered ORDER BY id DESC LIMIT ?)",
                   (MAX_ROWS,))

    def rows(self, days: int | None = None, *, include_dismissed: bool = False) -> list[dict]:
        """Kept questions, oldest first; ``days``: only those of the last so many days."""
        self.prune()  # expired rows never show, even if nothing was asked since
        since = self._stamp(self.clock() - timedelta(days=days)) if days else ""
        query = "SELECT * FROM unanswered WHERE asked_at >= ?" + ("" if include_dismissed else " AND dismissed = 0")
        with connect(self.path) as db:
            return [dict(row) for row in db.execute(query + " ORDER BY id", (since,))]

    def dismiss(self, ids: list[int]) -> None:
        with self._lock, connect(self.path) as db:
            db.executemany("UPDATE unanswered SET dismissed = 1 WHERE id = ?", [(int(i),) for i in ids])

    @staticmethod
    def _stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="seconds")
