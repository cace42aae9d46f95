"""Can this process answer questions? The checks behind the web app's ``/readyz`` and
``python -m rag doctor``.

Each check is a function that returns a short sentence when all is well and raises when not. The
sentences are public: readiness probes are anonymous, so no password, path or host name goes
into one — only what is wrong and what kind of error it was. Checks run in worker threads under
one deadline: a database or Chroma server that stops answering (or was SIGSTOPped) turns into
"did not answer within 2 s", never into a probe that hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from sqlalchemy import text

from rag.settings import Settings

CHECK_TIMEOUT_S = 2.0  # what a probe waits for all checks together


class NotReady(Exception):
    """A check's public explanation of why it is not ready."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check]
    draining: bool = False

    @property
    def ready(self) -> bool:
        return not self.draining and all(check.ok for check in self.checks)

    def to_json(self) -> dict:
        body = {"ready": self.ready, "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks}}
        if self.draining:
            body["draining"] = True
        return body

    def lines(self) -> list[str]:
        return [f"{'ok ' if c.ok else 'NOT'} {c.name:<10} {c.detail}" for c in self.checks]


class Checker:
    """Runs named checks in worker threads under one deadline. A check still running from an earlier
    round is waited for again rather than started twice, so a hung server holds one thread per
    check, however often probes ask."""

    def __init__(self, checks: dict[str, Callable[[], str]], timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self.checks = checks
        self.timeout_s = timeout_s
        self._running: dict[str, Future] = {}

    def run(self) -> list[Check]:
        for name, check in self.checks.items():
            if name not in self._running or self._running[name].done():
                self._running[name] = in_a_thread(check)
        deadline = time.monotonic() + self.timeout_s
        results = []
        for name, future in self._running.items():
            try:
                results.append(Check(name, True, future.result(timeout=max(0.0, deadline - time.monotonic()))))
            except FutureTimeout:
                results.append(Check(name, False, f"did not answer within {self.timeout_s:g} s"))
            except NotReady as exc:
                results.append(Check(name, False, str(exc)))
            except Exception as exc:  # an unexpected failure: its kind only (messages name hosts and paths)
                results.append(Check(name, False, f"failed ({type(exc).__name__})"))
        return results


def in_a_thread(check: Callable[[], str]) -> Future:
    """Start ``check`` in a daemon thread (a pool's threads are joined at exit: a check hung on a
    stopped server would hold the process's exit)."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(check())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="health-check", daemon=True).start()
    return future


class Readiness:
    """``/readyz``: the checks, asked at most once a second however many probes poll (one round at
    a time; the others are given its result), and "draining" at once during a graceful stop."""

    def __init__(self, checker: Checker, draining: Callable[[], bool] = lambda: False, cache_s: float = 1.0) -> None:
        self.checker = checker
        self.draining = draining
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._last: tuple[float, list[Check]] = (float("-inf"), [])

    def report(self) -> Report:
        if self.draining():
            return Report([Check("serving", False, "shutting down: finishing the answers in flight")], draining=True)
        # A probe that arrives while a round runs gets the previous round's answer at once, rather
        # than holding one of the server's worker threads for up to the deadline behind it.
        if not self._lock.acquire(blocking=not self._last[1]):
            return Report(list(self._last[1]))
        try:
            if time.monotonic() - self._last[0] > self.cache_s:
                self._last = (time.monotonic(), self.checker.run())
            return Report(list(self._last[1]))
        finally:
            self._lock.release()


# --- the checks ------------------------------------------------------------------------------------


def index_check(components) -> Callable[[], str]:
    """The index opens and the vector store answers (the embedded store or the Chroma server)."""

    def check() -> str:
        from rag.ingest.store import IndexMismatchError, StoreError

        try:
            with components.live_store().reading() as store:
                chunks = store._collection.count()
        except IndexMismatchError:
            raise NotReady("the index was built with another embedding model: python -m rag index --rebuild") from None
        except StoreError as exc:
            if "no index yet" in str(exc):
                raise NotReady("no index yet: run python -m rag index") from None
            cause = exc.__cause__ or exc
            raise NotReady(f"the vector store is not answering ({type(cause).__name__})") from None
        except Exception as exc:  # the Chroma client itself could not be made (a server that is down)
            raise NotReady(f"the vector store is not answering ({type(exc).__name__})") from None
        return f"{chunks} chunks"

    return check


def database_check(settings: Settings) -> Callable[[], str]:
    """The record database (SQLite file, or the PostgreSQL server holding all shared state) answers."""

    def check() -> str:
        from rag.db import engine_for

        engine = engine_for(settings.record_db_url, settings.db_timeouts)
        try:
            with engine.connect() as db:
                db.execute(text("SELECT 1"))
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc
            raise NotReady(f"the record database is not answering ({type(cause).__name__})") from None
        return "PostgreSQL answers" if engine.dialect.name == "postgresql" else "SQLite opens"

    return check


def server_check(base_url: str, api_key: str | None = None, timeout_s: float = CHECK_TIMEOUT_S) -> str:
    """An OpenAI-compatible server (the local llama.cpp one included) answers ``GET /models``.
    Any HTTP answer counts: a 401 still means the server is up."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise NotReady(f"the language model server is not answering ({type(exc).__name__})") from None
    if response.status_code >= 500:
        raise NotReady(f"the language model server answers HTTP {response.status_code}")
    return "the model server answers"


def model_file_check(settings: Settings) -> Callable[[], str]:
    """For the CLI: the local model's weights are installed (and assembled, or will be on first start)."""

    def check() -> str:
        if settings.llm == "extractive":
            return "extractive answers (no language model)"
        if settings.llm == "openai":
            if not settings.llm_base_url:
                raise NotReady("RAG_LLM=openai needs RAG_LLM_BASE_URL")
            key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
            return server_check(settings.llm_base_url, key)
        from rag.answer import llm_local

        spec = llm_local.model_spec(settings.llm_model)
        try:
            llm_local.part_files(spec)
        except llm_local.LocalModelError as exc:
            raise NotReady(str(exc)) from None
        target = settings.models_dir / spec.file_name
        if target.exists() and target.stat().st_size == spec.size:
            return f"{spec.name} assembled ({spec.size >> 20} MB)"
        return f"{spec.name} installed; assembled on the app's first start (about 20 s)"

    return check
