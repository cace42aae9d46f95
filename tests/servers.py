"""Small HTTP servers for tests: ``serving`` any handler, and an OpenAI-compatible chat server that
streams a reply fixed by the test, slowly — standing in for any model server (vLLM, Ollama, llama.cpp)
in tests of what the product does with what a model writes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(body)
        reply = self.server.reply
        if not body.get("stream"):
            payload = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                               "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in reply.split(" "):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                     "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(self.server.delay_s)
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1", **attributes):
    """A threaded HTTP server on ``address`` (a free port) for the test's duration; ``attributes``
    are set on it for the handler to read (``self.server.…``), and ``.requests`` starts empty."""
    server = ThreadingHTTPServer((address, 0), handler)
    server.daemon_threads = True
    server.requests = []
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def fake_llm_server(reply: str, delay_s: float = 0.25):
    """Yields the server (``.url`` is its ``/v1`` base, ``.requests`` what it was sent, ``.reply`` settable)."""
    with serving(_Handler, reply=reply, delay_s=delay_s) as server:
        server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        yield server
