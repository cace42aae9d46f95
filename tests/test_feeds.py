"""Feeds end to end: a real HTTP server on loopback serves an Atom feed and its two articles;
`run_indexing` (what `python -m rag index URL` runs) indexes each entry, then skips unchanged ones."""

import http.server
import threading

import pytest
from pydantic import SecretStr

from rag.components import Components
from rag.ingest.feeds import SourceLog, is_feed, read_feed
from rag.ingest.index import list_articles, open_record_manager, run_indexing

ARTICLE = """<!doctype html><html><head><title>{title}</title>
<meta property="article:published_time" content="{date}"></head>
<body><main><article><h1>{title}</h1><p>{body}</p></article></main></body></html>"""
PAGES = {
    "/news/ferry.html": ARTICLE.format(title="Night Ferry Returns", date="2025-03-02",
                                       body="The night ferry to the islands returns on 1 May with four sailings a week."),
    "/news/bridge.html": ARTICLE.format(title="Bridge Tolls Frozen", date="2025-03-09",
                                        body="Tolls on the estuary bridge stay at 2 euros until the end of 2026."),
}
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Harbour News</title><id>urn:harbour-news</id>
<updated>2025-03-09T10:00:00Z</updated>
<entry><title>Bridge Tolls Frozen</title><id>urn:news:bridge</id><link href="{base}/news/bridge.html"/>
<updated>{bridge_updated}</updated></entry>
<entry><title>Night Ferry Returns</title><id>urn:news:ferry</id><link href="{base}/news/ferry.html"/>
<updated>2025-03-02T08:00:00Z</updated></entry>
<entry><title>Internal memo</title><id>urn:news:memo</id><link href="http://10.0.0.5/memo.html"/>
<updated>2025-03-01T08:00:00Z</updated></entry>
</feed>"""


@pytest.fixture()
def news_site():
    requests: list[str] = []
    state = {"bridge_updated": "2025-03-09T10:00:00Z"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            base = f"http://localhost:{self.server.server_port}"
            if self.path == "/feed.xml":
                body, kind = ATOM.format(base=base, **state), "application/atom+xml"
            elif self.path in PAGES:
                body, kind = PAGES[self.path], "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_port}", requests, state
    server.shutdown()


def test_a_feed_indexes_each_entry_then_skips_the_unchanged_ones(news_site, settings, embedding_model):
    base, requests, state = news_site
    parts = Components(settings.model_copy(update={"fetch_allow_hosts": "localhost"}), embedding_model=embedding_model)
    feed = f"{base}/feed.xml"

    first = run_indexing(parts, [feed])
    titles = {row["title"] for row in list_articles(parts.store())}
    assert titles == {"Night Ferry Returns", "Bridge Tolls Frozen"}
    assert len(first.added) == 2
    assert [reason for _, reason in first.failed] and "internal address" in first.failed[0][1], \
        "an entry linking inside the network is refused like a pasted URL"

    requests.clear()
    second = run_indexing(parts, [feed], prune=False)
    assert requests == ["/feed.xml"], "unchanged entries are not fetched again"
    assert not second.added and len(second.unchanged) == 2

    state["bridge_updated"] = "2025-03-10T09:00:00Z"  # the bridge story was updated
    requests.clear()
    run_indexing(parts, [feed])
    assert requests == ["/feed.xml", "/news/bridge.html"]

    log = SourceLog(open_record_manager(parts.settings).engine, open_record_manager(parts.settings).namespace)
    assert [(s["source"], s["kind"]) for s in log.sources()] == [(feed, "feed")]
    assert log.sources()[0]["checked_at"]


def test_pruning_with_a_feed_keeps_the_entries_skipped_as_unchanged(news_site, settings, embedding_model):
    base, _requests, _state = news_site
    parts = Components(settings.model_copy(update={"fetch_allow_hosts": "localhost"}), embedding_model=embedding_model)
    run_indexing(parts, [f"{base}/feed.xml"])
    # The memo entry fails on every run, so prune would be refused; a feed of good entries only:
    summary = run_indexing(parts, [f"{base}/feed.xml"], prune=True)
    assert len(list_articles(parts.store())) == 2 and not summary.removed


def test_feeds_are_recognised_by_type_or_root_and_parsed_without_fetching():
    atom = ATOM.format(base="https://example.org", bridge_updated="2025-03-09T10:00:00Z").encode()
    assert is_feed(atom, "text/xml") and is_feed(b"<rss/>", "application/rss+xml")
    assert not is_feed(b"<!doctype html><html>", "text/html")
    entries = read_feed("https://example.org/feed.xml", atom)
    assert [e.key for e in entries] == ["urn:news:bridge", "urn:news:ferry", "urn:news:memo"]
    assert entries[0].link == "https://example.org/news/bridge.html" and entries[0].updated.startswith("2025-03-09")
    with pytest.raises(ValueError, match="not a readable"):
        read_feed("https://example.org/feed.xml", b"<?xml version='1.0'?><rss><channel><item>")


def test_the_admin_lists_the_feed_and_checks_it_again(news_site, settings, embedding_model):
    from rag.web.admin import Admin, AdminError

    base, requests, _state = news_site
    password = "a long admin password"
    parts = Components(settings.model_copy(update={"fetch_allow_hosts": "localhost",
                                                   "admin_password": SecretStr(password)}), embedding_model=embedding_model)
    admin = Admin(parts)
    with pytest.raises(AdminError, match="no feeds yet"):
        admin.recheck_feeds(password)
    admin.index(password, [], f"{base}/feed.xml")
    assert [row["kind"] for row in admin.sources(password)] == ["feed"]
    requests.clear()
    summary = admin.recheck_feeds(password)
    assert len(summary.unchanged) == 2 and requests == ["/feed.xml"]


def test_a_url_list_may_name_feeds(news_site, tmp_path):
    from rag.ingest.fetch import Fetcher
    from rag.ingest.load import load_sources

    base, _requests, _state = news_site
    listing = tmp_path / "reading.urls"
    listing.write_text(f"# harbour news\n{base}/feed.xml\n{base}/news/ferry.html\n", encoding="utf-8")
    loaded = load_sources([str(listing)], fetch=Fetcher(allow_hosts=("localhost",)))
    assert loaded.feeds == [f"{base}/feed.xml"]
    assert sorted(a.title for a in loaded.articles) == ["Bridge Tolls Frozen", "Night Ferry Returns"]
    assert [source for source, reason in loaded.failures if "duplicate" in reason] == [f"{base}/news/ferry.html"], \
        "the page also listed on its own is loaded once"


def test_a_feed_has_one_deadline_for_all_its_pages_and_a_cap_on_pages_per_run():
    """200 slow entries must not hold the index lock for 200 × the fetch timeout: the feed and all
    its pages share one deadline, and at most so many pages are fetched per run (the rest next run)."""
    import time

    from rag.ingest.fetch import Fetcher
    from rag.ingest.load import FeedLimits, load_sources

    served: list[str] = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            base = f"http://localhost:{self.server.server_port}"
            if self.path == "/feed.xml":
                entries = "".join(f"<entry><id>urn:{n}</id><link href=\"{base}/p/{n}.html\"/>"
                                  f"<updated>2025-03-01T00:00:00Z</updated></entry>" for n in range(200))
                body = f"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'>{entries}</feed>".encode()
                kind = "application/atom+xml"
            else:
                time.sleep(0.7)  # every page answers slowly, well within the per-fetch timeout
                n = self.path.split("/")[-1].split(".")[0]
                body, kind = ARTICLE.format(title=f"Notice {n}", date="2025-03-01",
                                            body=f"Harbour notice number {n} was posted today.").encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = f"http://localhost:{server.server_port}/feed.xml"
    fetch = Fetcher(allow_hosts=("localhost",), timeout_s=30)
    try:
        started = time.monotonic()
        by_time = load_sources([feed], fetch=fetch, feed_limits=FeedLimits(seconds=3, pages=50))
        took = time.monotonic() - started
        assert took < 5, f"one feed took {took:.1f} s"
        assert 2 <= len(by_time.articles) <= 5 and by_time.failures[-1][0] == feed
        assert "left for the next run" in by_time.failures[-1][1] and "3 s" in by_time.failures[-1][1]

        served.clear()
        by_count = load_sources([feed], fetch=fetch, feed_limits=FeedLimits(seconds=300, pages=3))
        assert len(by_count.articles) == 3 and len(served) == 4  # the feed and three pages
        assert by_count.failures == [(feed, "197 entries left for the next run (at most 3 pages per run)")]
    finally:
        server.shutdown()
