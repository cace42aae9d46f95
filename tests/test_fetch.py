"""URL indexing cannot be turned against the network it runs in (SSRF), nor held open forever.

A real HTTP server on loopback plays the outside world. It is reached as ``localhost``, the one
name the tests allow (as an operator would with RAG_FETCH_ALLOW_HOSTS); ``127.0.0.1`` is the same
server under a name nobody allowed, i.e. "inside".
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag.ingest.fetch import Fetcher
from rag.ingest.formats import LoadError

ARTICLE = (b"<html><head><title>Harbour News</title></head><body><article><h1>Harbour News</h1>"
           b"<p>The harbour master reported that 212 vessels docked in March, a record for the port.</p>"
           b"<p>Repairs to the north pier will begin in the autumn.</p></article></body></html>")
SECRET = b"<html><body><p>INTERNAL ADMIN PAGE: database password is swordfish.</p></body></html>"


class Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        port = self.server.server_address[1]
        if self.path == "/article":
            self.reply(200, ARTICLE)
        elif self.path == "/secret":
            self.reply(200, SECRET)
        elif self.path.startswith("/to/"):
            target = {"inside": f"http://127.0.0.1:{port}/secret", "file": "file:///etc/passwd",
                      "metadata": "http://169.254.169.254/latest/meta-data/", "article": "/article",
                      "loop": "/to/loop"}[self.path[4:]]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
        elif self.path == "/drip":  # one byte every 0.3 s, for a minute
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(200):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.3)
        elif self.path == "/big":
            self.reply(200, b"x" * 50_000, length=False)

    def reply(self, status: int, body: bytes, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_an_allowed_host_is_fetched_and_its_redirects_followed(server):
    body, content_type = Fetcher(allow_hosts=("localhost",))(f"http://localhost:{server}/to/article")
    assert b"212 vessels" in body and "text/html" in content_type


@pytest.mark.parametrize("hop", ["inside", "metadata"])
def test_a_redirect_to_an_internal_address_is_refused(server, hop):
    with pytest.raises(LoadError, match="internal address"):
        Fetcher(allow_hosts=("localhost",))(f"http://localhost:{server}/to/{hop}")


def test_a_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(LoadError, match="only http and https"):
        Fetcher(allow_hosts=("localhost",))(f"http://localhost:{server}/to/file")


def test_redirect_loops_end(server):
    with pytest.raises(LoadError, match="redirects"):
        Fetcher(allow_hosts=("localhost",))(f"http://localhost:{server}/to/loop")


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/article", "http://[::1]:{port}/article",
                                 "http://0.0.0.0:{port}/article", "http://2130706433:{port}/article",
                                 "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://192.168.0.1/"])
def test_internal_addresses_are_refused_without_an_operator_allowing_them(server, url):
    with pytest.raises(LoadError, match="internal address|cannot resolve"):
        Fetcher()(url.format(port=server))


def test_a_slow_drip_server_is_cut_off_at_the_total_deadline(server):
    started = time.monotonic()
    with pytest.raises(LoadError, match="within 2 s"):
        Fetcher(allow_hosts=("localhost",), timeout_s=2)(f"http://localhost:{server}/drip")
    assert time.monotonic() - started < 5


def test_pages_over_the_size_cap_are_refused_even_without_a_length_header(server):
    with pytest.raises(LoadError, match="larger than"):
        Fetcher(allow_hosts=("localhost",), max_bytes=10_000)(f"http://localhost:{server}/big")


def test_indexing_a_url_that_redirects_inside_indexes_nothing_from_inside(server, settings, embedding_model):
    from rag.components import Components
    from rag.ingest.index import list_articles, run_indexing

    parts = Components(settings.model_copy(update={"fetch_allow_hosts": "localhost"}), embedding_model=embedding_model)
    summary = run_indexing(parts, [f"http://localhost:{server}/article", f"http://localhost:{server}/to/inside"])
    assert [reason for _, reason in summary.failed] and "internal address" in summary.failed[0][1]
    texts = " ".join(parts.store().get()["documents"])
    assert "212 vessels" in texts and "swordfish" not in texts
    assert len(list_articles(parts.store())) == 1


def test_the_connection_goes_to_the_address_that_was_checked_when_dns_answers_change(monkeypatch):
    """DNS rebinding: the name resolves to an outside address when checked, then to an inside one.
    Two servers on one port stand in: 127.0.0.2 is "outside" (the check is told it is public),
    127.0.0.1 is "inside". The fetch must reach the address it checked, never the second answer."""
    import socket

    import rag.ingest.fetch

    inside = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = inside.server_address[1]
    try:
        outside = ThreadingHTTPServer(("127.0.0.2", port), Handler)
    except OSError:
        inside.server_close()
        pytest.skip("127.0.0.2 is not routable to loopback here")
    for httpd in (inside, outside):
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    class Inside(Handler):  # the inside server answers every path with the secret
        def do_GET(self):  # noqa: N802
            self.reply(200, SECRET)

    inside.RequestHandlerClass = Inside
    real_getaddrinfo = socket.getaddrinfo
    answers = []

    def rebinding(host, *args, **kwargs):
        if host != "news.rebind.test":
            return real_getaddrinfo(host, *args, **kwargs)
        address = "127.0.0.2" if not answers else "127.0.0.1"  # first answer outside, every later one inside
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, args[0] if args else port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(rag.ingest.fetch, "is_public", lambda address: address == "127.0.0.2")
    try:
        body, _ = Fetcher()(f"http://news.rebind.test:{port}/article")
        assert b"212 vessels" in body and b"swordfish" not in body
        assert answers[0] == "127.0.0.2"
    finally:
        inside.shutdown()
        outside.shutdown()
