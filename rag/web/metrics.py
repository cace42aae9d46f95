"""``/metrics``: what an operator graphs and alerts on, in Prometheus' text format (prometheus_client).

Counted as it happens, per process (each app process, on each machine, exposes its own and
Prometheus adds them up — a shared counter would be counted once per scrape target):
questions by outcome (answered, refused, withheld, error, rejected: over budget or restarting),
by kind (answer, summary, comparison, digest) and by refusal kind; histograms of retrieval time,
time to the first word, total time and the wait for a turn at the model; questions waiting now;
ratings; limit hits and failed logins.

Read when scraped, from the shared index and records (at most every ``STATS_EVERY_S``, under a
deadline so a stopped database cannot hang a scrape): articles and chunks in the index, the last
indexing run (when, how long, failed sources, finished or not), summaries still to prepare.
Plus the process's memory (prometheus_client's process collector) and live reader sessions.

Who may read it is ``MetricsAccess``: addresses in ``RAG_METRICS_ALLOW`` (loopback by default) or a
bearer token (``RAG_METRICS_TOKEN``).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

from rag.health import in_a_thread
from rag.schema import Answer

STATS_EVERY_S = 15.0
STATS_TIMEOUT_S = 2.0
# Seconds: a fact's first word takes ~0.5–8 s on the local 1.5B and ~0.3–2 s on a server.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

OUTCOMES = ("answered", "refused", "withheld", "error", "rejected")


def outcome_of(answer: Answer) -> str:
    """answered; refused (nothing similar, or the model said the articles don't say); withheld (the
    checks held back what the model wrote)."""
    if not answer.refused:
        return "answered"
    return "withheld" if answer.refusal_kind == "checks_withheld" else "refused"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.questions = Counter("rag_questions", "Questions answered, by outcome, kind and refusal kind.",
                                 ["outcome", "kind", "refusal_kind"], registry=r)
        self.retrieval = Histogram("rag_retrieval_seconds", "Time to find the passages.", buckets=LATENCY_BUCKETS,
                                   registry=r)
        self.first_token = Histogram("rag_first_token_seconds", "Time from the question to the answer's first word.",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.total = Histogram("rag_answer_seconds", "Time from the question to the checked answer.",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("rag_queue_wait_seconds", "Time a question waited for a turn at the model.",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.waiting = Gauge("rag_questions_waiting", "Questions waiting for a turn at the model now.", registry=r)
        self.in_flight = Gauge("rag_questions_in_flight", "Questions being answered now.", registry=r)
        self.feedback = Counter("rag_feedback", "Readers' ratings.", ["rating"], registry=r)
        self.limit_hits = Counter("rag_limit_hits", "Requests refused by a per-client limit.", ["limit"], registry=r)
        self.login_failures = Counter("rag_login_failures", "Wrong admin or staff passwords.", ["role"], registry=r)
        self.sessions = Gauge("rag_sessions", "Reader sessions held in memory.", registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, CPU seconds, open files

    def answered(self, answer: Answer, queue_wait_s: float | None = None) -> None:
        """One question's answer (a refusal included)."""
        self.questions.labels(outcome_of(answer), answer.kind or "answer",
                              answer.refusal_kind if answer.refused else "").inc()
        timings = answer.timings or {}
        if "retrieve_ms" in timings:
            self.retrieval.observe(timings["retrieve_ms"] / 1000)
        if "first_token_ms" in timings:
            self.first_token.observe(timings["first_token_ms"] / 1000)
        if "total_ms" in timings:
            self.total.observe(timings["total_ms"] / 1000)
        if queue_wait_s is not None:
            self.queue_wait.observe(queue_wait_s)

    def limit_hit(self, limit: str) -> None:
        self.limit_hits.labels(limit).inc()

    def login_failed(self, role: str) -> None:
        self.login_failures.labels(role).inc()

    def failed(self, outcome: str = "error", kind: str = "answer") -> None:
        """A question that got no answer: an error, or rejected (over budget, restarting)."""
        self.questions.labels(outcome, kind, "").inc()

    @contextmanager
    def waiting_for_model(self):
        """Around the wait for a turn at the model: counted in ``rag_questions_waiting`` meanwhile."""
        self.waiting.inc()
        try:
            yield
        finally:
            self.waiting.dec()

    def watch(self, stats: IndexStats, sessions: Callable[[], int], in_flight: Callable[[], int]) -> None:
        """What is read when scraped: the index's numbers, live sessions, questions in flight."""
        self.registry.register(stats)
        self.sessions.set_function(sessions)
        self.in_flight.set_function(in_flight)


class IndexStats:
    """A collector of the shared index's numbers, read at most every ``STATS_EVERY_S`` seconds.
    ``read()`` returns {metric name: value}; on failure or timeout the last values stay."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._when = float("-inf")
        self._pending = None

    HELP = {
        "rag_articles": "Articles in the index.",
        "rag_chunks": "Chunks (passages) in the index.",
        "rag_summaries_pending": "Articles whose summary is not prepared yet (or is stale).",
        "rag_last_indexing_run_timestamp_seconds": "When the last indexing run started (Unix time).",
        "rag_last_indexing_run_duration_seconds": "How long the last indexing run took.",
        "rag_last_indexing_run_failed_sources": "Sources the last indexing run could not read.",
        "rag_last_indexing_run_finished": "1 if the last indexing run finished, 0 if it failed.",
        "rag_index_stats_up": "1 if the index numbers above were read on the last try, 0 if not.",
    }

    def describe(self):
        return [GaugeMetricFamily(name, help_text) for name, help_text in self.HELP.items()]

    def collect(self):
        # A scrape while another one refreshes gets the numbers as they are (never waits behind it).
        if self._lock.acquire(blocking=False):
            try:
                if time.monotonic() - self._when > STATS_EVERY_S:
                    if self._pending is None or self._pending.done():
                        self._pending = in_a_thread(self.read)
                    try:
                        self._values = {**self._values, **self._pending.result(timeout=STATS_TIMEOUT_S),
                                        "rag_index_stats_up": 1.0}
                        self._when = time.monotonic()
                    except Exception:  # a database or Chroma server down: say so, keep the last numbers
                        self._values = {**self._values, "rag_index_stats_up": 0.0}
            finally:
                self._lock.release()
        values = self._values  # replaced whole, never changed in place: safe to read unlocked
        for name, value in values.items():
            yield GaugeMetricFamily(name, self.HELP.get(name, name), value=value)


def index_stats(components) -> Callable[[], dict[str, float]]:
    """How ``IndexStats`` reads the app's index: the collection's size, the records' articles and
    summaries, the last indexing run."""

    opened = []  # the record manager, opened (and its schema checked) once it could be

    def read() -> dict[str, float]:
        from rag.ingest.index import Fingerprints, open_record_manager
        from rag.ingest.runs import IndexingRuns

        values: dict[str, float] = {}
        with components.live_store().reading() as store:
            values["rag_chunks"] = store._collection.count()
        if not opened:
            opened.append(open_record_manager(components.settings))
        records = opened[0]
        values["rag_articles"] = Fingerprints(records).count()
        values["rag_summaries_pending"] = components.summaries.pending()
        last = IndexingRuns(records.engine, records.namespace).last()
        if last is not None:
            values.update({"rag_last_indexing_run_timestamp_seconds": last.started_at,
                           "rag_last_indexing_run_duration_seconds": last.seconds,
                           "rag_last_indexing_run_failed_sources": last.failed_sources,
                           "rag_last_indexing_run_finished": float(last.finished)})
        return values

    return read


class MetricsAccess:
    """Who may read ``/metrics``: a bearer token, or a client address in the allowed networks — and a
    request that came through a proxy the app does not trust (a forwarding header it did not
    resolve) is never "local", however it connected: behind nginx on the same machine every
    visitor would otherwise arrive from 127.0.0.1."""

    FORWARDING = (b"x-forwarded-for", b"forwarded", b"x-real-ip")

    def __init__(self, allow: str, token: str | None, trusted_proxies: bool) -> None:
        self.networks = [ipaddress.ip_network(item.strip(), strict=False) for item in allow.split(",") if item.strip()]
        self.token = token
        self.trusted_proxies = trusted_proxies  # then the request guard has put the forwarded client in scope

    def allows(self, client: str | None, headers: dict[str, str]) -> bool:
        given = headers.get("authorization", "")
        if self.token and hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return True
        if not self.trusted_proxies and any(name.decode() in headers for name in self.FORWARDING):
            return False
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
