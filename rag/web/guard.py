"""HTTP-level guards in front of the Gradio app (an ASGI middleware): nothing a client sends is
unbounded, and Gradio never fetches a URL or serves a file on a client's say-so.

- **Who is asking.** The client is the connecting address, unless that address is a proxy the
  operator named (``RAG_TRUSTED_PROXIES``): then it is the last address in ``X-Forwarded-For``
  that is not itself a trusted proxy — and only if it parses as an IP address. Every per-client
  limit (``rag.web.limits``) counts against ``client_key`` of it: IPv6 clients by their /64.
- **Files.** Gradio's ``file=`` route would fetch an ``http(s)://`` target server-side and stream
  it back (an open proxy into whatever the server can reach). The app serves files only from
  Gradio's own upload/cache folder (the transcript download, the Admin tab's uploads): any other
  ``file=`` target, URLs first, and Gradio's ``proxy=`` route are refused.
- **Files named in event inputs.** An input shaped like Gradio's ``FileData`` makes Gradio copy
  the file it names into its cache and serve it back: a local path (``/proc/self/environ``, the
  app's databases) would be an anonymous file read, and a URL a download before our code runs.
  The only files a client may name are the ones it uploaded, so any file object whose path does
  not resolve inside Gradio's upload folder (the same test as ``serves``) is refused — and
  Gradio's own "was it uploaded?" check is switched on as well (``rag.web.server``).
- **Malformed JSON** nested deeper than Python's parser goes is a 400, not a traceback.
- **Uploads** (``/gradio_api/upload``, which needs no password because the browser uploads before
  the admin's click arrives) are refused outright unless the Admin tab exists, and are
  rate-limited per client when it does. Gradio caps each file (``max_file_size``) and the app
  deletes uploaded temp files after an hour (``delete_cache``).
- **No waiting on the event loop.** The upload count may live in PostgreSQL: it is taken in a
  worker thread with a deadline (``RAG_DB_READER_WAIT_S``), so a database that is locked or has
  stopped answering costs that request a 503 and every other visitor nothing.
- Every other request **body is capped** (``max_body_bytes``): a chat history or question padded
  to megabytes is refused before Gradio parses it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from rag.web.lifecycle import RESTARTING
from rag.web.limits import LimitExceeded, RateLimit, client_key, too_many_questions

log = logging.getLogger(__name__)

UPLOAD_PATH = "/gradio_api/upload"
MAX_FILES_NAMED = 100  # file objects one request may carry (the Admin tab's uploads are a handful)
_QUESTION_API = re.compile(r"/gradio_api/(?:call|run)/(?:ask|chat)/?$")  # the API's question endpoints
# Gradio's routes that read a file or a URL named in the path (``file=``, the older ``file/``) or
# proxy another Gradio app (``proxy=``): ``/gradio_api/file=…``, also without the prefix.
_FILE_ROUTE = re.compile(r"/(?:gradio_api/)?(file=|file/|proxy=)(.*)$", re.DOTALL)
# A scheme ("http://", "file://", …) or what Windows and browsers read as a network path.
_PROTOCOL = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.\-]*:|//|\\\\|\\/|/\\)")


def parse_proxies(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks; a wrong entry is an error at start-up, not a hole."""
    networks = []
    for item in (part.strip() for part in spec.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as exc:
                raise ValueError(f"RAG_TRUSTED_PROXIES: {item!r} is not an IP address or network") from exc
    return tuple(networks)


class RequestGuard:
    def __init__(self, app, *, uploads_enabled: bool, upload_limit: RateLimit, max_body_bytes: int,
                 max_upload_bytes: int, served_files: Path, trusted_proxies: str = "", db_wait_s: float = 5.0,
                 question_budget=None, draining=lambda: False) -> None:
        self.app = app
        self.uploads_enabled = uploads_enabled
        self.upload_limit = upload_limit
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.served_files = served_files.resolve()
        # The folder as written and as resolved: a path named under either is worth resolving.
        self._served_prefixes = {Path(os.path.normpath(os.path.abspath(served_files))), self.served_files}
        self.trusted_proxies = parse_proxies(trusted_proxies)
        self.db_wait_s = db_wait_s  # longest a request waits for the database (RAG_DB_READER_WAIT_S)
        self.question_budget = question_budget  # rag.web.limits.QuestionBudget: spent by the app, looked at here
        self.draining = draining  # True once a graceful stop began (rag.web.lifecycle)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        self.find_client(scope)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if (route := _FILE_ROUTE.search(scope["path"])) and not self.serves(route.group(1), route.group(2)):
            return await refuse(send, 403, "this file is not served")
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        if scope["path"].rstrip("/").endswith(UPLOAD_PATH):
            if not self.uploads_enabled:
                return await refuse(send, 403, "uploads are disabled")
            try:  # the count may live in PostgreSQL: never wait for a database on the event loop
                await asyncio.wait_for(asyncio.to_thread(self.upload_limit.take, client_of(scope)), self.db_wait_s)
            except LimitExceeded as exc:
                return await refuse(send, 429, str(exc))
            except (TimeoutError, SQLAlchemyError) as exc:
                log.warning("the upload limit could not be checked: %s", type(exc).__name__)
                return await refuse(send, 503, "the database is not answering right now; please try again in a moment")
            return await self.capped(scope, receive, send, self.max_upload_bytes)
        if self.draining() and _QUESTION_API.search(scope["path"]):  # a restart: ask another machine, or again soon
            return await refuse(send, 503, RESTARTING, retry_after=5)
        if self.question_budget is not None and _QUESTION_API.search(scope["path"]):
            # An API client over its question budget is told so with 429 before anything is queued
            # (the app spends the budget; the chat in a browser says it in the conversation).
            try:
                wait = await asyncio.wait_for(asyncio.to_thread(self.question_budget.wait_s, client_of(scope),
                                                                take=False), self.db_wait_s)
            except (TimeoutError, SQLAlchemyError):
                wait = 0.0  # the app's own check answers then
            if wait > 0:
                return await refuse(send, 429, too_many_questions(wait), retry_after=wait)
        return await self.inspected(scope, receive, send)

    def find_client(self, scope) -> None:
        """Replace a trusted proxy's address by the client it forwards for (validated)."""
        peer = scope.get("client")
        if not self.trusted_proxies or not peer or not self.trusted(peer[0]):
            return
        headers = scope.get("headers") or []
        forwarded = ",".join(v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                return  # garbage from the client's side of the chain: count the proxy's own address
            if not self.trusted(address):
                scope["client"] = (address, 0)
                proto = next((v.decode("latin-1").strip() for k, v in headers if k == b"x-forwarded-proto"), "")
                if proto in ("http", "https"):
                    scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")
                return

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def serves(self, route: str, target: str) -> bool:
        """Only files inside Gradio's upload/cache folder, named by path — never a URL, never a proxy.
        A path that does not even read as inside the folder is refused without touching the disk
        (this runs on the event loop); one that does is resolved, so a link cannot lead out of it."""
        if route == "proxy=" or not target or _PROTOCOL.match(target):
            return False
        try:
            named = Path(os.path.normpath(os.path.abspath(target)))
            if not any(named.is_relative_to(prefix) for prefix in self._served_prefixes):
                return False
            return Path(target).resolve().is_relative_to(self.served_files)
        except (OSError, ValueError):
            return False

    async def capped(self, scope, receive, send, cap: int):
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

    async def inspected(self, scope, receive, send):
        """Read the (capped) body whole, refuse files given by URL, then hand Gradio the same body."""
        cap = self.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            return await refuse(send, 413, f"request larger than {cap:,} bytes")
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                return await refuse(send, 413, f"request larger than {cap:,} bytes")
        try:
            named = files_named(bytes(body))
        except RecursionError:
            return await refuse(send, 400, "request nested too deeply")
        if len(named) > MAX_FILES_NAMED:
            return await refuse(send, 413, f"more than {MAX_FILES_NAMED} files in one request")
        if any(not self.serves("file=", path) for path in named):
            return await refuse(send, 403, "only files uploaded to this app can be named")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return await self.app(scope, replay, send)


def files_named(body: bytes) -> list[str]:
    """The paths of every Gradio ``FileData``-like object in a JSON body: any object with a ``path``
    beside ``meta``, ``url`` or ``orig_name`` (Gradio treats each as a file to copy), and any
    non-string path too (the caller refuses it: ``serves`` accepts only a path in the upload folder).
    Raises ``RecursionError`` for JSON nested deeper than Python's parser goes."""
    try:
        data = json.loads(body)
    except ValueError:
        return []  # not JSON: Gradio will refuse it
    named, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item and ("meta" in item or "url" in item or "orig_name" in item):
                named.append(item["path"] if isinstance(item["path"], str) else "")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return named


class BodyTooLarge(Exception):
    pass


def client_of(scope) -> str:
    client = scope.get("client")
    return client_key(client[0]) if client else "unknown"


async def refuse(send, status: int, message: str, retry_after: float | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
