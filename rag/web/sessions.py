"""Memory per visitor, bounded on purpose.

Gradio keeps a ``SessionState`` for every session that ever sent an event — each API call is a
session of its own — until its state holder passes its capacity (10,000 by default, at ~80 KB each
about 0.8 GB). Its own time-to-live frees the values of ``gr.State`` but keeps the session itself.
Here: the capacity is ``RAG_MAX_SESSIONS`` (least recently used first out, Gradio's own eviction),
and ``SessionReaper`` drops whole sessions unused for ``RAG_SESSION_TTL_S``. A reader whose
session went keeps the conversation on screen; the sources panel and ratings of older answers
start afresh.
"""

from __future__ import annotations

import datetime
import logging
import threading

log = logging.getLogger(__name__)


def bound_sessions(demo, max_sessions: int) -> None:
    """Before the app is mounted: Gradio's state holder reads its capacity from the Blocks then."""
    demo.state_session_capacity = max(1, max_sessions)


class SessionReaper:
    """A daemon thread that, every ``every_s``, drops the sessions unused for ``ttl_s``."""

    def __init__(self, demo, ttl_s: float, every_s: float | None = None) -> None:
        self.demo = demo
        self.ttl_s = ttl_s
        self.every_s = every_s or max(1.0, min(60.0, ttl_s / 4))
        self._stop = threading.Event()

    def live(self) -> int:
        holder = getattr(self.demo, "state_holder", None)
        return len(holder.session_data) if holder is not None else 0

    def reap(self) -> int:
        """Drop the expired sessions now; returns how many went."""
        holder = getattr(self.demo, "state_holder", None)
        if holder is None:
            return 0
        cutoff = datetime.datetime.now() - datetime.timedelta(seconds=self.ttl_s)
        with holder.lock:
            expired = [sid for sid, used in list(holder.time_last_used.items()) if used < cutoff]
            for session_id in expired:
                holder.session_data.pop(session_id, None)
                holder.time_last_used.pop(session_id, None)
        return len(expired)

    def start(self) -> SessionReaper:
        threading.Thread(target=self._run, name="session-reaper", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if gone := self.reap():
                    log.debug("dropped %d idle reader sessions", gone)
            except Exception:  # never let the reaper die of one bad round
                log.exception("dropping idle sessions failed")
