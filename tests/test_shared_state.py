"""Shared state on a real PostgreSQL (rag.db): the same schema as SQLite from one definition, the
lexical index ranked like FTS5, feedback/history/counters seen by every process, and the indexer
lock across data dirs. The whole product on two machines is tests/test_several_machines.py."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect, text

from rag.db import engine_for, migrate
from rag.ingest import lexical as lexical_module
from rag.ingest.lexical import PostgresLexicalIndex, SqliteLexicalIndex, open_lexical_index
from rag.schema import Answer, Passage
from rag.settings import Settings

from .conftest import REPO, sqlite_at


def _chunks():
    """The shipped article and the laws corpus's first files, cut at blank lines: real prose, ~hundreds of chunks."""
    from rag.ingest.load import load_paths

    articles = load_paths([REPO / "corpus"]).articles
    ids, texts, metas = [], [], []
    for article in articles:
        for i, block in enumerate(b for b in article.text.split("\n\n") if b.strip()):
            ids.append(f"{article.doc_id}-{i}")
            texts.append(block)
            metas.append({"doc_id": f"{article.doc_id}-part{i % 4}", "date_num": 0 if i % 5 == 0 else 20250101 + i % 3})
    return ids, texts, metas


def test_every_store_gets_the_same_tables_on_both_engines_and_migrating_twice_changes_nothing(postgres, tmp_path):
    from rag.ingest.index import RECORD_MIGRATIONS
    from rag.quality.runs import MIGRATIONS as RUNS
    from rag.web.feedback import MIGRATIONS as FEEDBACK
    from rag.web.limits import MIGRATIONS as LIMITS

    engines = {"sqlite": sqlite_at(tmp_path / "all.sqlite"), "postgresql": engine_for(postgres.new_database("schema"))}
    columns = {}
    for name, engine in engines.items():
        for store, steps in (("records", RECORD_MIGRATIONS), ("feedback", FEEDBACK), ("runs", RUNS), ("limits", LIMITS)):
            migrate(engine, store, steps)
            migrate(engine, store, steps)  # a second process starting: nothing to do
        schema = inspect(engine)
        columns[name] = {t: sorted(c["name"] for c in schema.get_columns(t)) for t in schema.get_table_names()}
        with engine.connect() as db:
            applied = db.execute(text("SELECT store, count(*) FROM schema_migrations GROUP BY store ORDER BY store")).all()
        assert [tuple(r) for r in applied] == [("feedback", len(FEEDBACK)), ("limits", len(LIMITS)),
                                               ("records", len(RECORD_MIGRATIONS)), ("runs", len(RUNS))]
    assert columns["sqlite"] == columns["postgresql"]
    assert {"feedback", "unanswered", "runs", "results", "upsertion_record", "article_fingerprints", "feed_entries",
            "checked_sources", "article_files", "login_failures", "limited_actions"} <= set(columns["sqlite"])


def test_files_written_before_schema_migrations_are_upgraded_in_place(tmp_path):
    """app.sqlite/eval.sqlite of earlier versions numbered their migrations in a `migrations` table."""
    from rag.quality.runs import RunStore
    from rag.web.feedback import FeedbackStore, UnansweredLog

    with sqlite3.connect(tmp_path / "app.sqlite") as db:
        db.execute("CREATE TABLE migrations (number INTEGER PRIMARY KEY, applied_at TEXT)")
        db.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, question TEXT "
                   "NOT NULL, answer TEXT NOT NULL, refused INTEGER NOT NULL, citations TEXT NOT NULL, settings TEXT NOT "
                   "NULL, timings TEXT NOT NULL, llm TEXT NOT NULL, rating INTEGER, comment TEXT NOT NULL DEFAULT '', "
                   "reviewed INTEGER NOT NULL DEFAULT 0)")
        db.execute("ALTER TABLE feedback ADD COLUMN answer_id TEXT")
        db.execute("CREATE UNIQUE INDEX feedback_answer ON feedback (answer_id)")
        db.executemany("INSERT INTO migrations VALUES (?, 'then')", [(1,), (2,), (3,)])
        db.execute("INSERT INTO feedback (created_at, question, answer, refused, citations, settings, timings, llm, "
                   "rating, answer_id) VALUES ('then', 'old question?', 'old answer', 0, '[]', '{}', '{}', 'x', -1, 'a1')")
    with sqlite3.connect(tmp_path / "eval.sqlite") as db:
        db.execute("CREATE TABLE migrations (number INTEGER PRIMARY KEY, applied_at TEXT)")
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, question_set TEXT "
                   "NOT NULL, settings TEXT NOT NULL, code_version TEXT NOT NULL, summary TEXT NOT NULL)")
        db.execute("CREATE TABLE results (run_id INTEGER NOT NULL REFERENCES runs(id), question_id TEXT NOT NULL, "
                   "result TEXT NOT NULL, PRIMARY KEY (run_id, question_id))")
        db.executemany("INSERT INTO migrations VALUES (?, 'then')", [(1,), (2,)])
        db.execute("INSERT INTO runs VALUES (1, 'then', 'seed.jsonl', '{}', 'abc', '{}')")
        db.executemany("INSERT INTO results VALUES (1, ?, ?)", [("q9", '{"id": "q9"}'), ("q1", '{"id": "q1"}')])

    feedback = FeedbackStore(sqlite_at(tmp_path / "app.sqlite"))
    [old] = feedback.rows()
    assert old["question"] == "old question?" and old["rating"] == -1
    UnansweredLog(feedback.engine, days=90).record(Answer(question="Is it there?", answer="", refused=True,
                                                          citations=[], contexts=[], timings={}, llm="x",
                                                          refusal_kind="nothing_similar"))
    assert [r["question"] for r in UnansweredLog(feedback.engine, days=90).rows()] == ["Is it there?"]
    _, results = RunStore(sqlite_at(tmp_path / "eval.sqlite")).load(1)
    assert [r["id"] for r in results] == ["q9", "q1"], "results keep the order they were written in"
    with sqlite3.connect(tmp_path / "app.sqlite") as db:
        assert not db.execute("SELECT name FROM sqlite_master WHERE name = 'migrations'").fetchall()


def test_postgres_full_text_search_ranks_like_fts5_and_filters_the_same(postgres, tmp_path, monkeypatch):
    ids, texts, metas = _chunks()
    pg = open_lexical_index(engine_for(postgres.new_database("lexical")), "chroma/articles")
    fts5 = open_lexical_index(sqlite_at(tmp_path / "records.sqlite"), "chroma/articles")
    assert isinstance(pg, PostgresLexicalIndex) and isinstance(fts5, SqliteLexicalIndex)
    for index in (pg, fts5):
        index.add(ids, texts, metas)
        index.add(ids[:10], texts[:10], metas[:10])  # already there: left as is
    assert pg.size() == fts5.size() == len(ids)

    questions = ["Which Chinese model has comparable exploitation capabilities?", "export controls on chips",
                 "What did the Commerce Department decide about model weights?", "vulnerability discovery"]
    for question in questions:
        a, b = pg.search(question, 10), fts5.search(question, 10)
        assert a and b, question
        assert a[0][0] in [c for c, _ in b[:3]], question  # stemmers and stop lists differ a little
        assert len({c for c, _ in a} & {c for c, _ in b}) >= 0.7 * max(len(a), len(b)), question
        assert all(x[1] >= y[1] for x, y in zip(a, a[1:], strict=False)), "best first"
    assert pg.search("the of and", 10) == [] and pg.search("zzyzx", 10) == []

    filters = [{"doc_ids": (metas[3]["doc_id"],)}, {"date_from": 20250102}, {"date_to": 20250101, "doc_ids":
               (metas[0]["doc_id"], metas[1]["doc_id"])}]
    for f in filters:
        assert sorted(pg.matching_ids(10_000, **f)) == sorted(fts5.matching_ids(10_000, **f)), f
        assert pg.allowed(ids[:50], **f) == fts5.allowed(ids[:50], **f), f
        assert {c for c, _ in pg.search("export controls", 50, **f)} == {c for c, _ in fts5.search("export controls", 50, **f)}
    assert pg.undated_articles() == fts5.undated_articles() > 0

    # The "rarest words" rule of large collections picks the same words on both engines.
    monkeypatch.setattr(lexical_module, "LARGE", 1)
    monkeypatch.setattr(lexical_module, "MAX_TERMS", 3)
    for question in questions:
        with pg.engine.connect() as a, fts5.engine.connect() as b:
            assert set(pg.search_terms(a, question)) == set(fts5.search_terms(b, question)), question

    # Postings, document frequencies and totals follow deletions: each equals a recount from the chunks.
    pg.delete(ids[::3])
    pg.delete_articles([metas[1]["doc_id"]])
    assert_statistics_recount(pg)
    pg.clear()
    with pg.engine.connect() as db:
        assert [db.execute(text(f"SELECT count(*) FROM {pg.t}_{name}")).scalar() for name in ("terms", "postings")] == [0, 0]
        assert db.execute(text(f"SELECT chunks, words FROM {pg.t}_totals")).one() == (0, 0)


def assert_statistics_recount(pg: PostgresLexicalIndex) -> None:
    t = pg.t
    with pg.engine.connect() as db:
        differing = db.execute(text(
            f"SELECT count(*) FROM (SELECT u.lexeme, count(*) AS n FROM {t}_chunks AS c, unnest(c.tsv) AS u "
            f"GROUP BY u.lexeme) AS counted FULL JOIN {t}_terms AS t ON t.term = counted.lexeme "
            f"WHERE t.df IS DISTINCT FROM counted.n")).scalar()
        postings = db.execute(text(
            f"SELECT count(*) FROM (SELECT c.id, u.lexeme, cardinality(u.positions) AS tf, c.words "
            f"FROM {t}_chunks AS c, unnest(c.tsv) AS u) AS counted FULL JOIN {t}_postings AS p "
            f"ON p.chunk = counted.id AND p.term = counted.lexeme "
            f"WHERE (p.tf, p.words) IS DISTINCT FROM (counted.tf, counted.words)")).scalar()
        totals = db.execute(text(f"SELECT (SELECT (chunks, words) FROM {t}_totals) = "
                                 f"(SELECT (count(*), coalesce(sum(words), 0)) FROM {t}_chunks)")).scalar()
    assert (differing, postings, totals) == (0, 0, True)


def test_any_valid_collection_name_opens_its_own_postgres_word_index_again_and_again(postgres, tmp_path):
    """Issue 31 item 6: upper case, 50 characters, and names that differ only by '-' and '_'."""
    from rag.ingest.index import indexer_lock
    from rag.settings import Settings

    ids, texts, metas = _chunks()
    url = postgres.new_database("names")
    names = ["Articles", "a" * 25 + "-Policy-Collection-Of-The-Year", "a-b", "a_b", "articles"]
    for name in names:
        for _ in range(2):  # the second open found the first's tables (it failed: DuplicateColumn)
            index = open_lexical_index(engine_for(url), f"chroma/{name}")
        index.add(ids[:5], texts[:5], metas[:5])
    assert open_lexical_index(engine_for(url), "chroma/articles").t == "lexical_chroma_articles"  # as always
    tables = {open_lexical_index(engine_for(url), f"chroma/{name}").t for name in names}
    assert len(tables) == len(names) and all(len(t) + len("_postings_term") <= 63 for t in tables)
    assert all(open_lexical_index(engine_for(url), f"chroma/{n}").size() == 5 for n in names)
    # The indexer lock follows the same name: a-b and a_b index side by side, one name never twice.
    settings = {n: Settings(data_dir=tmp_path / n, RAG_RECORD_DB_URL=url, collection=n, _env_file=None)
                for n in ("a-b", "a_b")}
    with indexer_lock(settings["a-b"], wait=False), indexer_lock(settings["a_b"], wait=False), \
            pytest.raises(Exception, match="another indexer"), indexer_lock(settings["a-b"], wait=False):
        pass
    with pytest.raises(ValueError, match="collection"):
        Settings(collection="bad name!", _env_file=None)


def test_a_question_right_after_a_large_batch_never_crashes_on_the_stale_cached_size(postgres):
    """Issue 33 item 5(a): the collection size is cached for 5 s, document frequencies are fresh;
    a term in more chunks than the cached size counted gave `math domain error`."""
    ids, texts, metas = _chunks()
    index = open_lexical_index(engine_for(postgres.new_database("stale")), "chroma/articles")
    index.add(ids[:3], texts[:3], metas[:3])
    assert index.search("export controls", 5) is not None  # caches the size: 3 chunks
    index.add(ids, texts, metas)  # a large batch lands within the 5 seconds
    assert index.search("export controls", 5)  # fresh frequencies beyond the cached size: no crash


def test_a_reader_opens_the_word_index_at_once_while_an_indexer_holds_a_batch_open(postgres):
    """Issue 33 item 5(b): opening an index whose schema is current ran CREATE INDEX IF NOT EXISTS and
    CREATE OR REPLACE TRIGGER, whose table locks queue behind an indexer's open batch (until
    lock_timeout: 5 s, then an error). Now a current schema is read, not re-made."""
    import threading

    ids, texts, metas = _chunks()
    engine = engine_for(postgres.new_database("ddl_wait"))
    open_lexical_index(engine, "chroma/articles").add(ids[:3], texts[:3], metas[:3])
    batch_open, release = threading.Event(), threading.Event()

    def indexer() -> None:  # a batch written, its transaction not yet committed
        with engine.begin() as db:
            db.execute(text(PostgresLexicalIndex._INSERT.format(t="lexical_chroma_articles")),
                       [{"chunk_id": i, "doc_id": m["doc_id"], "date_num": m["date_num"], "body": b, "words": 5}
                        for i, b, m in zip(ids[3:], texts[3:], metas[3:], strict=True)])
            batch_open.set()
            release.wait(30)

    writer = threading.Thread(target=indexer)
    writer.start()
    try:
        assert batch_open.wait(10)
        started = time.perf_counter()
        reader = open_lexical_index(engine, "chroma/articles")  # another connection of the pool
        opened_s = time.perf_counter() - started
        assert reader.search("export controls", 5), "it searches what is committed"
    finally:
        release.set()
        writer.join()
    assert opened_s < 1.0, f"the reader waited {opened_s:.1f} s for the indexer's batch"


def test_a_postgres_lexical_index_of_the_first_release_is_upgraded_in_place(postgres):
    """The first release searched a GIN index over tsv and kept no postings or totals: opening it
    adds them, filled from the chunks already there, and searches as a fresh index does."""
    ids, texts, metas = _chunks()
    url = postgres.new_database("first_release")
    fresh = open_lexical_index(engine_for(postgres.new_database("fresh")), "chroma/articles")
    fresh.add(ids, texts, metas)
    with engine_for(url).begin() as db:
        t = "lexical_chroma_articles"
        open_lexical_index(engine_for(url), "chroma/articles")  # today's tables, then made into the first release's
        db.execute(text(f"DROP TABLE {t}_postings, {t}_totals"))
        db.execute(text(f"DROP TRIGGER {t}_added ON {t}_chunks"))
        db.execute(text(f"ALTER TABLE {t}_chunks DROP COLUMN id"))
        db.execute(text(f"CREATE INDEX {t}_tsv ON {t}_chunks USING GIN (tsv)"))
        db.execute(text(f"INSERT INTO {t}_chunks (chunk_id, doc_id, date_num, body, words) "
                        f"SELECT * FROM unnest(CAST(:i AS text[]), CAST(:d AS text[]), CAST(:n AS int[]), "
                        f"CAST(:b AS text[]), CAST(:w AS int[]))"),
                   {"i": ids, "d": [m["doc_id"] for m in metas], "n": [m["date_num"] for m in metas], "b": texts,
                    "w": [len(lexical_module._WORD.findall(b)) for b in texts]})
        db.execute(text(f"DELETE FROM {t}_terms"))
        db.execute(text(f"INSERT INTO {t}_terms SELECT u.lexeme, count(*) FROM {t}_chunks, unnest(tsv) AS u GROUP BY 1"))
        db.execute(text("DELETE FROM schema_migrations WHERE store LIKE 'lexical/%'"))  # the first release kept none
    upgraded = open_lexical_index(engine_for(url), "chroma/articles")
    assert_statistics_recount(upgraded)
    with upgraded.engine.connect() as db:
        assert db.execute(text("SELECT to_regclass('lexical_chroma_articles_tsv')")).scalar() is None
    for question in ("export controls on chips", "vulnerability discovery"):
        assert upgraded.search(question, 10) == fresh.search(question, 10)
    upgraded.delete(ids[:5])
    assert_statistics_recount(upgraded)


def test_feedback_unanswered_questions_and_evaluation_runs_are_one_store_for_every_process(postgres):
    from rag.quality.evaluate import QuestionResult
    from rag.quality.runs import RunStore
    from rag.web.feedback import FeedbackStore, UnansweredLog

    url = postgres.new_database("state")
    one, other = FeedbackStore(engine_for(url)), FeedbackStore(engine_for(url + "?application_name=other"))
    passage = Passage(doc_id="a", title="A", chunk_id="a-1", text="text", source="s", date="")
    answer = Answer(question="Which model?", answer="Kimi [1]", refused=False, citations=[], contexts=[passage], timings={},
                    llm="x", id="x1")
    row_id = one.record(answer, rating=-1, comment="wrong year")
    assert other.row(row_id)["comment"] == "wrong year"
    assert other.record(answer, rating=1) == row_id, "rating an answer again replaces its rating"
    assert [(r["id"], r["rating"]) for r in one.rows()] == [(row_id, 1)]

    UnansweredLog(one.engine, days=90).record(Answer(question="mail ann@example.org: who?", answer="", refused=True,
                                                     citations=[], contexts=[passage], timings={}, llm="x",
                                                     refusal_kind="model_declined"))
    [kept] = UnansweredLog(other.engine, days=90).rows()
    assert kept["question"] == "mail [email]: who?" and kept["closest_doc"] == "a"

    results = [QuestionResult(id=f"q{n}", question="?", answerable=True, answer="", refused=False, evidence_rank=1,
                              correct=True)
               for n in (3, 1, 2)]
    run_id = RunStore(one.engine).save("seed.jsonl", {"llm": "x"}, {"correct": 1.0}, results)
    run, loaded = RunStore(other.engine).load(run_id)
    assert run["question_set"] == "seed.jsonl" and [r["id"] for r in loaded] == ["q3", "q1", "q2"]


def test_wrong_passwords_and_rate_limits_count_across_processes(postgres):
    from rag.web.limits import LimitExceeded, LoginThrottle, RateLimit, SharedCounts

    url = postgres.new_database("limits")
    now = [1000.0]
    first = LoginThrottle(free=3, base_s=60, clock=lambda: now[0], counts=SharedCounts(engine_for(url)))
    second = LoginThrottle(free=3, base_s=60, clock=lambda: now[0],
                           counts=SharedCounts(engine_for(url + "?application_name=second")))
    for throttle in (first, second, first):  # three wrong passwords, spread over two processes
        throttle.check("10.0.0.9")
        throttle.failed("10.0.0.9", "admin")
    with pytest.raises(LimitExceeded, match="too many wrong passwords"):
        second.check("10.0.0.9")
    second.check("10.0.0.10")  # another client is not affected
    now[0] += 61
    second.check("10.0.0.9")
    second.succeeded("10.0.0.9")
    first.check("10.0.0.9")

    ratings = [RateLimit(3, 600, "ratings", clock=lambda: now[0], counts=SharedCounts(engine_for(url))) for _ in range(2)]
    for limit in (ratings[0], ratings[1], ratings[0]):
        limit.take("10.0.0.9")
    with pytest.raises(LimitExceeded, match="too many ratings"):
        ratings[1].take("10.0.0.9")
    now[0] += 601
    ratings[1].take("10.0.0.9")


HOLD_THE_LOCK = """
import sys, time
from rag.ingest.index import indexer_lock
from rag.settings import Settings
with indexer_lock(Settings(data_dir=sys.argv[1], RAG_RECORD_DB_URL=sys.argv[2], _env_file=None), wait=False):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_one_indexer_at_a_time_across_data_dirs_and_a_killed_holder_frees_the_lock(postgres, tmp_path):
    from rag.ingest.index import IndexBusyError, indexer_lock

    url = postgres.new_database("lock")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path / "one"), url], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        other = Settings(data_dir=tmp_path / "two", RAG_RECORD_DB_URL=url, _env_file=None)
        with pytest.raises(IndexBusyError, match="another indexer is running"), indexer_lock(other, wait=False):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.time() + 10  # the server notices the dead connection
        while True:
            try:
                with indexer_lock(other, wait=False):
                    break
            except IndexBusyError:
                assert time.time() < deadline, "a killed indexer's lock was never released"
                time.sleep(0.2)
    finally:
        holder.kill()
    for folder in (tmp_path / "one", tmp_path / "two"):
        assert not folder.exists() or not any(folder.rglob("*")), "nothing written to the data dirs"


def test_an_indexer_that_loses_its_lock_to_a_database_restart_stops_between_batches(postgres, tmp_path, embedding_model):
    """A server restart (here: the lock's connection terminated, which is what a restart does to
    it) frees the advisory lock under a live indexer; it must stop rather than write beside the
    next indexer."""
    from rag.components import Components
    from rag.ingest.index import IndexLockLostError, index_articles, indexer_lock, open_record_manager
    from rag.ingest.load import load_paths
    from rag.quality.synthetic import StandInEmbeddings

    url = postgres.new_database("lost")
    settings = Settings(data_dir=tmp_path / "one", RAG_RECORD_DB_URL=url, _env_file=None)
    with indexer_lock(settings, wait=False) as still_locked:
        still_locked()  # held: passes
        with engine_for(url).connect() as db:
            killed = db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                     "AND pid <> pg_backend_pid()")).scalars().all()
        assert killed == [True]
        with pytest.raises(IndexLockLostError, match="run the same command again"):
            still_locked()
        other = Settings(data_dir=tmp_path / "two", RAG_RECORD_DB_URL=url, _env_file=None)
        with indexer_lock(other, wait=False):  # what the lost lock lets happen: why the indexer must stop
            pass

    # index_articles asks before every batch: a lock lost after the second batch leaves two batches written.
    checks = []

    def lost_after_two() -> None:
        checks.append(1)
        if len(checks) > 2:
            raise IndexLockLostError("lost")

    parts = Components(settings, embedding_model=embedding_model)
    articles = load_paths([REPO / "corpus"]).articles
    with pytest.raises(IndexLockLostError):
        index_articles(articles, store=parts.store(create=True), embeddings=StandInEmbeddings(),
                       record_manager=open_record_manager(settings), chunker=parts.chunker, batch_size=4,
                       still_locked=lost_after_two)
    assert len(checks) == 3 and parts.store()._collection.count() == 8


def test_an_indexer_whose_lock_was_taken_over_writes_nothing_more_even_before_it_asks(postgres, tmp_path,
                                                                                       embedding_model):
    """Issue 31 item 7: A holds the lock; A's lock session is killed and B takes the lock; A's next
    write — mid-batch, before A has asked again — is refused by the fencing token, in the write's
    own transaction, and nothing of it reaches the word index or Chroma."""
    from rag.components import Components
    from rag.ingest.index import IndexLockLostError, indexer_lock, lexical_index_of, open_record_manager
    from rag.ingest.store import writer_for
    from rag.quality.synthetic import StandInEmbeddings

    url = postgres.new_database("fence")
    one = Settings(data_dir=tmp_path / "one", RAG_RECORD_DB_URL=url, _env_file=None)
    parts = Components(one, embedding_model=embedding_model)
    store = parts.store(create=True)
    lexical = lexical_index_of(open_record_manager(one))
    with indexer_lock(one, wait=False) as lock_a:
        writer_a = writer_for(store, lexical, StandInEmbeddings(), fence=lock_a.fence)
        writer_a.add_texts(["first batch of A"], [{"doc_id": "a", "date_num": 0}], ids=["a-1"])
        with engine_for(url).connect() as db:
            db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND pid <> pg_backend_pid()"))
        other = Settings(data_dir=tmp_path / "two", RAG_RECORD_DB_URL=url, _env_file=None)
        with indexer_lock(other, wait=False), pytest.raises(IndexLockLostError):  # B holds the lock now
            writer_a.add_texts(["second batch of A"], [{"doc_id": "a", "date_num": 0}], ids=["a-2"])
    assert lexical.size() == 1 and store._collection.count() == 1 and store.get(ids=["a-2"])["ids"] == []


def test_a_server_database_holds_all_state_and_the_default_stays_sqlite(tmp_path):
    shared = Settings(data_dir=tmp_path, RAG_RECORD_DB_URL="postgresql://rag:pw@db.internal:5432/rag", _env_file=None)
    assert shared.shared_state and {shared.state_db_url(n) for n in ("records", "app", "eval")} == {shared.record_db_url}
    local = Settings(data_dir=tmp_path, _env_file=None)
    assert not local.shared_state
    assert local.state_db_url("app").endswith("/app.sqlite") and local.state_db_url("eval").endswith("/eval.sqlite")
    assert json.dumps(shared.public()).count("pw@") == 0


def test_the_app_says_clearly_when_its_state_database_is_down(tmp_path):
    from .test_web import free_port

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path), "RAG_LLM": "extractive", "RAG_PORT": str(free_port()),
           "RAG_RECORD_DB_URL": f"postgresql://rag:hunter2-secret@127.0.0.1:{free_port()}/rag"}
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "the state database at 127.0.0.1:" in done.stderr and "fix RAG_RECORD_DB_URL" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_date_filtered_postgres_search_ranked_unfiltered_first_equals_the_filtered_ranking(postgres, monkeypatch):
    """Issue 33 item 5(c): a date filter is applied to the best POST_FILTER × k chunks ranked without
    it when k of them pass — the same chunks and scores the filtered ranking gives — and falls back to
    the filtered ranking when too few pass."""
    ids, texts, metas = _chunks()
    index = open_lexical_index(engine_for(postgres.new_database("post_filter")), "chroma/articles")
    index.add(ids, texts, metas)
    cases = [(question, spec) for question in ("export controls on chips", "model capabilities", "the directive")
             for spec in ({"date_from": 20250102}, {"date_from": 20250103, "date_to": 20250103}, {"date_to": 20250101})]
    k = 2  # the shipped article's 20 chunks: k of them pass in six of these nine searches (the quick path)
    quick = [index.search(question, k, **spec) for question, spec in cases]
    assert sum(len(found) == k for found in quick) >= 3, "some searches take the quick path"
    monkeypatch.setattr(lexical_module, "POST_FILTER", 0)  # never enough: always the filtered ranking
    assert quick == [index.search(question, k, **spec) for question, spec in cases]
    with index.engine.connect() as db:
        for (question, spec), found in zip(cases, quick, strict=True):
            allowed = {row[0] for row in db.execute(text(
                "SELECT chunk_id FROM lexical_chroma_articles_chunks WHERE date_num >= :f AND date_num <= :t"),
                {"f": spec.get("date_from", 0), "t": spec.get("date_to", 99999999)})}  # as _filter_sql reads them
            assert {chunk for chunk, _ in found} <= allowed, (question, spec)


def test_the_article_list_follows_adds_deletes_and_removals_alike_on_both_engines(postgres, tmp_path):
    """The word index's article list (``<t>_articles``): each article's newest metadata and
    indexing time and its chunk count, kept in the chunks' own transactions on SQLite and PostgreSQL."""
    ids, texts, metas = _chunks()
    metas = [{**m, "title": f"Title of {m['doc_id']}\x00", "date": "2025-01-01", "source": "corpus/export.txt",
              "indexed_at": "2026-01-01T00:00:00+00:00"} for m in metas]
    first = metas[0]["doc_id"]
    newer = {**metas[0], "title": f"Title of {first}, revised", "indexed_at": "2026-02-01T00:00:00+00:00"}
    lists = {}
    for name, engine in (("sqlite", sqlite_at(tmp_path / "list.sqlite")), ("postgresql", engine_for(postgres.new_database("list")))):
        index = open_lexical_index(engine, "chroma/articles")
        assert index.articles() == []  # a new index's list is complete from the start
        index.add(ids, texts, metas)
        index.add(["extra-chunk"], ["A chunk added later to the first article."], [newer])
        index.delete(ids[:8])  # some chunks of several articles
        index.delete_articles([metas[-1]["doc_id"]])
        index.keep_only(metas[1]["doc_id"], set())  # every chunk of one article goes: so does its row
        lists[name] = index.articles()
    remaining = [(i, m) for i, m in zip(ids, metas, strict=True)
                 if i not in ids[:8] and m["doc_id"] not in (metas[-1]["doc_id"], metas[1]["doc_id"])]
    expected = {}
    for _i, m in remaining + [("extra-chunk", newer)]:
        row = expected.setdefault(m["doc_id"], {"doc_id": m["doc_id"], "title": f"Title of {m['doc_id']} ",
                                                "date": "2025-01-01", "source": "corpus/export.txt", "chunks": 0,
                                                "indexed_at": "2026-01-01T00:00:00+00:00"})
        row["chunks"] += 1
    expected[first].update(title=newer["title"], indexed_at=newer["indexed_at"])
    assert lists["sqlite"] == lists["postgresql"] == sorted(expected.values(), key=lambda r: r["doc_id"])
