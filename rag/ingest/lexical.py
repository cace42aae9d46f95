"""Stage 4a — the lexical (BM25) side of retrieval, kept by the indexer in the record database.

The index lives beside the record manager (``RAG_RECORD_DB_URL``, by default
``RAG_DATA_DIR/records.sqlite``), one table set per collection: ``<t>_chunks`` holds each chunk's
id, article id, date and text (``page_content``: header + body), ``<t>_articles`` one row per
article (the article list: title, date, source, chunks). The indexer writes them in the same
code path that writes Chroma (``LexicalIndex.add``/``delete``, called from ``rag.ingest.store.MirroredChroma``),
so it is updated in place, chunk by chunk: no process ever re-reads or re-tokenises the corpus,
every process that shares the database sees each change at once (a reader waits at most for one
batch's commit), and filters (article ids, dates) are SQL conditions. Two engines:

- **SQLite** (``SqliteLexicalIndex``): an FTS5 table over the text (Porter stems, FTS5's own BM25),
  kept in step by triggers, and an ``fts5vocab`` table for each word's document frequency.
- **PostgreSQL** (``PostgresLexicalIndex``): a generated ``tsvector`` column turns each chunk into
  its lexemes (every word, Snowball-stemmed, as FTS5 indexes every word); statement-level triggers
  keep, from it, a postings table — one row per (lexeme, chunk) with the term's frequency there and
  the chunk's length, indexed by lexeme — each lexeme's document frequency (``<t>_terms``) and the
  collection's totals (chunks, words). A question's BM25 is then one SQL statement over an
  index-only scan of its lexemes' postings: no chunk row is read to rank (the first release read
  every matching chunk's tsvector through a GIN index: 2.4× FTS5's time at 100k chunks). Same
  k1 = 1.2, b = 0.75 and IDF as FTS5. Measured on SciFact: README "Benchmarks".

Why in the database (measured, see README "Benchmarks"): the in-memory bm25s index it replaces had
to be rebuilt by every app process after every re-index (~30 s at 100k chunks), held every text in
every process, and filtered in a Python loop.

Queries drop English stop words. In large collections (``LARGE`` chunks and up) they also keep
only the ``MAX_TERMS`` rarest remaining words, none found in more than ``MAX_DF`` of the chunks:
very common words add almost nothing to a BM25 ranking but make the engine score every chunk that
contains them, the cost that grows with the corpus. Measured on SciFact (21k chunks, FTS5): hybrid
nDCG@10 0.7225 with these limits, 0.7236 without (BM25 alone 0.651 / 0.671; the bm25s index it
replaced: 0.668 / hybrid 0.722); at 100k synthetic chunks the 10% limit cut the FTS5 query's p50 from 21 to 11.5 ms.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterator
from functools import cache

import Stemmer
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from rag.db import create_migrations_table, lock_key, now

# In collections of LARGE chunks or more, a question searches only its MAX_TERMS rarest words, and
# none found in more than MAX_DF of the chunks (smaller collections search every word).
LARGE = 20_000
MAX_TERMS = 8
MAX_DF = 0.10
K1, B = 1.2, 0.75  # BM25's parameters, FTS5's defaults
# The word index's tables, columns, indexes and triggers as ``_ensure_tables`` makes them: raise this
# whenever that changes, so that existing indexes run it again once (and only then).
SCHEMA_VERSION = 2  # 2: the article list (``<t>_articles``)
POST_FILTER = 20  # a date-filtered BM25 first ranks this many times k unfiltered (PostgreSQL)
CONFIG = "rag_english"  # PostgreSQL's text search configuration (see PostgresLexicalIndex)
_PORTER = Stemmer.Stemmer("porter")  # the algorithm of FTS5's porter tokenizer: vocabulary look-ups agree
_WORD = re.compile(r"\w+")


class LexicalIndexError(Exception):
    pass


@cache
def stopwords() -> frozenset[str]:
    """bm25s's English list (what the lexical side used before FTS5). Imported on first use: the
    package pulls in numba (0.7 s), which indexing never needs."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def collection_key(namespace: str) -> str:
    """One safe name per collection, for its tables and its indexer lock alike. PostgreSQL folds
    unquoted names to lower case and cuts them at 63 bytes, and ``a-b`` and ``a_b`` would share
    ``a_b``: a name that is not already lower-case letters, digits and ``_`` (≤ 40 of them) becomes
    its safe form, shortened, plus a hash of the whole name. Names that were safe keep the name
    they always had, so existing indexes open as before."""
    if re.fullmatch(r"chroma/[a-z0-9_]{1,40}", namespace):
        return namespace
    safe = re.sub(r"[^a-z0-9_]", "_", namespace.lower())[:30]
    return f"{safe}_{hashlib.sha256(namespace.encode()).hexdigest()[:10]}"


def table_prefix(namespace: str) -> str:
    return "lexical_" + re.sub(r"\W", "_", collection_key(namespace))


def question_words(query: str) -> list[str]:
    """The question's words, lower-cased, without stop words or repeats, in order."""
    stop = stopwords()
    return list(dict.fromkeys(w for w in _WORD.findall(query.lower()) if w not in stop))


class LexicalIndex:
    """BM25 search over one collection's chunks; ``add``/``delete`` are the indexer's. The engine's
    own part (tables, how words become terms, the ranking query) is in the two subclasses."""

    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine = engine
        self.t = table_prefix(namespace)
        self._count: tuple[float, int, float] = (0.0, 0, 0.0)  # (when counted, chunks, mean words): refreshed every few seconds
        # DDL only when the schema is not current: even "IF NOT EXISTS" DDL takes table locks that
        # queue behind an indexer's open batch, and a reader's start must never wait for one.
        if not self._schema_current():
            self._ensure_tables()
            self._ensure_articles_table()
            self._mark_schema_current()

    def _ensure_articles_table(self) -> None:
        """One row per article — title, date, source, newest indexing time, chunks — kept by ``add``
        and ``delete`` in the chunks' transaction: what the catalogue, the Admin tab and ``rag docs``
        read. Listing articles from Chroma's metadata instead reads every chunk's (88 s at 1M chunks
        on a Chroma server; this table: 1 s). A new, empty index's list is complete from the start; an
        existing one's is filled once by the next indexing run (``fill_articles``), and read from
        Chroma until then."""
        with self.engine.begin() as db:
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {self.t}_articles (doc_id TEXT PRIMARY KEY, "
                            f"title TEXT NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL, "
                            f"indexed_at TEXT NOT NULL, chunks INTEGER NOT NULL)"))
            if db.execute(text(f"SELECT 1 FROM {self.t}_chunks LIMIT 1")).first() is None:
                self._mark_articles_complete(db)

    def _mark_articles_complete(self, db: Connection) -> None:
        create_migrations_table(db)
        db.execute(text("DELETE FROM schema_migrations WHERE store = :s"), {"s": f"articles/{self.t}"})
        db.execute(text("INSERT INTO schema_migrations VALUES (:s, 1, :at)"), {"s": f"articles/{self.t}", "at": now()})

    def _schema_current(self) -> bool:
        """Read-only: no lock an indexer holds stands in its way."""
        try:
            with self.engine.connect() as db:
                return db.execute(text("SELECT 1 FROM schema_migrations WHERE store = :s AND number = :n"),
                                  {"s": f"lexical/{self.t}", "n": SCHEMA_VERSION}).first() is not None
        except Exception:  # no schema_migrations table yet: a new database
            return False

    def _mark_schema_current(self) -> None:
        with self.engine.begin() as db:
            create_migrations_table(db)
            db.execute(text("DELETE FROM schema_migrations WHERE store = :s"), {"s": f"lexical/{self.t}"})
            db.execute(text("INSERT INTO schema_migrations VALUES (:s, :n, :at)"),
                       {"s": f"lexical/{self.t}", "n": SCHEMA_VERSION, "at": now()})

    def _ensure_tables(self) -> None:
        raise NotImplementedError

    # --- the indexer's side -------------------------------------------------------------------

    _INSERT = ""  # the engine's insert that skips a chunk already present
    # Chunks, and the mean length that BM25 needs where the engine does not keep it itself. Only
    # PostgreSQL needs the mean: averaging on SQLite would read every chunk's row every 5 s.
    _STATISTICS = "SELECT count(*), 0 FROM {t}_chunks"

    # An article's row takes the metadata of its newest chunks, the newest indexing time and a fresh count.
    _UPSERT_ARTICLE = (
        "INSERT INTO {t}_articles (doc_id, title, date, source, indexed_at, chunks) VALUES (:doc_id, :title, "
        ":date, :source, :indexed_at, (SELECT count(*) FROM {t}_chunks WHERE doc_id = :doc_id)) "
        "ON CONFLICT (doc_id) DO UPDATE SET title = excluded.title, date = excluded.date, source = excluded.source, "
        "indexed_at = CASE WHEN excluded.indexed_at > {t}_articles.indexed_at THEN excluded.indexed_at "
        "ELSE {t}_articles.indexed_at END, chunks = excluded.chunks")

    def add(self, ids: list[str], texts: list[str], metadatas: list[dict], fence=None) -> None:
        """Insert chunks (a chunk already present is left as is: its id is a hash of its content) and
        update their articles' rows. ``fence(connection)``, when given, runs first in the same
        transaction (the indexer lock's)."""
        rows = [{"chunk_id": i, "doc_id": str(m.get("doc_id", "")), "date_num": int(m.get("date_num") or 0), "body": b,
                 "words": len(_WORD.findall(b))}
                for i, b, m in zip(ids, texts, metadatas, strict=True)]
        if rows:
            with self.engine.begin() as db:
                if fence is not None:
                    fence(db)
                db.execute(text(self._INSERT.format(t=self.t)), rows)
                if articles := _article_rows(metadatas):
                    db.execute(text(self._UPSERT_ARTICLE.format(t=self.t)), articles)

    def delete(self, ids: list[str]) -> None:
        with self.engine.begin() as db:
            touched = self._doc_ids_of(db, ids)
            db.execute(text(f"DELETE FROM {self.t}_chunks WHERE chunk_id = :chunk_id"), [{"chunk_id": i} for i in ids])
            self._recount(db, touched)

    def _doc_ids_of(self, db: Connection, ids: list[str]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's limit on a statement's variables
            part = ids[start:start + 500]
            marks = ", ".join(f":c{i}" for i in range(len(part)))
            found.update(row[0] for row in db.execute(text(f"SELECT DISTINCT doc_id FROM {self.t}_chunks "
                                                           f"WHERE chunk_id IN ({marks})"),
                                                      {f"c{i}": c for i, c in enumerate(part)}))
        return sorted(found)

    def _recount(self, db: Connection, doc_ids: list[str]) -> None:
        """After chunks were deleted: their articles' counts, and no row for an article left without any."""
        if doc_ids:
            t = self.t
            db.execute(text(f"UPDATE {t}_articles SET chunks = (SELECT count(*) FROM {t}_chunks WHERE doc_id = :d) "
                            f"WHERE doc_id = :d"), [{"d": d} for d in doc_ids])
            db.execute(text(f"DELETE FROM {t}_articles WHERE doc_id = :d AND chunks = 0"), [{"d": d} for d in doc_ids])

    def delete_articles(self, doc_ids: list[str]) -> None:
        with self.engine.begin() as db:
            db.execute(text(f"DELETE FROM {self.t}_chunks WHERE doc_id = :doc_id"), [{"doc_id": d} for d in doc_ids])
            db.execute(text(f"DELETE FROM {self.t}_articles WHERE doc_id = :doc_id"), [{"doc_id": d} for d in doc_ids])

    def keep_only(self, doc_id: str, chunk_ids: set[str]) -> int:
        """Remove an article's chunks that are not in ``chunk_ids`` (what a crash may have left)."""
        with self.engine.begin() as db:
            stored = {r[0] for r in db.execute(text(f"SELECT chunk_id FROM {self.t}_chunks WHERE doc_id = :d"),
                                               {"d": doc_id})}
        extra = sorted(stored - chunk_ids)
        if extra:
            self.delete(extra)
        return len(extra)

    def clear(self) -> None:
        with self.engine.begin() as db:
            db.execute(text(f"DELETE FROM {self.t}_chunks"))
            db.execute(text(f"DELETE FROM {self.t}_articles"))
            self._mark_articles_complete(db)

    def fill_articles(self, rows: list[dict]) -> None:
        """Fill the article list of an index built before it was kept (``rows`` as
        ``rag.ingest.index.articles_in_store`` lists them); the indexer's, under its lock. Rows the
        indexer already keeps stay as they are."""
        with self.engine.begin() as db:
            if rows:
                db.execute(text(f"INSERT INTO {self.t}_articles (doc_id, title, date, source, indexed_at, chunks) "
                                f"VALUES (:doc_id, :title, :date, :source, :indexed_at, :chunks) "
                                f"ON CONFLICT (doc_id) DO NOTHING"),
                           [{**row, **_article_row(row)} for row in rows])
            self._mark_articles_complete(db)

    def chunk_id_pages(self, page: int = 5000) -> Iterator[list[str]]:
        """Every chunk's id, ``page`` at a time in id order (each page from the primary key, where
        an OFFSET would re-read every row before it)."""
        after = ""
        while True:
            with self.engine.connect() as db:
                ids = [row[0] for row in db.execute(text(f"SELECT chunk_id FROM {self.t}_chunks WHERE chunk_id > :after "
                                                         f"ORDER BY chunk_id LIMIT :page"), {"after": after, "page": page})]
            if ids:
                yield ids
            if len(ids) < page:
                return
            after = ids[-1]

    def articles_complete(self) -> bool:
        with self.engine.connect() as db:
            return db.execute(text("SELECT 1 FROM schema_migrations WHERE store = :s"),
                              {"s": f"articles/{self.t}"}).first() is not None

    def articles(self) -> list[dict] | None:
        """One row per indexed article (doc_id, title, date, source, chunks, indexed_at) by doc_id;
        None while the list of an older index has not been filled (``fill_articles``)."""
        if not self.articles_complete():
            return None
        with self.engine.connect() as db:
            rows = db.execute(text(f"SELECT doc_id, title, date, source, chunks, indexed_at FROM {self.t}_articles "
                                   f"ORDER BY doc_id"))
            return [dict(row._mapping) for row in rows]

    # --- the readers' side --------------------------------------------------------------------

    def _statistics(self) -> tuple[int, float]:
        """(chunks, mean words per chunk), counted at most every 5 s."""
        when, count, mean = self._count
        if time.monotonic() - when > 5.0:
            with self.engine.connect() as db:
                count, mean = db.execute(text(self._STATISTICS.format(t=self.t))).one()
            count, mean = int(count or 0), float(mean or 0.0)
            self._count = (time.monotonic(), count, mean)
        return count, mean

    def size(self) -> int:
        return self._statistics()[0]

    def _frequencies(self, db: Connection, words: list[str]) -> dict[str, tuple[str, int]]:
        """word → (its term in the index, in how many chunks the term occurs)."""
        raise NotImplementedError

    def search_terms(self, db: Connection, query: str) -> dict[str, tuple[str, int]]:
        """What a question searches for: ``{word: (its term, in how many chunks the term occurs)}``
        for the question's informative words that occur in the index (in a large index, only its
        rarest few)."""
        words = question_words(query)
        if not words:
            return {}
        found = {w: (term, df) for w, (term, df) in self._frequencies(db, words).items() if df > 0}
        if (size := self.size()) >= LARGE:
            found = dict(sorted(((w, td) for w, td in found.items() if td[1] <= MAX_DF * size),
                                key=lambda item: item[1][1])[:MAX_TERMS])
        return found

    def search(self, query: str, k: int, *, doc_ids: tuple[str, ...] = (), date_from: int = 0,
               date_to: int = 0) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best ``k`` chunks, best first; filters apply inside SQL."""
        with self.engine.connect() as db:
            terms = self.search_terms(db, query)
            if not terms:
                return []
            conditions, params = _filter_sql(doc_ids, date_from, date_to)
            return self._ranked(db, terms, k, conditions, params)

    def _ranked(self, db: Connection, terms: dict[str, tuple[str, int]], k: int, conditions: list[str],
                params: dict) -> list[tuple[str, float]]:
        raise NotImplementedError

    def count_matching(self, cap: int, *, doc_ids: tuple[str, ...] = (), date_from: int = 0, date_to: int = 0) -> int:
        """How many chunks a filter allows, counted up to ``cap`` (an index-only count: no ids travel)."""
        conditions, params = _filter_sql(doc_ids, date_from, date_to)
        sql = (f"SELECT count(*) FROM (SELECT 1 FROM {self.t}_chunks AS c WHERE {' AND '.join(conditions) or '1=1'} "
               f"LIMIT :cap) AS allowed")
        with self.engine.connect() as db:
            return int(db.execute(text(sql), {**params, "cap": cap}).scalar() or 0)

    def matching_ids(self, limit: int, *, doc_ids: tuple[str, ...] = (), date_from: int = 0,
                     date_to: int = 0) -> list[str]:
        """Ids of the chunks a filter allows (at most ``limit``), from the indexed columns."""
        conditions, params = _filter_sql(doc_ids, date_from, date_to)
        sql = f"SELECT chunk_id FROM {self.t}_chunks AS c WHERE {' AND '.join(conditions) or '1=1'} LIMIT :limit"
        with self.engine.connect() as db:
            return [row[0] for row in db.execute(text(sql), {**params, "limit": limit})]

    def allowed(self, chunk_ids: list[str], *, doc_ids: tuple[str, ...] = (), date_from: int = 0,
                date_to: int = 0) -> set[str]:
        """Which of ``chunk_ids`` a filter allows."""
        conditions, params = _filter_sql(doc_ids, date_from, date_to)
        marks = ", ".join(f":c{i}" for i in range(len(chunk_ids)))
        sql = f"SELECT chunk_id FROM {self.t}_chunks AS c WHERE {' AND '.join([f'c.chunk_id IN ({marks})', *conditions])}"
        with self.engine.connect() as db:
            return {row[0] for row in db.execute(text(sql), {**params, **{f"c{i}": c for i, c in enumerate(chunk_ids)}})}

    def undated_articles(self, doc_ids: tuple[str, ...] = ()) -> int:
        """How many articles (of ``doc_ids``, or all) have no date: what a date filter leaves out unseen."""
        conditions, params = _filter_sql(doc_ids, 0, 0)
        sql = f"SELECT COUNT(DISTINCT doc_id) FROM {self.t}_chunks AS c WHERE {' AND '.join(['c.date_num = 0', *conditions])}"
        with self.engine.connect() as db:
            return int(db.execute(text(sql), params).scalar() or 0)


class SqliteLexicalIndex(LexicalIndex):
    """FTS5: its index, its vocabulary table and its BM25 (``rank``)."""

    _INSERT = ("INSERT OR IGNORE INTO {t}_chunks (chunk_id, doc_id, date_num, body) "
               "VALUES (:chunk_id, :doc_id, :date_num, :body)")  # FTS5 keeps chunk lengths itself

    def _ensure_tables(self) -> None:
        t = self.t
        with self.engine.begin() as db:
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {t}_chunks (rowid INTEGER PRIMARY KEY, "
                            f"chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, date_num INTEGER NOT NULL DEFAULT 0, "
                            f"body TEXT NOT NULL)"))
            db.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_doc ON {t}_chunks (doc_id)"))
            db.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_date ON {t}_chunks (date_num)"))
            db.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_fts USING fts5(body, content='{t}_chunks', "
                            f"content_rowid='rowid', tokenize='porter unicode61')"))
            db.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {t}_vocab USING fts5vocab('{t}_fts', 'row')"))
            db.execute(text(f"CREATE TRIGGER IF NOT EXISTS {t}_added AFTER INSERT ON {t}_chunks BEGIN "
                            f"INSERT INTO {t}_fts (rowid, body) VALUES (new.rowid, new.body); END"))
            db.execute(text(f"CREATE TRIGGER IF NOT EXISTS {t}_removed AFTER DELETE ON {t}_chunks BEGIN "
                            f"INSERT INTO {t}_fts ({t}_fts, rowid, body) VALUES ('delete', old.rowid, old.body); END"))

    def _frequencies(self, db: Connection, words: list[str]) -> dict[str, tuple[str, int]]:
        stems = dict(zip(words, _PORTER.stemWords(words), strict=True))
        frequency = dict(db.execute(
            text(f"SELECT term, doc FROM {self.t}_vocab WHERE term IN ({', '.join(f':w{i}' for i in range(len(stems)))})"),
            {f"w{i}": stem for i, stem in enumerate(stems.values())}).fetchall())
        return {w: (stem, frequency.get(stem, 0)) for w, stem in stems.items()}

    def _ranked(self, db, terms, k, conditions, params):
        expression = " OR ".join(f'"{word}"' for word in terms)  # FTS5 stems the words itself
        # FTS5's ``rank`` is its BM25 score, computed once per row (bm25() in SELECT and ORDER BY twice).
        sql = (f"SELECT c.chunk_id, -{self.t}_fts.rank FROM {self.t}_fts "
               f"JOIN {self.t}_chunks AS c ON c.rowid = {self.t}_fts.rowid "
               f"WHERE {' AND '.join([f'{self.t}_fts MATCH :q', *conditions])} ORDER BY {self.t}_fts.rank LIMIT :k")
        return [(row[0], float(row[1])) for row in db.execute(text(sql), {**params, "q": expression, "k": k})]


class PostgresLexicalIndex(LexicalIndex):
    """Postings kept beside the chunks by triggers; BM25 summed over them (see the module's docstring)."""

    _INSERT = ("INSERT INTO {t}_chunks (chunk_id, doc_id, date_num, body, words) "
               "VALUES (:chunk_id, :doc_id, :date_num, :body, :words) ON CONFLICT (chunk_id) DO NOTHING")
    _STATISTICS = "SELECT chunks, words::float8 / greatest(chunks, 1) FROM {t}_totals"

    def _ensure_tables(self) -> None:
        t = self.t
        with self.engine.begin() as db:
            db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("rag-migrations")})
            # Like FTS5's porter tokenizer, index every word, stemmed (Snowball's English stemmer with
            # no stop list): questions drop the same stop words on both engines, and a chunk's length
            # counts all its words, as FTS5's BM25 does.
            if not db.execute(text("SELECT 1 FROM pg_ts_config WHERE cfgname = :c"), {"c": CONFIG}).first():
                db.execute(text(f"CREATE TEXT SEARCH DICTIONARY {CONFIG}_stem (TEMPLATE = snowball, Language = english)"))
                db.execute(text(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = english)"))
                db.execute(text(f"ALTER TEXT SEARCH CONFIGURATION {CONFIG} ALTER MAPPING FOR asciiword, word, "
                                f"numword, asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart "
                                f"WITH {CONFIG}_stem"))
            new = {name for name in ("postings", "totals")
                   if db.execute(text("SELECT to_regclass(:n)"), {"n": f"{t}_{name}"}).scalar() is None}
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {t}_chunks (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, "
                            f"date_num INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL, words INTEGER NOT NULL, "
                            f"tsv tsvector GENERATED ALWAYS AS (to_tsvector('{CONFIG}', body)) STORED)"))
            # A small number for each chunk, so that postings stay narrow (indexes of the first
            # release, searched through a GIN index over tsv, gain it here; the GIN index goes).
            # Looked up first: ALTER TABLE would lock out readers even when it has nothing to do.
            if not db.execute(text("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                                   "AND table_name = :t AND column_name = 'id'"), {"t": f"{t}_chunks"}).first():
                db.execute(text(f"ALTER TABLE {t}_chunks ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY"))
            db.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_id ON {t}_chunks (id)"))
            db.execute(text(f"DROP INDEX IF EXISTS {t}_tsv"))
            db.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_doc ON {t}_chunks (doc_id)"))
            db.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_date ON {t}_chunks (date_num)"))
            # One row per (lexeme, chunk): its frequency there and the chunk's length, so a question's
            # BM25 is an index-only scan of its lexemes' postings — no chunk row is read to rank.
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {t}_postings (chunk BIGINT NOT NULL, term TEXT NOT NULL, "
                            f"tf INTEGER NOT NULL, words INTEGER NOT NULL, PRIMARY KEY (chunk, term))"))
            db.execute(text(f"CREATE INDEX IF NOT EXISTS {t}_postings_term ON {t}_postings (term) INCLUDE (chunk, tf, words)"))
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {t}_terms (term TEXT PRIMARY KEY, df INTEGER NOT NULL)"))
            db.execute(text(f"CREATE TABLE IF NOT EXISTS {t}_totals (chunks BIGINT NOT NULL, words BIGINT NOT NULL)"))
            if new:  # tables added to an existing index: filled once, with writers held off until this commits
                db.execute(text(f"LOCK TABLE {t}_chunks IN SHARE ROW EXCLUSIVE MODE"))
            if "postings" in new:
                db.execute(text(f"INSERT INTO {t}_postings (chunk, term, tf, words) SELECT c.id, u.lexeme, "
                                f"cardinality(u.positions), c.words FROM {t}_chunks AS c, unnest(c.tsv) AS u"))
            if "totals" in new:
                db.execute(text(f"INSERT INTO {t}_totals SELECT count(*), coalesce(sum(words), 0) FROM {t}_chunks"))
            # Postings, document frequencies and totals follow every insert and delete, once per
            # statement (a batch of chunks), from the statement's transition table.
            db.execute(text(f"""CREATE OR REPLACE FUNCTION {t}_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO {t}_postings (chunk, term, tf, words)
                        SELECT added.id, u.lexeme, cardinality(u.positions), added.words FROM added, unnest(added.tsv) AS u;
                    INSERT INTO {t}_terms (term, df)
                        SELECT u.lexeme, count(*) FROM added, unnest(added.tsv) AS u GROUP BY u.lexeme
                        ON CONFLICT (term) DO UPDATE SET df = {t}_terms.df + EXCLUDED.df;
                    UPDATE {t}_totals SET chunks = {t}_totals.chunks + n, words = {t}_totals.words + w
                        FROM (SELECT count(*) AS n, coalesce(sum(added.words), 0) AS w FROM added) AS batch;
                    RETURN NULL;
                END $$"""))
            db.execute(text(f"""CREATE OR REPLACE FUNCTION {t}_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    DELETE FROM {t}_postings AS p USING removed WHERE p.chunk = removed.id;
                    UPDATE {t}_terms SET df = {t}_terms.df - gone.n
                        FROM (SELECT u.lexeme, count(*) AS n FROM removed, unnest(removed.tsv) AS u GROUP BY u.lexeme) AS gone
                        WHERE {t}_terms.term = gone.lexeme;
                    DELETE FROM {t}_terms WHERE df <= 0;
                    UPDATE {t}_totals SET chunks = {t}_totals.chunks - n, words = {t}_totals.words - w
                        FROM (SELECT count(*) AS n, coalesce(sum(removed.words), 0) AS w FROM removed) AS batch;
                    RETURN NULL;
                END $$"""))
            db.execute(text(f"CREATE OR REPLACE TRIGGER {t}_added AFTER INSERT ON {t}_chunks REFERENCING NEW TABLE AS added "
                            f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_count_added()"))
            db.execute(text(f"CREATE OR REPLACE TRIGGER {t}_removed AFTER DELETE ON {t}_chunks REFERENCING OLD TABLE AS removed "
                            f"FOR EACH STATEMENT EXECUTE FUNCTION {t}_count_removed()"))

    def add(self, ids: list[str], texts: list[str], metadatas: list[dict], fence=None) -> None:
        # PostgreSQL text cannot hold NUL characters (SQLite can); the chunk's words are the same without them.
        super().add(ids, [t.replace("\x00", " ") for t in texts], metadatas, fence)

    def delete(self, ids: list[str]) -> None:
        with self.engine.begin() as db:  # one statement: the frequency trigger runs once
            touched = [row[0] for row in db.execute(text(f"DELETE FROM {self.t}_chunks WHERE chunk_id = ANY(:ids) "
                                                         f"RETURNING doc_id"), {"ids": list(ids)})]
            self._recount(db, sorted(set(touched)))

    def delete_articles(self, doc_ids: list[str]) -> None:
        with self.engine.begin() as db:
            db.execute(text(f"DELETE FROM {self.t}_chunks WHERE doc_id = ANY(:ids)"), {"ids": list(doc_ids)})
            db.execute(text(f"DELETE FROM {self.t}_articles WHERE doc_id = ANY(:ids)"), {"ids": list(doc_ids)})

    def _frequencies(self, db: Connection, words: list[str]) -> dict[str, tuple[str, int]]:
        # The index's own parser and stemmer turn each word into its lexeme (a stop word into none).
        rows = db.execute(text(f"SELECT w, u.lexeme, coalesce(t.df, 0) FROM unnest(CAST(:words AS text[])) AS w "
                               f"CROSS JOIN LATERAL unnest(to_tsvector('{CONFIG}', w)) AS u "
                               f"LEFT JOIN {self.t}_terms AS t ON t.term = u.lexeme"), {"words": words})
        return {word: (lexeme, int(df)) for word, lexeme, df in rows}

    def _ranked(self, db, terms, k, conditions, params):
        size, mean_words = self._statistics()
        frequency = dict(terms.values())  # lexeme -> document frequency ("model" and "models" share one)
        # The size is cached for a few seconds, the frequencies are fresh: right after a large batch a
        # term may be in more chunks than the cached size counts. Never a log of a negative number.
        size = max([size, *frequency.values()])
        idf = [max(1e-6, math.log((size - df + 0.5) / (df + 0.5))) for df in frequency.values()]  # FTS5's IDF
        values = {**params, "lexemes": list(frequency), "idf": idf, "mean_words": max(mean_words, 1.0), "k": k}
        if conditions and not any(condition.startswith("c.doc_id") for condition in conditions):
            # A date filter usually allows a large share of the chunks: rank without it (postings
            # only), keep the allowed among the best POST_FILTER × k. If k of them are allowed, they
            # are exactly the filtered top k (a filter does not change a chunk's score); else the
            # filtered ranking below, which joins every posting to its chunk row.
            rows = db.execute(text(self._ranking_sql(f"LIMIT {POST_FILTER} * :k", conditions)), values).fetchall()
            if len(rows) >= k:
                return [(row[0], float(row[1])) for row in rows[:k]]
        # Filters need the chunk's row; an unfiltered question reads postings only, then names the best k.
        allowed = f"JOIN {self.t}_chunks AS c ON c.id = p.chunk WHERE {' AND '.join(conditions)} " if conditions else ""
        rows = db.execute(text(self._ranking_sql("LIMIT :k", [], allowed)), values)
        return [(row[0], float(row[1])) for row in rows]

    def _ranking_sql(self, limit: str, after: list[str], allowed: str = "") -> str:
        """BM25 summed over the question's postings (``allowed``: a join that filters them first), the
        best chunks by ``limit``, named — and filtered by ``after`` — from their chunk rows."""
        where = f"WHERE {' AND '.join(after)} " if after else ""
        return (f"WITH q AS (SELECT * FROM unnest(CAST(:lexemes AS text[]), CAST(:idf AS float8[])) AS q(term, idf)), "
                f"best AS (SELECT p.chunk, sum(q.idf * p.tf * {K1 + 1} / "
                f"(p.tf + {K1} * (1 - {B} + {B} * p.words / :mean_words))) AS score "
                f"FROM q JOIN {self.t}_postings AS p ON p.term = q.term {allowed}"
                f"GROUP BY p.chunk ORDER BY score DESC, p.chunk {limit}) "
                f"SELECT c.chunk_id, best.score FROM best JOIN {self.t}_chunks AS c ON c.id = best.chunk {where}"
                f"ORDER BY best.score DESC, best.chunk LIMIT :k")


def _article_row(metadata: dict) -> dict:
    # PostgreSQL text cannot hold NUL characters.
    return {key: str(metadata.get(key) or "").replace("\x00", " ")
            for key in ("doc_id", "title", "date", "source", "indexed_at")}


def _article_rows(metadatas: list[dict]) -> list[dict]:
    """A batch's articles, each with its chunks' newest indexing time."""
    rows: dict[str, dict] = {}
    for metadata in metadatas:
        row = _article_row(metadata)
        if row["doc_id"]:
            newest = max(row["indexed_at"], rows.get(row["doc_id"], row)["indexed_at"])
            rows[row["doc_id"]] = {**row, "indexed_at": newest}
    return list(rows.values())


def _filter_sql(doc_ids: tuple[str, ...], date_from: int, date_to: int) -> tuple[list[str], dict]:
    conditions, params = [], {}
    if doc_ids:
        conditions.append(f"c.doc_id IN ({', '.join(f':d{i}' for i in range(len(doc_ids)))})")
        params.update({f"d{i}": d for i, d in enumerate(doc_ids)})
    if date_from:
        conditions.append("c.date_num >= :date_from")
        params["date_from"] = date_from
    if date_to:
        conditions.append("c.date_num <= :date_to")
        params["date_to"] = date_to
    return conditions, params


class NoLexicalIndex:
    """Stands in when the record database is neither SQLite nor PostgreSQL: writes are no-ops (dense retrieval works
    as ever) and a lexical search says what to change."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def add(self, ids, texts, metadatas, fence=None) -> None:
        pass

    def delete(self, ids) -> None:
        pass

    def delete_articles(self, doc_ids) -> None:
        pass

    def undated_articles(self, doc_ids: tuple[str, ...] = ()) -> None:
        return None  # unknown without the lexical table

    def keep_only(self, doc_id, chunk_ids) -> int:
        return 0

    def clear(self) -> None:
        pass

    def fill_articles(self, rows) -> None:
        pass

    def articles_complete(self) -> bool:
        return False

    def chunk_id_pages(self, page: int = 5000) -> Iterator[list[str]]:
        return iter(())

    def articles(self) -> None:
        return None  # listed from Chroma's metadata

    def size(self) -> int:
        return 0

    def search(self, *args, **kwargs):
        raise LexicalIndexError(self.reason)

    matching_ids = allowed = count_matching = search


def open_lexical_index(engine: Engine, namespace: str) -> LexicalIndex | NoLexicalIndex:
    """The lexical index of ``namespace`` in the record database: FTS5 on SQLite, full-text search
    on PostgreSQL; on any other engine, none (dense retrieval only)."""
    kinds = {"sqlite": SqliteLexicalIndex, "postgresql": PostgresLexicalIndex}
    if (kind := kinds.get(engine.dialect.name)) is None:
        return NoLexicalIndex(
            f"hybrid and bm25 retrieval keep their index in the record database, which must be SQLite or "
            f"PostgreSQL (RAG_RECORD_DB_URL is {engine.dialect.name}). Use RAG_RETRIEVAL_MODE=dense with it")
    return kind(engine, namespace)
