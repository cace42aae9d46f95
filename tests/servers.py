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

    def do_GET(self):  # noqa: N802 — GET /models: what a readiness probe asks (rag.health.server_check)
        payload = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
        self.send_response(200 if self.path.rstrip("/").endswith("/models") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1", port: int = 0, **attributes):
    """A threaded HTTP server on ``address`` (a free port) for the test's duration; ``attributes``
    are set on it for the handler to read (``self.server.…``), and ``.requests`` starts empty."""
    server = ThreadingHTTPServer((address, port), handler)
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
def fake_llm_server(reply: str, delay_s: float = 0.25, port: int = 0):
    """Yields the server (``.url`` is its ``/v1`` base, ``.requests`` what it was sent, ``.reply`` settable)."""
    with serving(_Handler, port=port, reply=reply, delay_s=delay_s) as server:
        server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        yield server


class PostgresServer:
    """A real PostgreSQL (Debian's ``postgresql`` package) for the test's duration: ``initdb`` in a
    temporary folder, trust authentication, listening on 127.0.0.1 and a free port only. Run as the
    ``postgres`` user when the tests run as root (PostgreSQL refuses root). Skips the test with the
    reason when the binaries are absent (``.ci/run`` installs them)."""

    def __init__(self) -> None:
        import glob
        import os
        import shutil
        import socket
        import subprocess
        import tempfile

        import pytest

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.skip("PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)")
        self.bin = os.path.dirname(found[-1])
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres and shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        self.folder = tempfile.mkdtemp(prefix="rag-pg-")
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._subprocess = subprocess
        self._run("initdb", "-D", f"{self.folder}/data", "-A", "trust", "-U", "rag", "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [f"{self.bin}/{tool}", *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = self._subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", f"{self.folder}/data", "-l", f"{self.folder}/server.log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", f"{self.folder}/data", "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://rag@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """An empty database of its own (one per test): its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        import shutil

        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
