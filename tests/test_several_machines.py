"""Several machines: processes with their own data dirs that share only a real PostgreSQL server
(RAG_RECORD_DB_URL) and a real `chroma run` server behave as one product (README "Several machines")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from rag.db import engine_for

from .conftest import REPO
from .test_scale_out import start_chroma
from .test_web import KIMI_QUESTION, ask, browser, free_port, open_page, start_app  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.slow
STAFF = "staff-pass-123"


@pytest.fixture(scope="module")
def servers(tmp_path_factory, postgres):
    """A Chroma server and a PostgreSQL database: all two machines share."""
    port = free_port()
    chroma = start_chroma(tmp_path_factory.mktemp("chroma"), port)
    yield {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port),
           "RAG_RECORD_DB_URL": postgres.new_database("machines")}
    chroma.terminate()
    chroma.wait(timeout=30)


def machine(servers: dict, data_dir: Path, **extra: str) -> dict:
    return {**os.environ, **servers, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive",
            "RAG_STAFF_PASSWORD": STAFF, **extra}


def rag(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def asked(env: dict, question: str) -> dict:
    done = rag(env, "ask", "--explain", "--json", question)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def no_local_state(*data_dirs: Path) -> None:
    for folder in data_dirs:
        found = [p.name for p in folder.rglob("*") if ".sqlite" in p.name or p.name in ("index.lock", "chroma")]
        assert not found, f"{folder} holds local state: {found}"


def test_two_data_dirs_sharing_only_the_servers_behave_as_one_product(servers, tmp_path, browser):  # noqa: F811
    one, other = machine(servers, tmp_path / "one"), machine(servers, tmp_path / "two")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "zeppelin-note.md").write_text(
        "# Airship export licences\n\nThe Zeppelin Directive of March 2025 requires an export licence for every "
        "rigid airship envelope shipped abroad, said the Bureau of Aeronautics.\n", encoding="utf-8")

    indexed = rag(one, "index", "corpus", str(extra))
    assert indexed.returncode == 0, indexed.stderr

    # The other machine answers with both rankings, from the first one's index.
    answer = asked(other, KIMI_QUESTION)
    assert "Kimi" in answer["answer"] and answer["citations"]
    assert any(p["bm25_rank"] for p in answer["trace"]["ranking"]), "the lexical side answered through PostgreSQL"
    zeppelin = asked(other, "Which directive requires an export licence for rigid airship envelopes?")
    top = zeppelin["trace"]["ranking"][0]
    assert top["doc_id"] == "zeppelin-note" and top["bm25_rank"] == 1

    # A removal on one machine is seen by the other at once.
    removed = rag(one, "remove", "zeppelin-note")
    assert removed.returncode == 0, removed.stderr
    after = asked(other, "Which directive requires an export licence for rigid airship envelopes?")
    assert all(p["doc_id"] != "zeppelin-note" for p in after["trace"]["ranking"])

    # An evaluation run on one is listed on the other.
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "kimi", "question": KIMI_QUESTION, "answerable": True,
                                     "answer_must_include": [["Kimi"]]}) + "\n")
    assert rag(one, "eval", str(questions)).returncode == 0
    listed = rag(other, "eval", "--list")
    assert listed.returncode == 0 and "q.jsonl" in listed.stdout, listed.stdout + listed.stderr

    # A reader's rating in one app process shows in the other's feedback queue.
    first, second = (machine(servers, tmp_path / name, RAG_PORT=str(free_port())) for name in ("one", "two"))
    with start_app(first) as url:
        page = open_page(browser, url)
        ask(page, KIMI_QUESTION)
        page.locator("#chat button[aria-label='Dislike']").last.click()
        page.wait_for_function("document.querySelector('#status').innerText.includes('feedback saved')")
        page.close()
    with start_app(second) as url:
        from gradio_client import Client

        queue = Client(url, verbose=False).predict(STAFF, api_name="/feedback_queue")
        assert KIMI_QUESTION in json.dumps(queue), queue
        runs = Client(url, verbose=False).predict(STAFF, api_name="/eval_list")
        assert "q.jsonl" in json.dumps(runs), runs

    no_local_state(tmp_path / "one", tmp_path / "two")


def test_one_indexer_at_a_time_across_machines_and_a_killed_one_resumes_to_a_fresh_build(servers, tmp_path):
    import psutil

    docs = REPO.parent / "shared" / "datasets" / "digitalgov-ai-news" / "docs"
    if not docs.exists():
        pytest.skip("../shared/datasets not available")
    one = machine(servers, tmp_path / "one", RAG_COLLECTION="news", RAG_EMBED_BATCH_SIZE="8")
    other = machine(servers, tmp_path / "two", RAG_COLLECTION="news")

    process = subprocess.Popen([sys.executable, "-m", "rag", "index", str(docs)], cwd=REPO, env=one,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # progress lines: act once some chunks are written
        if "chunks" in line and not line.startswith("embedding and writing: 0"):
            break
    refused = rag(other, "index", "corpus")
    assert refused.returncode == 1 and "another indexer is running" in refused.stderr, refused.stderr
    children = psutil.Process(process.pid).children()
    process.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(children, timeout=60)

    rerun = rag(other, "index", str(docs))  # the lock died with the killed indexer; another machine resumes
    assert rerun.returncode == 0, rerun.stderr
    fresh = rag(machine(servers, tmp_path / "fresh", RAG_COLLECTION="fresh"), "index", str(docs))
    assert fresh.returncode == 0, fresh.stderr

    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=int(servers["RAG_CHROMA_PORT"]))
    chunks = {name: sorted(client.get_collection(name).get(include=[])["ids"]) for name in ("news", "fresh")}
    assert chunks["news"] and chunks["news"] == chunks["fresh"], "same chunks as a fresh build"
    with engine_for(servers["RAG_RECORD_DB_URL"]).connect() as db:
        rows = {name: sorted(r[0] for r in db.execute(text(f"SELECT chunk_id FROM lexical_chroma_{name}_chunks")))
                for name in ("news", "fresh")}
        terms = {name: db.execute(text(f"SELECT count(*), sum(df), (SELECT count(*) FROM lexical_chroma_{name}_postings), "
                                       f"(SELECT (chunks, words) FROM lexical_chroma_{name}_totals) "
                                       f"FROM lexical_chroma_{name}_terms")).one()
                 for name in ("news", "fresh")}
    assert rows["news"] == rows["fresh"] == chunks["fresh"], "same lexical rows as a fresh build"
    assert terms["news"] == terms["fresh"], "same term statistics, postings and totals as a fresh build"
    no_local_state(tmp_path / "one", tmp_path / "two", tmp_path / "fresh")


def test_postgres_restarting_gives_readers_a_clear_message_then_answers_resume(servers, tmp_path, postgres):
    env = machine(servers, tmp_path / "one", RAG_PORT=str(free_port()))
    assert rag(env, "index", "corpus").returncode == 0
    with start_app(env) as url:
        from gradio_client import Client

        client = Client(url, verbose=False)
        assert "Kimi" in client.predict(KIMI_QUESTION, api_name="/ask")["answer"]
        postgres.stop()
        try:
            down = client.predict(KIMI_QUESTION, api_name="/ask")
            assert down["error"] == "The article index cannot be reached right now. Please try again in a moment."
        finally:
            postgres.start()
        assert "Kimi" in client.predict(KIMI_QUESTION, api_name="/ask")["answer"], "answers resume, no restart"


def test_an_upload_through_one_machine_is_reindexed_viewed_and_removed_through_another(servers, tmp_path,
                                                                                       embedding_model):
    """Issue 33 item 5(d): the Admin tab's uploads live in the shared records database, each machine's
    RAG_DATA_DIR/uploads only a working copy."""
    from rag.components import Components
    from rag.ingest.store import article_text
    from rag.settings import Settings
    from rag.web.admin import Admin

    password = "a long admin password"

    def machine_admin(name: str) -> Admin:
        settings = Settings(data_dir=tmp_path / name, corpus_dir=REPO / "corpus", llm="extractive",
                            chroma_host="127.0.0.1", chroma_port=int(servers["RAG_CHROMA_PORT"]),
                            admin_password=password, collection="uploads_test", _env_file=None,
                            RAG_RECORD_DB_URL=servers["RAG_RECORD_DB_URL"])
        return Admin(Components(settings, embedding_model=embedding_model))

    a, b = machine_admin("a"), machine_admin("b")
    upload = tmp_path / "field-notes.md"
    upload.write_text("# Field notes\n\nThe lighthouse keeper counted 4,711 ships in the winter of 2024.\n")
    assert a.index(password, [str(upload)], "").added == ["field-notes"]

    assert "4,711 ships" in article_text(b.components.store(), "field-notes")[1], "viewable from B"
    summary = b.reindex_all(password)
    assert "field-notes" in summary.unchanged + summary.updated and not summary.failed, summary
    assert (b.uploads / "field-notes.md").read_text() == upload.read_text(), "B has its working copy"

    assert b.remove(password, ["field-notes"])["field-notes"] > 0
    assert article_text(a.components.store(), "field-notes")[1] == ""
    again = a.reindex_all(password)  # A still had its own copy: it must not bring the article back
    assert "field-notes" not in again.added + again.updated + again.unchanged, again
    assert not (a.uploads / "field-notes.md").exists()
    assert a.stored_uploads.names() == {}
