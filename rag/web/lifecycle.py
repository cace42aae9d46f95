"""Where the app process is in its life: loading its models, serving, or stopping gracefully.

- **Warm-up.** The server answers ``/healthz`` from its first second; the models load in a thread
  (``warm_up``) and ``/readyz`` stays 503 ("loading the model") until they have.
- **Graceful stop.** The first SIGTERM starts ``drain``: ``/readyz`` turns 503 at once (a load
  balancer stops sending readers here), new questions are refused with "restarting", and the
  answers in flight get ``RAG_SHUTDOWN_GRACE_S`` to finish; then the server stops and the process
  exits 0. A second SIGTERM (or SIGINT) exits at once. ``GracefulServer`` is uvicorn's server with
  that signal handling.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable

import uvicorn

log = logging.getLogger(__name__)

RESTARTING = "The server is restarting; please ask again in a moment."


class Draining(Exception):
    """A question arrived after the stop began."""

    def __str__(self) -> str:
        return RESTARTING


class Lifecycle:
    def __init__(self, grace_s: float = 30.0) -> None:
        self.grace_s = grace_s
        self.model_state = "loading the model"  # "ready", or why not
        self.model_ready = threading.Event()
        self._draining = threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._load: Callable[[], None] | None = None  # set while a warm-up waits to be tried again
        self._not_yet: Callable[[Exception], str | None] = lambda exc: None

    # --- warm-up -------------------------------------------------------------------------------

    def warm_up(self, load: Callable[[], None], not_yet: Callable[[Exception], str | None] = lambda exc: None) -> None:
        """Run ``load`` (the models) in a thread. ``not_yet(exc)``: a public reason when ``exc`` only
        means "not yet" (no index built so far): the next ``retry_warm_up`` tries again."""

        def run() -> None:
            try:
                load()
            except Exception as exc:
                reason = not_yet(exc)
                self.model_state = reason or f"the model failed to load ({type(exc).__name__})"
                if reason is None:
                    log.exception("loading the models failed")
                self._load = load if reason else None
                return
            self.model_state = "ready"
            self.model_ready.set()

        self._load, self._not_yet = None, not_yet
        threading.Thread(target=run, name="warm-up", daemon=True).start()

    def retry_warm_up(self) -> None:
        """After "not yet" (say, an index built since): load again."""
        if self._load is not None and not self.model_ready.is_set():
            load, self._load = self._load, None
            self.model_state = "loading the model"
            self.warm_up(load, self._not_yet)

    # --- graceful stop -------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def question(self) -> _Question:
        """``with lifecycle.question():`` around answering one question: refused (``Draining``)
        once the stop began, and counted until it is answered."""
        return _Question(self)

    def drain(self) -> None:
        self._draining.set()

    def wait_drained(self, timeout_s: float) -> bool:
        """True once no question is in flight; False if ``timeout_s`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

    @property
    def in_flight(self) -> int:
        return self._in_flight


class _Question:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def __enter__(self):
        if self.lifecycle.draining:
            raise Draining()
        with self.lifecycle._idle:
            self.lifecycle._in_flight += 1

    def __exit__(self, *exc) -> None:
        with self.lifecycle._idle:
            self.lifecycle._in_flight -= 1
            self.lifecycle._idle.notify_all()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, but the first SIGTERM drains (see the module docstring) instead of closing
    every connection, answers streaming included; the process then exits 0, not by the signal."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        # Once the answers are done, what is still open is idle event streams (a browser's, a
        # client's heartbeat): uvicorn cancels them after its own grace and logs each as a traceback.
        logging.getLogger("uvicorn.error").addFilter(_not_cancelled_streams)

    def handle_exit(self, sig: int, frame) -> None:
        if sig == signal.SIGTERM and not self.lifecycle.draining:
            log.info("SIGTERM: not taking new questions; finishing %d in flight (up to %.0f s)",
                     self.lifecycle.in_flight, self.lifecycle.grace_s)
            self.lifecycle.drain()
            threading.Thread(target=self._stop_when_drained, name="drain", daemon=True).start()
            return
        # A second SIGTERM, or Ctrl-C: stop now.
        self.should_exit = self.force_exit = True

    def _stop_when_drained(self) -> None:
        started = time.monotonic()
        drained = self.lifecycle.wait_drained(self.lifecycle.grace_s)
        if drained:
            time.sleep(0.5)  # the last answer's final event reaches its reader before the streams close
            log.info("answers in flight finished in %.1f s; stopping", time.monotonic() - started)
        else:
            log.warning("%d answers still in flight after %.0f s; stopping anyway",
                        self.lifecycle.in_flight, self.lifecycle.grace_s)
        self.should_exit = True


def _not_cancelled_streams(record: logging.LogRecord) -> bool:
    """Drop uvicorn's "Exception in ASGI application" for a stream it cancelled while stopping."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))

