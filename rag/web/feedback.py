"""What readers tell us, in the "app" state database (``RAG_DATA_DIR/app.sqlite``, or the shared
PostgreSQL database: ``rag.db``): their ratings and comments on answers (``FeedbackStore``), and
the questions the articles could not answer (``UnansweredLog``).

A feedback row keeps what staff need to review an answer without re-running it: the question, the
answer, its citations, the settings (secrets removed) and the timings. An unanswered question is
kept with its time, why it was refused and the closest article — no client address, no session —
for ``RAG_QUESTION_LOG_DAYS`` days, with e-mail addresses and phone numbers redacted. The schema
evolves through numbered migrations recorded in the database itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Integer, MetaData, Table, Text, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateTable

from rag.db import migrate, now
from rag.schema import Answer
from rag.web.limits import LimitExceeded, RateLimit

_tables = MetaData()
# The tables as first created; later columns come in later migrations (one definition, both engines).
_FEEDBACK = Table(
    "feedback", _tables,
    Column("id", Integer, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("refused", Integer, nullable=False),
    Column("citations", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("timings", Text, nullable=False),
    Column("llm", Text, nullable=False),
    Column("rating", Integer),  # 1 up, -1 down, NULL comment only
    Column("comment", Text, nullable=False, server_default=""),
    Column("reviewed", Integer, nullable=False, server_default="0"),
    sqlite_autoincrement=True)  # ids are never reused: staff refer to rows by id
_UNANSWERED = Table(
    "unanswered", _tables,
    Column("id", Integer, primary_key=True),
    Column("asked_at", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("kind", Text, nullable=False),  # rag.schema.REFUSAL_KINDS
    Column("closest_doc", Text, nullable=False, server_default=""),
    Column("closest_title", Text, nullable=False, server_default=""),
    Column("dismissed", Integer, nullable=False, server_default="0"),
    sqlite_autoincrement=True)

MIGRATIONS = [
    CreateTable(_FEEDBACK),
    # One row per answer: rating it again replaces the rating instead of adding rows.
    "ALTER TABLE feedback ADD COLUMN answer_id TEXT",
    "CREATE UNIQUE INDEX feedback_answer ON feedback (answer_id)",
    CreateTable(_UNANSWERED),
    "CREATE INDEX unanswered_asked_at ON unanswered (asked_at)",
    # The question's embedding (JSON), stored when it is logged: grouping never re-embeds the log.
    "ALTER TABLE unanswered ADD COLUMN embedding TEXT",
]


MAX_TEXT = 5000  # characters kept of a question, answer or comment


class FeedbackStore:
    """Ratings and comments; ``engine`` is ``rag.db.engine_for(settings.state_db_url("app"))``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine, "feedback", MIGRATIONS)

    def record(self, answer: Answer, *, rating: int | None, comment: str = "", settings: dict | None = None) -> int:
        """Store (or, for an answer rated before, update) the feedback on ``answer``; returns the row id."""
        data = answer.to_json()
        with self.engine.begin() as db:
            row_id = db.execute(text(
                "INSERT INTO feedback (created_at, question, answer, refused, citations, settings, timings, llm, "
                "rating, comment, answer_id) VALUES (:at, :q, :a, :refused, :citations, :settings, :timings, :llm, "
                ":rating, :comment, :answer_id) "
                "ON CONFLICT (answer_id) DO UPDATE SET rating = excluded.rating, created_at = excluded.created_at, "
                "reviewed = 0 RETURNING id"),
                {"at": now(), "q": redact_personal(answer.question)[:MAX_TEXT], "a": answer.answer[:MAX_TEXT],
                 "refused": int(answer.refused), "citations": json.dumps(data["citations"]),
                 "settings": json.dumps(settings or {}), "timings": json.dumps(data["timings"]), "llm": answer.llm,
                 "rating": rating, "comment": redact_personal(comment)[:MAX_TEXT], "answer_id": answer.id}).scalar_one()
            return int(row_id)

    def add_comment(self, feedback_id: int, comment: str) -> None:
        with self.engine.begin() as db:
            db.execute(text("UPDATE feedback SET comment = :c WHERE id = :id"),
                       {"c": redact_personal(comment)[:MAX_TEXT], "id": feedback_id})

    def rows(self, *, only_unreviewed: bool = False) -> list[dict]:
        """Thumbs-down first, newest first within each rating."""
        query = "SELECT * FROM feedback" + (" WHERE reviewed = 0" if only_unreviewed else "")
        query += " ORDER BY COALESCE(rating, 0) ASC, id DESC"
        with self.engine.connect() as db:
            return [dict(row) for row in db.execute(text(query)).mappings()]

    def row(self, feedback_id: int) -> dict | None:
        with self.engine.connect() as db:
            found = db.execute(text("SELECT * FROM feedback WHERE id = :id"), {"id": feedback_id}).mappings().first()
        return dict(found) if found is not None else None

    def mark_reviewed(self, feedback_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(text("UPDATE feedback SET reviewed = 1 WHERE id = :id"), {"id": feedback_id})


# What a reader may type that is theirs, not the question's: an e-mail address, a phone number.
# Matched after NFKC folding (a full-width "＠" is "@") with invisible format characters (soft
# hyphens, zero-width spaces) dropped; digits may be grouped by spaces, dots, brackets, slashes or
# any dash. A phone number is 9–15 digits, or 8 in at least four groups ("12 34 56 78"); a date or
# a span of years ("2019-2021", "2024/05/01") is neither.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SEPARATOR = r"[\s().\-/\u2010-\u2015\u2212]"
PHONE_CANDIDATE = re.compile(rf"(?<![\w.])\+?\d(?:{_SEPARATOR}{{0,3}}\d){{7,14}}(?![\w])")
MAX_QUESTION = 500  # characters kept of an unanswered question
MAX_ROWS = 5_000  # unanswered questions kept at most (the oldest go first): grouping 5,000 took 15 s on 2 cores, and clustering memory grows with its square


def redact_personal(text: str) -> str:
    """``mail me at ann@example.org or 555-123-4567`` → ``mail me at [email] or [phone]``."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")
    return PHONE_CANDIDATE.sub(_phone_or_not, EMAIL.sub("[email]", folded))


def _phone_or_not(match: re.Match) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    groups = len(re.findall(r"\d+", match.group(0)))
    return "[phone]" if digits >= 9 or (digits == 8 and groups >= 4) else match.group(0)


class UnansweredLog:
    """The questions readers asked through the web chat and ``/ask`` that were refused: kept for
    ``days`` days (0: none kept), at most ``MAX_ROWS``, pruned as new ones arrive."""

    def __init__(self, engine: Engine, days: int, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 embed: Callable[[str], list[float]] | None = None, limit: RateLimit | None = None) -> None:
        """``embed``: the index's embedder, to store each question's vector as it is logged;
        ``limit``: questions one client may add to the log (a flood would push out everyone else's)."""
        self.engine, self.days, self.clock = engine, days, clock
        self.embed, self.limit = embed, limit
        migrate(engine, "feedback", MIGRATIONS)

    def record(self, answer: Answer, client: str = "unknown") -> bool:
        """Keep ``answer``'s question if it was refused (and the log is on), unless the same question
        is already kept or this client has added its share lately. Returns whether it was kept."""
        if not answer.refused or self.days <= 0:
            return False
        question = redact_personal(answer.question)[:MAX_QUESTION]
        with self.engine.connect() as db:
            if db.execute(text("SELECT 1 FROM unanswered WHERE question = :q AND dismissed = 0"),
                          {"q": question}).first():
                return False  # an exact repeat adds nothing for staff
        if self.limit is not None:
            try:
                self.limit.take(client)
            except LimitExceeded:
                return False
        vector = json.dumps([round(x, 6) for x in self.embed(question)]) if self.embed else None
        closest = answer.contexts[0] if answer.contexts else None
        with self.engine.begin() as db:
            db.execute(text("INSERT INTO unanswered (asked_at, question, kind, closest_doc, closest_title, embedding) "
                            "VALUES (:at, :q, :kind, :doc, :title, :vector)"),
                       {"at": self._stamp(self.clock()), "q": question,
                        "kind": answer.refusal_kind or "model_declined", "doc": closest.doc_id if closest else "",
                        "title": closest.title[:300] if closest else "", "vector": vector})
            self._prune(db)
        return True

    def prune(self) -> None:
        with self.engine.begin() as db:
            self._prune(db)

    def _prune(self, db: Connection) -> None:
        db.execute(text("DELETE FROM unanswered WHERE asked_at < :t"),
                   {"t": self._stamp(self.clock() - timedelta(days=self.days))})
        db.execute(text("DELETE FROM unanswered WHERE id NOT IN "
                        "(SELECT id FROM unanswered ORDER BY id DESC LIMIT :n)"), {"n": MAX_ROWS})

    def rows(self, days: int | None = None, *, include_dismissed: bool = False) -> list[dict]:
        """Kept questions, oldest first; ``days``: only those of the last so many days."""
        self.prune()  # expired rows never show, even if nothing was asked since
        since = self._stamp(self.clock() - timedelta(days=days)) if days else ""
        query = "SELECT * FROM unanswered WHERE asked_at >= :since" + ("" if include_dismissed else " AND dismissed = 0")
        with self.engine.connect() as db:
            return [dict(row) for row in db.execute(text(query + " ORDER BY id"), {"since": since}).mappings()]

    def dismiss(self, ids: list[int]) -> None:
        with self.engine.begin() as db:
            db.execute(text("UPDATE unanswered SET dismissed = 1 WHERE id = :id"), [{"id": int(i)} for i in ids])

    @staticmethod
    def _stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="seconds")
