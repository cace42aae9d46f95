"""HTTP-level guards in front of the Gradio app (an ASGI middleware): nothing a client sends is
unbounded.

- Uploads (Gradio's ``/gradio_api/upload``, which needs no password because the browser uploads
  before the admin's click arrives) are refused outright unless the Admin tab exists, and are
  rate-limited per client when it does. Gradio caps each file (``max_file_size``) and the app
  deletes uploaded temp files after an hour (``delete_cache``).
- Every other request body is capped (``max_body_bytes``): a chat history or question padded to
  megabytes is refused before Gradio parses it.
"""

from __future__ import annotations

import json

from rag.limits import LimitExceeded, RateLimit

UPLOAD_PATH = "/gradio_api/upload"


class RequestGuard:
    def __init__(self, app, *, uploads_enabled: bool, upload_limit: RateLimit, max_body_bytes: int,
                 max_upload_bytes: int) -> None:
        self.app = app
        self.uploads_enabled = uploads_enabled
        self.upload_limit = upload_limit
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        cap = self.max_body_bytes
        if scope["path"].rstrip("/").endswith(UPLOAD_PATH):
            if not self.uploads_enabled:
                return await refuse(send, 403, "uploads are disabled")
            try:
                self.upload_limit.take(client_of(scope))
            except LimitExceeded as exc:
                return await refuse(send, 429, str(exc))
            cap = self.max_upload_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            return await refuse(send, 413, f"request larger than {cap:,} bytes")
        received = 0

        async def counted_receive():  # bodies sent without a length are counted as they arrive
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except BodyTooLarge:
            await refuse(send, 413, f"request larger than {cap:,} bytes")


class BodyTooLarge(Exception):
    pass


def client_of(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
