"""Small SQLite stores (feedback, evaluation runs) share this: open a file, apply numbered migrations."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def migrate(path: Path, migrations: list[str]) -> None:
    """Create ``path`` if needed and apply, once each and in order, the migrations it has not seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS migrations (number INTEGER PRIMARY KEY, applied_at TEXT)")
        done = {row[0] for row in db.execute("SELECT number FROM migrations")}
        for number, statement in enumerate(migrations, 1):
            if number not in done:
                db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (number, now()))


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=10)
    db.row_factory = sqlite3.Row
    return db
