"""The reader's web chat: ``make run`` (or ``python app.py``) serves it on ``RAG_HOST:RAG_PORT``
(127.0.0.1:7860). This file only builds the parts and launches them; the page is ``rag.web``.
API: ``/ask`` (question → the answer JSON of ``python -m rag ask --json``) and ``/chat`` (streaming).
Operators: ``/healthz``, ``/readyz``, ``/metrics`` (README "Operating the app").

The server listens first and loads the models in a thread (``/readyz`` says when they are ready);
SIGTERM stops it gracefully (``rag.web.lifecycle``).
"""

from __future__ import annotations

import logging

import uvicorn
from sqlalchemy.exc import DBAPIError

from rag.components import Components
from rag.db import engine_for, server_name
from rag.ingest.store import StoreError
from rag.logs import setup_logging
from rag.settings import Settings
from rag.web.chat import ChatService
from rag.web.feedback import FeedbackStore
from rag.web.lifecycle import GracefulServer, Lifecycle
from rag.web.page import build_app
from rag.web.server import build_server

log = logging.getLogger("rag.app")


def main() -> None:
    settings = Settings()
    setup_logging(settings.log_format)
    components = Components(settings)
    try:
        service = ChatService(components, FeedbackStore(engine_for(settings.state_db_url("app"), settings.db_timeouts)),
                              lifecycle=Lifecycle(settings.shutdown_grace_s))
    except DBAPIError as exc:  # the state database (PostgreSQL with RAG_RECORD_DB_URL) is down or refuses us
        raise SystemExit(f"error: the state database at {server_name(engine_for(settings.state_db_url('app'), settings.db_timeouts))} "
                         f"cannot be used ({type(exc.orig).__name__}); start it or fix RAG_RECORD_DB_URL") from None
    demo = build_app(service)
    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=64)
    app = build_server(service, demo)
    service.lifecycle.warm_up(lambda: load_models(service), not_yet=no_index_yet)
    service.sessions.start()
    log.info("serving on http://%s:%d", settings.host, settings.port)
    # proxy_headers=False: uvicorn would otherwise believe any loopback peer's X-Forwarded-For;
    # rag.web.guard reads it only from the proxies RAG_TRUSTED_PROXIES names, and validates it.
    # log_config=None: uvicorn's lines go through our handler (JSON with RAG_LOG_FORMAT=json, redacted).
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, log_level="warning",
                            proxy_headers=False, timeout_graceful_shutdown=5)  # after the drain: idle streams must not hold a stop
    GracefulServer(config, service.lifecycle).run()


def load_models(service: ChatService) -> None:
    """Before the first reader's question is answered: the pipeline (the local model starts), the
    embedder, and the background summariser."""
    components, settings = service.components, service.settings
    _ = service.pipeline
    components.embedding_model.embed_query("warm up")  # the embedder loads lazily (indexing needs no torch)
    if settings.prepare_summaries and service.background is None:  # "summarize …" answered at once
        from rag.answer.summary import BackgroundSummaries

        in_flight = service.pipeline.in_flight
        service.background = BackgroundSummaries(components.summarize, in_flight.wait_idle, in_flight.busy).start()
        components.on_summary_wanted = service.background.wake


def no_index_yet(exc: Exception) -> str | None:
    """Serve anyway without an index (each question gets the message); ready once one is built."""
    if isinstance(exc, StoreError):
        log.warning("%s", exc)
        return "waiting for an index (python -m rag index)"
    return None


if __name__ == "__main__":
    main()
