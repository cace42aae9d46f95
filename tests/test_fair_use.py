"""One reader cannot monopolise the model (issue 31 item 3): a per-client question budget (a token
bucket, shared through PostgreSQL), fair turns at the model between clients, and limit tables
that stay bounded under rotating addresses."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

import pytest

from rag.db import engine_for
from rag.web.limits import FairGate, LimitExceeded, MemoryCounts, QuestionBudget, RateLimit, SharedCounts


def test_the_budget_allows_a_burst_then_one_question_every_60_over_n_seconds():
    now = [0.0]
    budget = QuestionBudget(6, MemoryCounts(), clock=lambda: now[0])
    for _ in range(6):
        budget.take("10.0.0.1")
    with pytest.raises(LimitExceeded, match=r"try again in 10 s"):
        budget.take("10.0.0.1")
    budget.take("10.0.0.2")  # another client has its own bucket
    now[0] += 10
    budget.take("10.0.0.1")  # one token back after 60/6 s
    assert budget.wait_s("10.0.0.1", take=False) == pytest.approx(10)
    assert QuestionBudget(0).wait_s("x", take=True) == 0  # 0: no limit


def test_the_budget_is_shared_by_every_process_through_postgresql(postgres):
    url = postgres.new_database("budget")
    now = [1000.0]
    one = QuestionBudget(4, SharedCounts(engine_for(url)), clock=lambda: now[0])
    two = QuestionBudget(4, SharedCounts(engine_for(url + "?application_name=two")), clock=lambda: now[0])
    for budget in (one, two, one, two):
        budget.take("10.0.0.9")
    with pytest.raises(LimitExceeded):
        two.take("10.0.0.9")
    now[0] += 15
    one.take("10.0.0.9")


def test_limit_tables_stay_bounded_under_rotating_addresses(postgres, monkeypatch):
    import rag.web.limits as limits

    monkeypatch.setattr(limits, "MAX_ROWS", 50)
    engine = engine_for(postgres.new_database("rotating"))
    counts = SharedCounts(engine)
    now = [1000.0]
    uploads = RateLimit(20, 600, "uploads", clock=lambda: now[0], counts=counts)
    budget = QuestionBudget(10, counts, clock=lambda: now[0])
    for n in range(300):  # a new address per request, all within the window
        now[0] += 0.01
        uploads.take(f"10.1.{n // 250}.{n % 250}")
        budget.take(f"10.2.{n // 250}.{n % 250}")
        counts.add_failure(f"10.3.{n // 250}.{n % 250}", now[0])
    from sqlalchemy import text

    with engine.connect() as db:
        for table in ("limited_actions", "token_buckets", "login_failures"):
            rows = db.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            assert rows <= 51, (table, rows)
        # Pruning by age has an index to use (with a few rows the planner may still scan: not asserted).
        indexes = {r[0] for r in db.execute(text("SELECT indexname FROM pg_indexes WHERE tablename IN "
                                                 "('limited_actions', 'login_failures', 'token_buckets')"))}
    assert {"limited_actions_at", "login_failures_last", "token_buckets_updated"} <= indexes, indexes


def test_a_burst_from_one_client_waits_behind_another_clients_first_question():
    gate = FairGate(slots=1)
    order, started = [], threading.Event()

    def ask(client: str, n: int, hold: float = 0.15):
        with gate.turn(client):
            order.append(f"{client}{n}")
            started.set()
            time.sleep(hold)

    threads = [threading.Thread(target=ask, args=("a", n)) for n in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.01)
    started.wait(5)
    late = threading.Thread(target=ask, args=("b", 0))
    time.sleep(0.05)
    late.start()
    for t in [*threads, late]:
        t.join(10)
    assert order.index("b0") <= 2, order  # not behind all six of a's questions
    assert sorted(order) == sorted([f"a{n}" for n in range(6)] + ["b0"])


# --- the real app ------------------------------------------------------------------------------

def post_json(url: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


@pytest.mark.slow
def test_the_app_answers_429_over_budget_and_serves_another_client_between_a_burst(tmp_path):
    from gradio_client import Client

    from .servers import fake_llm_server
    from .test_web import KIMI_QUESTION, free_port, start_app

    reply = "Kimi 2.7 has comparable mathematical and software exploitation capabilities."
    with fake_llm_server(reply, delay_s=0.05) as llm:
        env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "openai", "RAG_LLM_BASE_URL": llm.url,
               "RAG_LLM_MODEL": "fake", "RAG_PORT": str(free_port()), "RAG_QUESTIONS_PER_MINUTE": "4",
               "RAG_CONCURRENCY_LIMIT": "1", "RAG_PREPARE_SUMMARIES": "false"}
        with start_app(env) as url:
            client = Client(url, verbose=False)
            answers = [client.predict(KIMI_QUESTION, api_name="/ask") for _ in range(4)]
            assert all("Kimi" in a.get("answer", "") for a in answers), answers
            over = client.predict(KIMI_QUESTION, api_name="/ask")
            assert "Too many questions" in over["error"] and over["retry_after_s"] >= 1, over
            status, headers, body = post_json(url + "gradio_api/call/ask", {"data": [KIMI_QUESTION]})
            assert status == 429 and "Too many questions" in body["error"], (status, body)
            assert int(headers.get("Retry-After") or headers.get("retry-after")) >= 1
            log = (tmp_path / "data" / "app.log").read_text()
            assert "Traceback" not in log


@pytest.mark.slow
def test_in_the_app_another_clients_first_question_is_answered_before_a_burst_is_done(tmp_path):
    """Two clients behind a proxy the operator trusts (their X-Forwarded-For tells them apart); the
    model answers one question at a time: b's first question does not wait for all of a's."""
    from gradio_client import Client

    from .servers import fake_llm_server
    from .test_web import KIMI_QUESTION, free_port, start_app

    reply = "Kimi 2.7 has comparable mathematical and software exploitation capabilities."
    with fake_llm_server(reply, delay_s=0.2) as llm:
        env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "openai", "RAG_LLM_BASE_URL": llm.url,
               "RAG_LLM_MODEL": "fake", "RAG_PORT": str(free_port()), "RAG_CONCURRENCY_LIMIT": "1",
               "RAG_TRUSTED_PROXIES": "127.0.0.1", "RAG_PREPARE_SUMMARIES": "false", "RAG_LLM_FALLBACK": "false"}
        with start_app(env) as url:
            finished = []

            def ask(who: str, n: int) -> None:
                client = Client(url, verbose=False, headers={"X-Forwarded-For": "10.0.0.1" if who == "a" else "10.0.0.2"})
                client.predict(f"{KIMI_QUESTION} ({n})", api_name="/ask")
                finished.append(f"{who}{n}")

            burst = [threading.Thread(target=ask, args=("a", n)) for n in range(5)]
            for thread in burst:
                thread.start()
            time.sleep(1.5)  # a's burst is queued at the model
            late = threading.Thread(target=ask, args=("b", 0))
            late.start()
            for thread in [*burst, late]:
                thread.join(120)
            assert len(finished) == 6, finished
            assert finished.index("b0") <= 2, finished  # not after all five of a's

