"""The reader's web chat: ``make run`` (or ``python app.py``) serves it on ``RAG_HOST:RAG_PORT``
(127.0.0.1:7860). This file only builds the parts and launches them; the page is ``rag.web``.
API: ``/ask`` (question → the answer JSON of ``python -m rag ask --json``) and ``/chat`` (streaming).
"""

from __future__ import annotations

import logging

import uvicorn
from sqlalchemy.exc import DBAPIError

from rag.components import Components
from rag.db import engine_for, server_name
from rag.ingest.store import StoreError
from rag.redact import redact_logs
from rag.settings import Settings
from rag.web.chat import ChatService
from rag.web.feedback import FeedbackStore
from rag.web.page import build_app
from rag.web.server import build_server

log = logging.getLogger("rag.app")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()
    settings = Settings()
    components = Components(settings)
    try:
        service = ChatService(components, FeedbackStore(engine_for(settings.state_db_url("app"), settings.db_timeouts)))
    except DBAPIError as exc:  # the state database (PostgreSQL with RAG_RECORD_DB_URL) is down or refuses us
        raise SystemExit(f"error: the state database at {server_name(engine_for(settings.state_db_url('app'), settings.db_timeouts))} "
                         f"cannot be used ({type(exc.orig).__name__}); start it or fix RAG_RECORD_DB_URL") from None
    try:
        _ = service.pipeline  # load the models before the first reader arrives
        components.embedding_model.embed_query("warm up")  # the embedder loads lazily (indexing needs no torch)
    except StoreError as exc:  # no index yet: serve anyway; each question gets this message
        log.warning("%s", exc)
    if settings.prepare_summaries:  # "summarize …" answered at once: prepared while nobody is asking
        from rag.answer.summary import BackgroundSummaries

        in_flight = service.pipeline.in_flight
        service.background = BackgroundSummaries(components.summarize, in_flight.wait_idle, in_flight.busy).start()
        components.on_summary_wanted = service.background.wake
    demo = build_app(service)
    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=64)
    log.info("serving on http://%s:%d", settings.host, settings.port)
    # proxy_headers=False: uvicorn would otherwise believe any loopback peer's X-Forwarded-For;
    # rag.web.guard reads it only from the proxies RAG_TRUSTED_PROXIES names, and validates it.
    uvicorn.run(build_server(service, demo), host=settings.host, port=settings.port, log_level="warning",
                proxy_headers=False, timeout_graceful_shutdown=5)  # open event streams must not hold a stop


if __name__ == "__main__":
    main()
