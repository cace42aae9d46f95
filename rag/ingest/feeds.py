"""Feeds and the sources operators keep indexing: which RSS/Atom entries were indexed, which file
each article was read from (so a watched folder's deleted file takes its articles with it, even
when the article names a URL as its source), and when each source was last checked (the Admin
tab lists them).

A feed is fetched like any URL (``rag.ingest.fetch``: public hosts, bounded size and time) and parsed by
feedparser from those bytes — feedparser never fetches anything itself. Each entry's link is then
loaded as an ordinary web page. An entry already indexed whose ``updated`` (or ``published``)
stamp has not changed is skipped without fetching its page; its article stays in the index.
What was indexed is remembered only after the index write succeeded, so a failed run retries it.

The tables live in the record manager's database, beside the records they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Engine, MetaData, String, Table, Text, text
from sqlalchemy.schema import CreateTable

FEED_TYPES = ("rss", "atom", "rdf")
MAX_ENTRIES = 200  # a feed is a list of recent items; a longer one is cut, newest first as served


_tables = MetaData()
_NAMESPACE = Column("namespace", String(255), primary_key=True)
# Created "if not exists": record databases from before migrations already hold them.
MIGRATIONS = [CreateTable(table, if_not_exists=True) for table in (
    Table("feed_entries", _tables, _NAMESPACE.copy(), Column("feed", Text, primary_key=True),
          Column("entry_key", Text, primary_key=True), Column("updated", Text), Column("doc_id", Text)),
    Table("checked_sources", _tables, _NAMESPACE.copy(), Column("source", Text, primary_key=True), Column("kind", Text),
          Column("checked_at", Text), Column("result", Text)),
    Table("article_files", _tables, _NAMESPACE.copy(), Column("path", Text, primary_key=True), Column("doc_id", Text)),
)]


@dataclass(frozen=True)
class FeedEntry:
    feed: str
    key: str  # the entry's id, or its link when it has none
    link: str
    updated: str  # the entry's own stamp ("" when it gives none)
    doc_id: str = ""


def is_feed(body: bytes, content_type: str) -> bool:
    """RSS/Atom by its declared type, or (servers often say text/xml) by its root element."""
    if any(kind in content_type.lower() for kind in FEED_TYPES):
        return True
    head = body[:2000].lstrip().lower()
    return head.startswith(b"<?xml") and any(root in head for root in (b"<rss", b"<feed", b"<rdf:rdf"))


def read_feed(feed_url: str, body: bytes, max_entries: int = MAX_ENTRIES) -> list[FeedEntry]:
    """The entries of a feed that link to a web page, in the feed's order."""
    import feedparser

    parsed = feedparser.parse(body)  # bytes: parsed as given, nothing fetched
    entries = []
    for entry in parsed.entries[:max_entries]:
        link = str(entry.get("link") or "")
        if not link.startswith(("http://", "https://")):
            continue
        entries.append(FeedEntry(feed=feed_url, key=str(entry.get("id") or link), link=link,
                                 updated=str(entry.get("updated") or entry.get("published") or "")))
    if not entries and parsed.get("bozo"):  # broken XML with nothing usable in it
        raise ValueError(f"not a readable RSS or Atom feed ({parsed.get('bozo_exception')})")
    return entries


class SourceLog:
    """What was indexed from each feed, and when each source was last checked. Its tables are
    created with the record database's (``rag.ingest.index.open_record_manager``)."""

    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace

    def indexed_unchanged(self, entry: FeedEntry) -> str | None:
        """The doc id an entry was indexed as, if it was and its stamp is the same; else None."""
        with self.engine.connect() as db:
            row = db.execute(text("SELECT updated, doc_id FROM feed_entries WHERE namespace = :ns AND feed = :feed "
                                  "AND entry_key = :key"), {"ns": self.namespace, "feed": entry.feed,
                                                            "key": entry.key}).fetchone()
        return row[1] if row is not None and row[0] == entry.updated else None

    def remember(self, entries: list[FeedEntry]) -> None:
        with self.engine.begin() as db:
            for entry in entries:
                params = {"ns": self.namespace, "feed": entry.feed, "key": entry.key}
                db.execute(text("DELETE FROM feed_entries WHERE namespace = :ns AND feed = :feed AND entry_key = :key"),
                           params)
                db.execute(text("INSERT INTO feed_entries VALUES (:ns, :feed, :key, :updated, :doc_id)"),
                           {**params, "updated": entry.updated, "doc_id": entry.doc_id})

    def remember_files(self, files: dict[str, str]) -> None:
        """``{file path: doc id}`` of articles just indexed from files (``rag.ingest.load.file_path``).
        Only what changed is written: a re-run over an unchanged corpus writes nothing."""
        with self.engine.begin() as db:
            known = dict(db.execute(text("SELECT path, doc_id FROM article_files WHERE namespace = :ns"),
                                    {"ns": self.namespace}).fetchall())
            for path, doc_id in files.items():
                if known.get(path) == doc_id:
                    continue
                db.execute(text("DELETE FROM article_files WHERE namespace = :ns AND path = :path"),
                           {"ns": self.namespace, "path": path})
                db.execute(text("INSERT INTO article_files VALUES (:ns, :path, :doc_id)"),
                           {"ns": self.namespace, "path": path, "doc_id": doc_id})

    def forget_files(self, paths: list[str]) -> list[str]:
        """Forget ``paths``; returns the doc ids that were read from them."""
        doc_ids = []
        with self.engine.begin() as db:
            for path in paths:
                params = {"ns": self.namespace, "path": path}
                row = db.execute(text("SELECT doc_id FROM article_files WHERE namespace = :ns AND path = :path"),
                                 params).fetchone()
                if row is not None:
                    doc_ids.append(row[0])
                    db.execute(text("DELETE FROM article_files WHERE namespace = :ns AND path = :path"), params)
        return doc_ids

    def checked(self, source: str, kind: str, result: str) -> None:
        """Note that ``source`` (a file, folder, URL, feed or watched folder) was just indexed."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.engine.begin() as db:
            db.execute(text("DELETE FROM checked_sources WHERE namespace = :ns AND source = :source"),
                       {"ns": self.namespace, "source": source})
            db.execute(text("INSERT INTO checked_sources VALUES (:ns, :source, :kind, :at, :result)"),
                       {"ns": self.namespace, "source": source, "kind": kind, "at": now, "result": result[:300]})

    def sources(self) -> list[dict]:
        """Every source indexed so far, most recently checked first."""
        with self.engine.connect() as db:
            rows = db.execute(text("SELECT source, kind, checked_at, result FROM checked_sources WHERE namespace = :ns "
                                   "ORDER BY checked_at DESC, source"), {"ns": self.namespace}).fetchall()
        return [{"source": r[0], "kind": r[1], "checked_at": r[2], "result": r[3]} for r in rows]
