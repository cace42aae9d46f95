"""Per-client limits for the web app: backoff after wrong passwords, rate limits on writes.

Clients are identified by ``client_key`` of their address: the connecting address, or behind a
proxy the operator trusts (``RAG_TRUSTED_PROXIES``) the address it forwards (``rag.web.guard``).
The counts live in memory, per process and bounded (the oldest clients are forgotten first) —
or, when state is shared (``rag.db``: a PostgreSQL ``RAG_RECORD_DB_URL``), in that database
(``SharedCounts``), so every app process behind a load balancer counts the same tries.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateIndex, CreateTable

from rag.db import lock_key, migrate

log = logging.getLogger(__name__)

MAX_CLIENTS = 10_000


def client_key(address: str) -> str:
    """What limits count against: an IPv4 address as is, an IPv6 client by its /64 (one subscriber
    is usually handed a whole /64, so counting single addresses would give it 2^64 identities)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"  # never an invented name: everything unparseable shares one identity
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LimitExceeded(Exception):
    pass


class _Bounded(OrderedDict):
    def touch(self, key, default):
        value = self.pop(key, None) or default()
        self[key] = value
        while len(self) > MAX_CLIENTS:
            self.popitem(last=False)
        return value


class MemoryCounts:
    """This process's counts (the default: one app process)."""

    clock = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self._failures: _Bounded = _Bounded()  # client -> [count, time of the last failure]
        self._times: _Bounded = _Bounded()  # (what, client) -> times of recent actions
        self._lock = threading.Lock()

    def failures(self, client: str) -> tuple[int, float]:
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
        return count, last

    def add_failure(self, client: str, now: float) -> int:
        with self._lock:
            entry = self._failures.touch(client, lambda: [0, 0.0])
            entry[0] += 1
            entry[1] = now
            return entry[0]

    def clear_failures(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def take(self, what: str, client: str, now: float, window_s: float, limit: int) -> float:
        """Count an action if fewer than ``limit`` were taken in the window: 0.0; else the seconds
        until one may be taken."""
        with self._lock:
            times = self._times.touch((what, client), deque)
            while times and times[0] <= now - window_s:
                times.popleft()
            if len(times) >= limit:
                return times[0] + window_s - now
            times.append(now)
            return 0.0


_tables = MetaData()
_FAILURES = Table("login_failures", _tables, Column("client", String(64), primary_key=True),
                  Column("failures", Integer, nullable=False), Column("last_failure", Float, nullable=False))
_ACTIONS = Table("limited_actions", _tables, Column("id", Integer, primary_key=True),
                 Column("what", String(32), nullable=False), Column("client", String(64), nullable=False),
                 Column("at", Float, nullable=False))
MIGRATIONS = [CreateTable(_FAILURES), CreateTable(_ACTIONS),
              CreateIndex(Index("limited_actions_client", _ACTIONS.c.what, _ACTIONS.c.client, _ACTIONS.c.at))]
FORGET_AFTER_S = 86_400.0  # a client's failures are forgotten a day after its last one


class SharedCounts:
    """The same counts in the shared state database; times are wall-clock seconds, the one clock
    that machines share. Each client's check-and-count runs under a transaction-scoped advisory
    lock on PostgreSQL, so two processes cannot both let the last allowed try through."""

    clock = staticmethod(time.time)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine, "limits", MIGRATIONS)

    def _serialise(self, db, *key: str) -> None:
        if db.dialect.name == "postgresql":
            db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("rag-limit:" + ":".join(key))})

    def failures(self, client: str) -> tuple[int, float]:
        with self.engine.connect() as db:
            row = db.execute(text("SELECT failures, last_failure FROM login_failures WHERE client = :c"),
                             {"c": client}).first()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def add_failure(self, client: str, now: float) -> int:
        with self.engine.begin() as db:
            self._serialise(db, "login", client)
            db.execute(text("DELETE FROM login_failures WHERE last_failure < :old"), {"old": now - FORGET_AFTER_S})
            count = db.execute(text("SELECT failures FROM login_failures WHERE client = :c"), {"c": client}).scalar()
            if count is None:
                db.execute(text("INSERT INTO login_failures VALUES (:c, 1, :now)"), {"c": client, "now": now})
                return 1
            db.execute(text("UPDATE login_failures SET failures = :n, last_failure = :now WHERE client = :c"),
                       {"c": client, "n": count + 1, "now": now})
            return count + 1

    def clear_failures(self, client: str) -> None:
        with self.engine.begin() as db:
            db.execute(text("DELETE FROM login_failures WHERE client = :c"), {"c": client})

    def take(self, what: str, client: str, now: float, window_s: float, limit: int) -> float:
        with self.engine.begin() as db:
            self._serialise(db, what, client)
            db.execute(text("DELETE FROM limited_actions WHERE what = :w AND at <= :old"),
                       {"w": what, "old": now - window_s})
            count, oldest = db.execute(text("SELECT count(*), min(at) FROM limited_actions WHERE what = :w AND client = :c"),
                                       {"w": what, "c": client}).one()
            if count >= limit:
                return float(oldest) + window_s - now
            db.execute(text("INSERT INTO limited_actions (what, client, at) VALUES (:w, :c, :now)"),
                       {"w": what, "c": client, "now": now})
            return 0.0


Counts = MemoryCounts | SharedCounts


class LoginThrottle:
    """The first ``free`` wrong passwords from a client cost nothing; after that each try must wait
    ``base_s`` × 2^(failures − free) seconds (at most ``max_wait_s``) after the last failure, and a
    try made sooner is refused without checking the password. Failures are logged, passwords never."""

    def __init__(self, free: int = 5, base_s: float = 2.0, max_wait_s: float = 900.0,
                 clock: Callable[[], float] | None = None, counts: Counts | None = None) -> None:
        self.free, self.base_s, self.max_wait_s = free, base_s, max_wait_s
        self.counts = counts or MemoryCounts()
        self.clock = clock or self.counts.clock

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next try (0 = may try now)."""
        count, last = self.counts.failures(client)
        if count < self.free:
            return 0.0
        wait = min(self.max_wait_s, self.base_s * 2 ** (count - self.free))
        return max(0.0, last + wait - self.clock())

    def check(self, client: str) -> None:
        if (wait := self.wait_s(client)) > 0:
            raise LimitExceeded(f"too many wrong passwords; try again in {wait:.0f} s")

    def failed(self, client: str, role: str) -> None:
        count = self.counts.add_failure(client, self.clock())
        log.warning("wrong %s password from %s (%d in a row)", role, client, count)

    def succeeded(self, client: str) -> None:
        self.counts.clear_failures(client)


class RateLimit:
    """At most ``limit`` actions per client in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, what: str, clock: Callable[[], float] | None = None,
                 counts: Counts | None = None) -> None:
        self.limit, self.window_s, self.what = limit, window_s, what
        self.counts = counts or MemoryCounts()
        self.clock = clock or self.counts.clock

    def take(self, client: str) -> None:
        wait = self.counts.take(self.what, client, self.clock(), self.window_s, self.limit)
        if wait > 0:
            raise LimitExceeded(f"too many {self.what}; try again in {wait:.0f} s")
