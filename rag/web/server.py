"""The ASGI app: Gradio mounted on FastAPI behind the request guard (``rag.web.guard``), plus the
``/article/<doc_id>`` route that serves one indexed article as plain text."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from rag.ingest.formats import LoadError
from rag.ingest.load import safe_doc_id
from rag.ingest.store import StoreError, article_text
from rag.web.chat import (
    ChatService,
)
from rag.web.guard import RequestGuard
from rag.web.page import CSS, HEAD

log = logging.getLogger(__name__)


MAX_BODY_BYTES = 1024 * 1024  # any request but an upload: a bounded chat history and question fit easily
MAX_ARTICLE_CHARS = 500_000


def is_doc_id(value: str) -> bool:
    """Could ``value`` be an article's id (``rag.ingest.load.safe_doc_id`` leaves it as it is)?"""
    try:
        return value == safe_doc_id(value)
    except LoadError:  # nothing left of it ("-", "..")
        return False



def build_server(service: ChatService, demo: gr.Blocks):
    """The ASGI app: Gradio mounted on FastAPI behind the request guard, plus the article route."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import PlainTextResponse

    settings = service.settings
    server = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

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
                        db_wait_s=settings.db_reader_wait_s, question_budget=service.question_budget)


def never_served(data_dir: Path, uploads: Path) -> list[str]:
    """Folders Gradio must never return a file from: the data dir (databases, logs, the index,
    uploaded originals) — unless Gradio's own upload folder lies inside it, which blocking would break."""
    data = data_dir.resolve()
    return [] if uploads.is_relative_to(data) else [str(data)]
