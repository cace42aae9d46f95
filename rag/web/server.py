"""The ASGI app: Gradio mounted on FastAPI behind the request guard (``rag.web.guard``), plus
``/article/<doc_id>`` (one indexed article as plain text) and the operator's routes: ``/healthz``
(the process serves), ``/readyz`` (it can answer: ``rag.health``) and ``/metrics``
(``rag.web.metrics``)."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag.health import Checker, NotReady, Readiness, database_check, index_check, server_check
from rag.ingest.formats import LoadError
from rag.ingest.load import safe_doc_id
from rag.ingest.store import StoreError, article_text
from rag.web.chat import (
    ChatService,
)
from rag.web.guard import RequestGuard
from rag.web.metrics import IndexStats, MetricsAccess, index_stats
from rag.web.page import CSS, HEAD
from rag.web.sessions import SessionReaper, bound_sessions

log = logging.getLogger(__name__)


MAX_BODY_BYTES = 1024 * 1024  # any request but an upload: a bounded chat history and question fit easily
MAX_ARTICLE_CHARS = 500_000
NO_STORE = {"Cache-Control": "no-store"}


def is_doc_id(value: str) -> bool:
    """Could ``value`` be an article's id (``rag.ingest.load.safe_doc_id`` leaves it as it is)?"""
    try:
        return value == safe_doc_id(value)
    except LoadError:  # nothing left of it ("-", "..")
        return False



def build_server(service: ChatService, demo: gr.Blocks):
    """The ASGI app: Gradio mounted on FastAPI behind the request guard, plus the article route."""

    settings = service.settings
    server = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    readiness = Readiness(Checker({"index": index_check(service.components), "database": database_check(settings),
                                   "model": model_check(service)}), draining=lambda: service.lifecycle.draining)
    access = MetricsAccess(settings.metrics_allow, settings.metrics_token.get_secret_value()
                           if settings.metrics_token else None, trusted_proxies=bool(settings.trusted_proxies.strip()))
    bound_sessions(demo, settings.max_sessions)
    service.sessions = SessionReaper(demo, settings.session_ttl_s)  # app.py starts it
    service.metrics.watch(IndexStats(index_stats(service.components)), sessions=service.sessions.live,
                          in_flight=lambda: service.lifecycle.in_flight)

    @server.get("/healthz")
    async def healthz() -> JSONResponse:  # on the event loop: never queued behind busy worker threads
        """The process serves (nothing else is checked): for a liveness probe."""
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    @server.get("/readyz")
    def readyz() -> JSONResponse:
        """200 when this process can answer (index, database, model); 503 naming what is not ready."""
        report = readiness.report()
        return JSONResponse(report.to_json(), status_code=200 if report.ready else 503, headers=NO_STORE)

    @server.get("/metrics")
    def metrics(request: Request) -> Response:
        if not access.allows(request.client.host if request.client else None, dict(request.headers)):
            return PlainTextResponse("metrics are served to RAG_METRICS_ALLOW addresses or with RAG_METRICS_TOKEN\n",
                                     status_code=403)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    @server.get("/article/{doc_id}", response_class=PlainTextResponse)
    def article(doc_id: str) -> PlainTextResponse:
        """One indexed article's text, for a source card's "Read the whole article" (plain text)."""
        try:
            text = article_text(service.components.store(), doc_id)[1] if is_doc_id(doc_id) else ""
        except StoreError as exc:
            log.error("the index failed: %s", exc)
            raise HTTPException(503, exc.reader_message) from None
        if not text:
            raise HTTPException(404, "no such article")
        return PlainTextResponse(text[:MAX_ARTICLE_CHARS], headers={
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"})

    from gradio.utils import get_upload_folder

    uploads = Path(get_upload_folder()).resolve()
    server = gr.mount_gradio_app(
        server, demo, path="/", server_name=settings.host, server_port=settings.port, show_error=False,
        footer_links=["api"], run_history=False,  # the browser keeps no copy of passwords or conversations
        max_file_size=f"{settings.max_upload_mb}mb", theme=gr.themes.Soft(), css=CSS, head=HEAD,
        blocked_paths=never_served(settings.data_dir, uploads))
    # Gradio checks that a file named in an event's inputs was uploaded by a user — but only once
    # ``launch()`` has run, which a mounted app never calls. Without it, a client could name any
    # local file and get it copied into the cache and served (the request guard refuses that first;
    # this is the second lock on the same door).
    demo.has_launched = True
    return RequestGuard(server, uploads_enabled=service.admin.enabled, upload_limit=service.upload_limit,
                        max_body_bytes=MAX_BODY_BYTES, max_upload_bytes=10 * settings.max_upload_mb * 1024 * 1024,
                        served_files=uploads, trusted_proxies=settings.trusted_proxies,
                        db_wait_s=settings.db_reader_wait_s, question_budget=service.question_budget,
                        draining=lambda: service.lifecycle.draining)


def model_check(service: ChatService):
    """Ready once the models loaded (``Lifecycle.warm_up``) and the model server answers — the local
    model's llama.cpp server or the OpenAI-compatible one (``RAG_LLM=openai``)."""

    def check() -> str:
        lifecycle = service.lifecycle
        if not lifecycle.model_ready.is_set():
            lifecycle.retry_warm_up()  # "no index yet" may have changed since
            raise NotReady(lifecycle.model_state)
        generator = service.pipeline.generator
        base_url = getattr(generator.chat_model, "openai_api_base", None)
        if not base_url:  # the extractive answerer: nothing to reach
            return f"{generator.name} ready"
        key = service.settings.llm_api_key
        server_check(base_url, key.get_secret_value() if key and service.settings.llm == "openai" else None)
        return f"{generator.name} answers"

    return check


def never_served(data_dir: Path, uploads: Path) -> list[str]:
    """Folders Gradio must never return a file from: the data dir (databases, logs, the index,
    uploaded originals) — unless Gradio's own upload folder lies inside it, which blocking would break."""
    data = data_dir.resolve()
    return [] if uploads.is_relative_to(data) else [str(data)]
