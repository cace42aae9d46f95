"""Operators re-index while the chat serves: the app keeps answering and sees new articles, no restart.

Real processes: the web app on loopback (embedded Chroma), ``python -m rag index`` run beside it,
and a reader asking questions through the API the whole time. Also the admin API's password gate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from .conftest import REPO
from .test_web import free_port, start_app

pytestmark = pytest.mark.slow

NEW_ARTICLE = """# Lighthouse Keepers Return to Cape Verity

Date: 2025-02-14

The coast guard will station two keepers at the Cape Verity lighthouse from April, after a
storm damaged its automated lamp. The keepers will also run a small weather station.
"""
QUESTION = "Who will be stationed at the Cape Verity lighthouse?"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    # Dense-only: BM25 reads documents straight from Chroma's SQLite and would find new articles
    # anyway; the embedded vector index is the part that must be reloaded after another process writes.
    env = {**os.environ, "RAG_DATA_DIR": str(folder / "data"), "RAG_LLM": "extractive", "RAG_RETRIEVAL_MODE": "dense",
           "RAG_PORT": str(free_port()), "RAG_ADMIN_PASSWORD": "correct horse", "RAG_STAFF_PASSWORD": "staff password"}
    with start_app(env) as url:
        yield url, env, folder


def test_chat_keeps_answering_during_a_cli_reindex_and_then_finds_the_new_article(app):
    from gradio_client import Client

    url, env, folder = app
    client = Client(url, verbose=False)
    assert client.predict(QUESTION, api_name="/ask")["refused"]

    extra = folder / "extra"
    extra.mkdir()
    (extra / "lighthouse.md").write_text(NEW_ARTICLE)
    errors, answered = [], []
    stop = threading.Event()

    def reader():
        reader_client = Client(url, verbose=False)
        while not stop.is_set():
            result = reader_client.predict("Which Anthropic models were covered by the directive?", api_name="/ask")
            (errors if "error" in result else answered).append(result)

    thread = threading.Thread(target=reader)
    thread.start()
    indexer = subprocess.run([sys.executable, "-m", "rag", "index", "corpus", str(extra)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    time.sleep(1)
    stop.set()
    thread.join(timeout=120)
    assert indexer.returncode == 0, indexer.stderr
    assert answered and not errors, errors[:1]

    result = client.predict(QUESTION, api_name="/ask")
    assert not result["refused"] and "keepers" in result["answer"]
    assert result["citations"][0]["doc_id"] == "lighthouse"


def test_admin_api_refuses_without_the_password_and_works_with_it(app):
    from gradio_client import Client

    url, _, _ = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="wrong admin password"):
        client.predict("guess", api_name="/admin_list")
    rows, _choices, _sources, summaries = client.predict("correct horse", api_name="/admin_list")
    assert "Summaries:" in summaries and "ready" in summaries and "pending" in summaries
    assert "us-ai-export-controls-anthropic" in str(rows)
    with pytest.raises(Exception, match="wrong admin password"):
        client.predict("guess", api_name="/admin_reindex")
    message, rows, _choices, sources, _summaries = client.predict("correct horse", api_name="/admin_reindex")
    assert message.startswith("Re-indexed:") and "failed" in message and "us-ai-export-controls-anthropic" in str(rows)
    checked = {row[0]: row for row in sources["data"]}  # the Admin tab's list of sources, last checked first
    corpus = next(source for source in checked if source.endswith("corpus"))
    assert checked[corpus][1] == "folder" and checked[corpus][2] and "unchanged" in checked[corpus][3]


def test_staff_api_runs_an_evaluation_and_refuses_without_the_password(app):
    from gradio_client import Client

    from .conftest import SEED_QUESTIONS

    if not SEED_QUESTIONS.exists():
        pytest.skip("../shared/eval not available")
    url, _, _ = app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="wrong staff password"):
        client.predict("nope", api_name="/eval_list")
    # Sets are offered by name: the public /config (and the page) never shows a server path.
    config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
    assert "eval/seed-questions.jsonl" in config and str(SEED_QUESTIONS.parent) not in config
    assert str(REPO) not in config
    report, runs = client.predict("staff password", "eval/seed-questions.jsonl", "extractive", "", None,
                                  api_name="/eval_run")
    assert "srcdoc" in report and "Evaluation run" in report
    rows = runs["data"] if isinstance(runs, dict) else runs
    assert rows
    # Staff's "why did it answer that?": the stored trace of one question of that run.
    trace = client.predict("staff password", rows[0][0], "d01", api_name="/eval_explain")
    assert trace.startswith("d01:") and "DECISION" in trace and "RETRIEVAL" in trace and "CHECKER" in trace
    with pytest.raises(Exception, match="wrong staff password"):
        client.predict("nope", rows[0][0], "d01", api_name="/eval_explain")


def test_admin_features_are_absent_without_a_password(tmp_path):
    from gradio_client import Client

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "extractive", "RAG_PORT": str(free_port())}
    env.pop("RAG_ADMIN_PASSWORD", None)
    with start_app(env) as url:
        client = Client(url, verbose=False)
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/admin_list" not in endpoints and "/eval_run" not in endpoints
