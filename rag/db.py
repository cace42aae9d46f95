"""The database that holds the product's state, on SQLite or PostgreSQL, through SQLAlchemy.

By default each kind of state is a SQLite file under ``RAG_DATA_DIR`` (``records.sqlite``: the
record manager, the lexical index, the sources log; ``app.sqlite``: feedback and unanswered
questions; ``eval.sqlite``: evaluation history) and limits are counted in memory. When
``RAG_RECORD_DB_URL`` is a PostgreSQL URL, **all** of it lives in that one database instead, so
app processes on several machines share one index, one feedback queue, one history and one set of
counters, and nothing is written to their data dirs (``Settings.state_db_url``).

Each store declares its schema once, as numbered migrations (portable SQL or SQLAlchemy DDL, the
same list for both engines); ``migrate`` applies the ones a database has not seen, recording them
per store in ``schema_migrations``. On PostgreSQL, a transaction-scoped advisory lock makes
processes that start at once apply each migration once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.schema import ExecutableDDLElement

# A migration: portable SQL, an SQLAlchemy DDL element (CreateTable …, compiled for each engine),
# or a function of the connection, for the rare step that must differ between engines.
Migration = str | ExecutableDDLElement | Callable[[Connection], None]

SERVER_SCHEMES = ("postgresql", "postgres")


class StateDatabaseError(Exception):
    """The state database cannot be reached or used; the message is safe to show operators."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_server_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() in SERVER_SCHEMES


def sqlalchemy_url(url: str) -> str:
    """``postgresql://user:pass@host/db`` (written the ordinary way) → psycopg 3's SQLAlchemy URL;
    anything else as is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in SERVER_SCHEMES:
        return f"postgresql+psycopg://{rest}"
    return url


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a PostgreSQL connection waits before it gives up (``Settings.db_timeouts``; seconds,
    0 = no limit): a statement (``statement_timeout``), a lock another session holds
    (``lock_timeout``), a connection attempt or a free pooled connection, and a peer that stopped
    answering on the network (TCP keepalives and ``tcp_user_timeout``)."""

    statement_s: float = 30.0
    lock_s: float = 5.0
    connect_s: float = 5.0
    network_s: float = 10.0


@cache
def engine_for(url: str, timeouts: DatabaseTimeouts = DatabaseTimeouts()) -> Engine:
    """One engine (and so one connection pool) per database and timeouts per process.

    SQLite: the file's folder is created and a connection waits up to 10 s for a writer instead of
    failing. PostgreSQL: ``timeouts`` bound every wait (a table lock held by another session, a
    server that stopped answering), and a pooled connection is tested before use, so the app
    recovers by itself after the server restarts or resumes."""
    url = sqlalchemy_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url)
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _wait_for_writers(connection, _record):
            connection.execute("PRAGMA busy_timeout=10000")

        return engine
    network = max(1, int(timeouts.network_s))
    options = (f"-c jit=off -c statement_timeout={int(timeouts.statement_s * 1000)} "  # JIT costs more than our queries
               f"-c lock_timeout={int(timeouts.lock_s * 1000)}")
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=max(1, timeouts.connect_s),
                         connect_args={"connect_timeout": max(1, int(timeouts.connect_s)), "application_name": "rag",
                                       "options": options, "keepalives": 1, "keepalives_idle": network,
                                       "keepalives_interval": max(1, network // 3), "keepalives_count": 3,
                                       "tcp_user_timeout": network * 1000})


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def migrate(engine: Engine, store: str, migrations: Sequence[Migration]) -> None:
    """Apply, once each and in order, the migrations of ``store`` this database has not seen."""
    with engine.begin() as db:
        if engine.dialect.name == "postgresql":
            db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("rag-migrations")})
        create_migrations_table(db)
        _adopt_single_store_history(db, store)
        done = {row[0] for row in db.execute(text("SELECT number FROM schema_migrations WHERE store = :s"),
                                             {"s": store})}
        for number, step in enumerate(migrations, 1):
            if number in done:
                continue
            if isinstance(step, str):
                db.execute(text(step))
            elif isinstance(step, ExecutableDDLElement):
                db.execute(step)
            else:
                step(db)
            db.execute(text("INSERT INTO schema_migrations VALUES (:s, :n, :at)"), {"s": store, "n": number, "at": now()})


def create_migrations_table(db: Connection) -> None:
    """``schema_migrations``: which numbered migrations each store has had (see ``migrate``)."""
    db.execute(text("CREATE TABLE IF NOT EXISTS schema_migrations (store VARCHAR(100) NOT NULL, "
                    "number INTEGER NOT NULL, applied_at VARCHAR(40) NOT NULL, PRIMARY KEY (store, number))"))


def _adopt_single_store_history(db: Connection, store: str) -> None:
    """Files written before ``schema_migrations`` held one store each, numbered in ``migrations``."""
    if db.dialect.name != "sqlite" or not inspect(db).has_table("migrations"):
        return
    db.execute(text("INSERT INTO schema_migrations SELECT :s, number, applied_at FROM migrations"), {"s": store})
    db.execute(text("DROP TABLE migrations"))


def server_name(engine: Engine) -> str:
    """``host:port/db`` of a server database (never its password), for messages."""
    url = engine.url
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
