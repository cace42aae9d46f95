"""Per-client limits for the web app: backoff after wrong passwords, rate limits on writes, a
question budget (a token bucket: ``RAG_QUESTIONS_PER_MINUTE``), and fair turns at the model
(``FairGate``: one client's burst waits behind every other client's next question).

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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateIndex, CreateTable

from rag.db import lock_key, migrate
from rag.logs import event_log, log_event

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
        self._buckets: _Bounded = _Bounded()  # (what, client) -> (tokens, when counted)
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

    def bucket(self, what: str, client: str, now: float, rate_per_s: float, capacity: float, take: bool) -> float:
        """A token bucket per client: ``capacity`` tokens, refilled at ``rate_per_s``. With ``take``,
        spend one if there is one. Returns 0.0 when a token is (was) there, else the seconds until one is."""
        with self._lock:
            tokens, updated = self._buckets.get((what, client), (capacity, now))
            tokens = min(capacity, tokens + (now - updated) * rate_per_s)
            if tokens < 1.0:
                return (1.0 - tokens) / rate_per_s
            if take:
                self._buckets.touch((what, client), lambda: None)
                self._buckets[(what, client)] = (tokens - 1.0, now)
            return 0.0


_tables = MetaData()
_FAILURES = Table("login_failures", _tables, Column("client", String(64), primary_key=True),
                  Column("failures", Integer, nullable=False), Column("last_failure", Float, nullable=False))
_ACTIONS = Table("limited_actions", _tables, Column("id", Integer, primary_key=True),
                 Column("what", String(32), nullable=False), Column("client", String(64), nullable=False),
                 Column("at", Float, nullable=False))
_BUCKETS = Table("token_buckets", _tables, Column("what", String(32), primary_key=True),
                 Column("client", String(64), primary_key=True), Column("tokens", Float, nullable=False),
                 Column("updated", Float, nullable=False))
MIGRATIONS = [CreateTable(_FAILURES), CreateTable(_ACTIONS),
              CreateIndex(Index("limited_actions_client", _ACTIONS.c.what, _ACTIONS.c.client, _ACTIONS.c.at)),
              # Pruning by age without scanning the table (clients that rotate addresses leave many rows).
              CreateIndex(Index("limited_actions_at", _ACTIONS.c.what, _ACTIONS.c.at)),
              CreateIndex(Index("login_failures_last", _FAILURES.c.last_failure)),
              CreateTable(_BUCKETS), CreateIndex(Index("token_buckets_updated", _BUCKETS.c.updated))]
FORGET_AFTER_S = 86_400.0  # a client's failures are forgotten a day after its last one
MAX_ROWS = 100_000  # rows kept per table at most, whatever the addresses: the oldest go first


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
            _cap(db, "login_failures", "last_failure")
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
            _cap(db, "limited_actions", "at")
            count, oldest = db.execute(text("SELECT count(*), min(at) FROM limited_actions WHERE what = :w AND client = :c"),
                                       {"w": what, "c": client}).one()
            if count >= limit:
                return float(oldest) + window_s - now
            db.execute(text("INSERT INTO limited_actions (what, client, at) VALUES (:w, :c, :now)"),
                       {"w": what, "c": client, "now": now})
            return 0.0

    def bucket(self, what: str, client: str, now: float, rate_per_s: float, capacity: float, take: bool) -> float:
        with self.engine.begin() as db:
            self._serialise(db, what, client)
            row = db.execute(text("SELECT tokens, updated FROM token_buckets WHERE what = :w AND client = :c"),
                             {"w": what, "c": client}).first()
            tokens = capacity if row is None else min(capacity, float(row[0]) + (now - float(row[1])) * rate_per_s)
            if tokens < 1.0:
                return (1.0 - tokens) / rate_per_s
            if take:
                # A bucket full again is the same as none: such rows go (the table stays small).
                db.execute(text("DELETE FROM token_buckets WHERE what = :w AND updated < :full"),
                           {"w": what, "full": now - capacity / rate_per_s})
                _cap(db, "token_buckets", "updated")
                params = {"w": what, "c": client, "t": tokens - 1.0, "now": now}
                if row is None:
                    db.execute(text("INSERT INTO token_buckets VALUES (:w, :c, :t, :now)"), params)
                else:
                    db.execute(text("UPDATE token_buckets SET tokens = :t, updated = :now WHERE what = :w AND client = :c"),
                               params)
            return 0.0


def _cap(db, table: str, column: str) -> None:
    """At most MAX_ROWS rows in ``table``: past that, the oldest (by ``column``, indexed) go."""
    cutoff = db.execute(text(f"SELECT {column} FROM {table} ORDER BY {column} DESC LIMIT 1 OFFSET :n"),
                        {"n": MAX_ROWS}).scalar()
    if cutoff is not None:
        db.execute(text(f"DELETE FROM {table} WHERE {column} <= :cutoff"), {"cutoff": cutoff})


Counts = MemoryCounts | SharedCounts


class LoginThrottle:
    """The first ``free`` wrong passwords from a client cost nothing; after that each try must wait
    ``base_s`` × 2^(failures − free) seconds (at most ``max_wait_s``) after the last failure, and a
    try made sooner is refused without checking the password. Failures are logged, passwords never."""

    def __init__(self, free: int = 5, base_s: float = 2.0, max_wait_s: float = 900.0,
                 clock: Callable[[], float] | None = None, counts: Counts | None = None,
                 on_failure: Callable[[str], None] = lambda role: None) -> None:
        self.free, self.base_s, self.max_wait_s = free, base_s, max_wait_s
        self.counts = counts or MemoryCounts()
        self.clock = clock or self.counts.clock
        self.on_failure = on_failure  # rag.web.metrics counts them

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next try (0 = may try now)."""
        count, last = self.counts.failures(client)
        if count < self.free:
            return 0.0
        wait = min(self.max_wait_s, self.base_s * 2 ** (count - self.free))
        return max(0.0, last + wait - self.clock())

    def check(self, client: str) -> None:
        if (wait := self.wait_s(client)) > 0:
            limit_hit("logins", client)
            raise LimitExceeded(f"too many wrong passwords; try again in {wait:.0f} s")

    def failed(self, client: str, role: str) -> None:
        count = self.counts.add_failure(client, self.clock())
        log_event(event_log, "login_failed", "wrong %s password from %s (%d in a row)", role, client, count,
                  level=logging.WARNING, role=role, client=client, failures=count)
        self.on_failure(role)

    def succeeded(self, client: str) -> None:
        self.counts.clear_failures(client)


class RateLimit:
    """At most ``limit`` actions per client in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, what: str, clock: Callable[[], float] | None = None,
                 counts: Counts | None = None, on_hit: Callable[[str], None] = lambda what: None) -> None:
        self.limit, self.window_s, self.what = limit, window_s, what
        self.counts = counts or MemoryCounts()
        self.clock = clock or self.counts.clock
        self.on_hit = on_hit  # rag.web.metrics counts them

    def take(self, client: str) -> None:
        wait = self.counts.take(self.what, client, self.clock(), self.window_s, self.limit)
        if wait > 0:
            limit_hit(self.what, client)
            self.on_hit(self.what)
            raise LimitExceeded(f"too many {self.what}; try again in {wait:.0f} s")


class QuestionBudget:
    """Questions per client: a token bucket of ``per_minute`` tokens (a burst of that many, then one
    every 60/``per_minute`` s). ``per_minute`` 0: no limit."""

    def __init__(self, per_minute: int, counts: Counts | None = None, clock: Callable[[], float] | None = None,
                 on_hit: Callable[[str], None] = lambda what: None) -> None:
        self.per_minute = per_minute
        self.counts = counts or MemoryCounts()
        self.clock = clock or self.counts.clock
        self.on_hit = on_hit

    def wait_s(self, client: str, *, take: bool) -> float:
        """0.0 when the client may ask now (and, with ``take``, the question is counted); else seconds to wait."""
        if self.per_minute <= 0:
            return 0.0
        wait = self.counts.bucket("questions", client, self.clock(), self.per_minute / 60.0, float(self.per_minute), take)
        if wait > 0:
            limit_hit("questions", client)
            self.on_hit("questions")
        return wait

    def take(self, client: str) -> None:
        if (wait := self.wait_s(client, take=True)) > 0:
            raise LimitExceeded(too_many_questions(wait))


def limit_hit(what: str, client: str) -> None:
    log_event(event_log, "limit_hit", "limit on %s reached by %s", what, client, level=logging.WARNING,
              limit=what, client=client)


def too_many_questions(wait_s: float) -> str:
    return f"Too many questions from your address; try again in {max(1, round(wait_s))} s."


class FairGate:
    """Turns at the model for ``slots`` questions at a time, handed out round-robin between clients:
    a client's second question waits until every other waiting client has had its next turn, so a
    burst from one client cannot starve another's first question (Gradio's own queue is first come,
    first served). Threads wait here, cheaply; the model serves only ``slots`` at once."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._busy = 0
        self._waiting: OrderedDict[str, deque] = OrderedDict()  # client -> its waiting turns, in order
        self._lock = threading.Condition()

    @contextmanager
    def turn(self, client: str, waiting: AbstractContextManager = nullcontext()) -> Iterator[None]:
        """Hold one of the model's slots for the ``with`` block, when it is ``client``'s turn.
        ``waiting`` is entered for the wait alone (``rag.web.metrics`` counts who is waiting)."""
        with waiting:
            self._acquire(client)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, client: str) -> None:
        ticket = object()
        with self._lock:
            self._waiting.setdefault(client, deque()).append(ticket)
            try:
                self._lock.wait_for(lambda: self._busy < self.slots and self._next() is ticket)
            except BaseException:
                self._withdraw(client, ticket)
                raise
            self._withdraw(client, ticket)
            if self._waiting.get(client):
                self._waiting.move_to_end(client)  # its next question waits for the others' turns
            else:
                self._waiting.pop(client, None)
            self._busy += 1

    def _next(self):
        for tickets in self._waiting.values():  # the client that has waited longest for a turn first
            if tickets:
                return tickets[0]
        return None

    def _withdraw(self, client: str, ticket) -> None:
        tickets = self._waiting.get(client)
        if tickets and ticket in tickets:
            tickets.remove(ticket)
        self._lock.notify_all()

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1
            self._lock.notify_all()
