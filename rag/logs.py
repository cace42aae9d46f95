"""How the app and the CLI log: plain text lines by default, or one JSON object per line
(``RAG_LOG_FORMAT=json``, python-json-logger's formatter) for a log collector.

Operator-facing events go through ``log_event`` on the ``rag.events`` logger with an ``event`` name
and flat fields — ``question`` (outcome, kind, refusal kind, latencies), ``indexing_run``,
``login_failed``, ``limit_hit`` — so a JSON line can be filtered and graphed without parsing
prose. A question's text is never among the fields unless ``RAG_LOG_QUESTIONS=true`` (and then
with personal data redacted, as in the unanswered-questions log). Every handler redacts URL
credentials (``rag.redact``), in JSON lines as in text.
"""

from __future__ import annotations

import logging
import sys

from rag.redact import redact_logs

event_log = logging.getLogger("rag.events")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("httpx", "httpx2", "chromadb", "sentence_transformers", "transformers", "bm25s")


def setup_logging(log_format: str = "text", level: int = logging.INFO, stream=None) -> None:
    """Configure the root logger once, for a process (app.py, the CLI)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                                           timestamp=False))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    redact_logs()
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, message: str, *args, level: int = logging.INFO, **fields) -> None:
    """One operator event: ``message % args`` for people reading text logs, and ``event`` with
    ``fields`` as the JSON line's keys (field names must not be ``LogRecord`` attributes)."""
    logger.log(level, message, *args, extra={"event": event, **fields})
