"""Readers' feedback: thumbs up/down and comments on answers, in SQLite under ``RAG_DATA_DIR``.

Each row keeps what staff need to review an answer without re-running it: the question, the
answer, its citations, the settings (secrets removed) and the timings. The schema evolves through
numbered migrations recorded in the database itself.
"""

from __future__ import annotations

import json
import sqlite3
import threading
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
