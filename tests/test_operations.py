"""What an operator runs the app with (issue 33): /healthz, /readyz, /metrics, JSON logs, a graceful
SIGTERM and bounded reader sessions — each against the real app (app.py in a subprocess), the real
PostgreSQL and the real Chroma server where the question is what happens when they stop."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rag.web.metrics import MetricsAccess

from .conftest import REPO
from .servers import fake_llm_server
from .test_web import KIMI_QUESTION, free_port, start_app

pytestmark = pytest.mark.slow

ADMIN = "admin-password-123"
TOKEN = "scrape-token-456789"
OFF_TOPIC = "What is the recipe for a good sourdough bread starter?"
REPLY = "Kimi 2.7 has comparable mathematical and software exploitation capabilities."


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def scrape(url: str, headers: dict | None = None) -> dict[tuple, float]:
    """/metrics parsed by prometheus_client's own parser: {(sample name, sorted labels): value}."""
    status, body = get(url + "metrics", headers)
    assert status == 200, body
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def ready(url: str) -> tuple[int, dict]:
    status, body = get(url + "readyz")
    return status, json.loads(body)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout_s} s")


def test_health_readiness_and_metrics_of_a_serving_app(tmp_path):
    from gradio_client import Client

    data_dir = tmp_path / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive", "RAG_PORT": str(free_port()),
           "RAG_ADMIN_PASSWORD": ADMIN, "RAG_METRICS_TOKEN": TOKEN, "RAG_MAX_SESSIONS": "3",
           "RAG_SESSION_TTL_S": "4"}
    with start_app(env) as url:
        assert get(url + "healthz") == (200, '{"status":"ok"}')
        status, body = get(url + "readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        assert set(json.loads(body)["checks"]) == {"index", "database", "model"}
        for secret in (str(tmp_path), ADMIN, TOKEN, "sqlite:"):
            assert secret not in body, "a public probe names no path and no secret"

        before = scrape(url)
        client = Client(url, verbose=False)
        answered = client.predict(KIMI_QUESTION, api_name="/ask")
        refused = client.predict(OFF_TOPIC, api_name="/ask")
        assert not answered["refused"] and refused["refused"], (answered, refused)
        after = scrape(url)

        def moved(name: str, **labels) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("rag_questions_total", outcome="answered", kind="answer", refusal_kind="") == 1
        assert moved("rag_questions_total", outcome="refused", kind="answer",
                     refusal_kind=refused["refusal_kind"]) == 1
        for histogram in ("rag_retrieval_seconds", "rag_first_token_seconds", "rag_answer_seconds",
                          "rag_queue_wait_seconds"):
            assert moved(f"{histogram}_count") == 2, histogram
            assert moved(f"{histogram}_bucket", le="+Inf") == 2, histogram
        assert value(after, "rag_articles") == 1 and value(after, "rag_chunks") >= 10
        assert value(after, "rag_last_indexing_run_finished") == 1
        assert value(after, "rag_last_indexing_run_timestamp_seconds") > time.time() - 3600
        assert value(after, "process_resident_memory_bytes") > 100e6
        assert value(after, "rag_questions_waiting") == 0

        # Behind a proxy the app does not trust, every visitor would arrive from 127.0.0.1: refused,
        # unless the scraper sends the token.
        assert get(url + "metrics", {"X-Forwarded-For": "203.0.113.9"})[0] == 403
        assert get(url + "metrics", {"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer wrong"})[0] == 403
        assert get(url + "metrics", {"X-Forwarded-For": "203.0.113.9", "Authorization": f"Bearer {TOKEN}"})[0] == 200

        # Sessions: each API client is one; at most RAG_MAX_SESSIONS are kept, and idle ones expire.
        for _ in range(5):
            Client(url, verbose=False).predict(KIMI_QUESTION, api_name="/ask")
        assert 1 <= value(scrape(url), "rag_sessions") <= 3
        wait_for(lambda: value(scrape(url), "rag_sessions") == 0, 20, "idle sessions dropped after RAG_SESSION_TTL_S")
    assert "Traceback" not in (data_dir / "app.log").read_text()


def test_metrics_access_by_address_proxy_and_token():
    access = MetricsAccess("127.0.0.1, ::1, 10.0.0.0/8", TOKEN, trusted_proxies=False)
    assert access.allows("127.0.0.1", {}) and access.allows("::1", {}) and access.allows("10.1.2.3", {})
    assert access.allows("::ffff:127.0.0.1", {})
    assert not access.allows("203.0.113.9", {}) and not access.allows(None, {}) and not access.allows("bogus", {})
    assert not access.allows("127.0.0.1", {"forwarded": "for=203.0.113.9"})
    assert access.allows("203.0.113.9", {"authorization": f"Bearer {TOKEN}"})
    # With trusted proxies, the request guard has already put the forwarded client in its place.
    assert MetricsAccess("127.0.0.1", None, trusted_proxies=True).allows("127.0.0.1", {"x-forwarded-for": "x"})
    assert not MetricsAccess("", None, trusted_proxies=False).allows("127.0.0.1", {})


def chat_in_a_thread(url: str, question: str) -> tuple[threading.Thread, list[str]]:
    """Ask through the streaming /chat API; the thread collects the stream's lines as they come."""
    status, body = post(url + "gradio_api/call/chat", {"data": [question, [], [], None, None]})
    assert status == 200, body
    lines: list[str] = []

    def read() -> None:
        with urllib.request.urlopen(f"{url}gradio_api/call/chat/{body['event_id']}", timeout=120) as stream:
            for line in stream:
                lines.append(line.decode())

    thread = threading.Thread(target=read)
    thread.start()
    return thread, lines


def test_sigterm_finishes_the_streaming_answer_refuses_new_questions_and_exits_0(tmp_path):
    """Also: JSON logs parse line by line and hold no question text; /metrics refused to an address
    outside RAG_METRICS_ALLOW; /readyz 503 until the model server answers on a first start."""
    data_dir = tmp_path / "data"
    llm_port = free_port()  # the model server is down when the app starts: not ready
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "openai",
           "RAG_LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1", "RAG_LLM_MODEL": "fake", "RAG_PORT": str(free_port()),
           "RAG_LOG_FORMAT": "json", "RAG_METRICS_ALLOW": "10.0.0.0/8", "RAG_PREPARE_SUMMARIES": "false",
           "RAG_LLM_FALLBACK": "false", "RAG_SHUTDOWN_GRACE_S": "60"}
    processes: list = []
    with start_app(env, ready=False, process_out=processes) as url:
        status, body = wait_for(lambda: (lambda r: r if r[1]["checks"]["index"]["ok"] else None)(ready(url)), 60,
                                "the index check")
        assert status == 503 and not body["checks"]["model"]["ok"], body
        assert get(url + "metrics")[0] == 403, "loopback is not in RAG_METRICS_ALLOW here"
        with fake_llm_server(REPLY, delay_s=0.4, port=llm_port):  # the model server comes up
            wait_for(lambda: ready(url)[0] == 200, 30, "ready once the model server answers")
            thread, lines = chat_in_a_thread(url, KIMI_QUESTION)
            wait_for(lambda: sum("generating" in line for line in lines) >= 4, 60, "the answer streaming")
            processes[0].send_signal(signal.SIGTERM)
            time.sleep(0.3)
            status, body = ready(url)
            assert status == 503 and body.get("draining"), body
            status, refused = post(url + "gradio_api/call/ask", {"data": [KIMI_QUESTION]})
            assert status == 503 and "restarting" in refused["error"], refused
            thread.join(90)
            final = [line for line in lines if line.startswith("data:")][-1]
            assert "Kimi 2.7" in final and "answer" in final and "refusal" not in final, final[-800:]
            assert processes[0].wait(60) == 0

    log_lines = (data_dir / "app.log").read_text().splitlines()
    events = [json.loads(line) for line in log_lines if line.strip()]  # every line is one JSON object
    questions = [e for e in events if e.get("event") == "question"]
    assert len(questions) == 1 and questions[0]["outcome"] == "answered" and questions[0]["total_s"] > 0
    assert "question" not in questions[0]
    assert "Kimi 2.7" not in "\n".join(log_lines) and "Chinese model" not in "\n".join(log_lines)
    assert any("SIGTERM" in e["message"] for e in events)


def test_doctor_says_what_is_not_ready_and_exits_non_zero(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "extractive"}

    def doctor() -> tuple[int, dict]:
        done = subprocess.run([sys.executable, "-m", "rag", "doctor", "--json"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
        return done.returncode, json.loads(done.stdout)

    code, report = doctor()
    assert code == 1 and not report["ready"] and "no index yet" in report["checks"]["index"]["detail"]
    indexed = subprocess.run([sys.executable, "-m", "rag", "index", "corpus"], cwd=REPO, env={**env, "RAG_LOG_FORMAT": "json"},
                             check=True, capture_output=True, text=True, timeout=300)
    events = [json.loads(line) for line in indexed.stderr.splitlines() if line.startswith("{")]
    [run] = [e for e in events if e.get("event") == "indexing_run"]
    assert run["finished"] is True and run["added"] == 1 and run["failed_sources"] == 0
    code, report = doctor()
    assert code == 0 and report["ready"], report
    assert report["checks"]["words"]["detail"] == report["checks"]["index"]["detail"]


def _servers_env(postgres, chroma_port: int, data_dir: Path, name: str) -> dict:
    return {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive", "RAG_PORT": str(free_port()),
            "RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(chroma_port),
            "RAG_RECORD_DB_URL": postgres.new_database(name), "RAG_PREPARE_SUMMARIES": "false"}


def test_readiness_follows_postgres_and_the_chroma_server_down_and_back_without_a_restart(tmp_path, postgres):
    from .test_scale_out import start_chroma

    chroma_port = free_port()
    (tmp_path / "chroma").mkdir()
    chroma = start_chroma(tmp_path / "chroma", chroma_port)
    env = _servers_env(postgres, chroma_port, tmp_path / "data", "readiness")
    try:
        with start_app(env) as url:
            assert ready(url)[0] == 200
            postgres.stop()
            try:
                status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(ready(url)), 30, "PostgreSQL down")
                assert not body["checks"]["database"]["ok"] and body["checks"]["index"]["ok"], body
                assert "5432" not in json.dumps(body) and "rag@" not in json.dumps(body)
            finally:
                postgres.start()
            wait_for(lambda: ready(url)[0] == 200, 60, "ready again once PostgreSQL is back")

            chroma.terminate()
            chroma.wait(30)
            status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(ready(url)), 30, "Chroma down")
            assert not body["checks"]["index"]["ok"] and body["checks"]["database"]["ok"], body
            chroma = start_chroma(tmp_path / "chroma", chroma_port)
            wait_for(lambda: ready(url)[0] == 200, 60, "ready again once the Chroma server is back")
    finally:
        chroma.terminate()
        chroma.wait(30)


def test_two_app_processes_on_one_postgres_each_count_their_own_questions(tmp_path, postgres):
    from gradio_client import Client

    from .test_scale_out import start_chroma

    chroma_port = free_port()
    (tmp_path / "chroma").mkdir()
    chroma = start_chroma(tmp_path / "chroma", chroma_port)
    first = _servers_env(postgres, chroma_port, tmp_path / "a", "two_processes")
    second = {**first, "RAG_DATA_DIR": str(tmp_path / "b"), "RAG_PORT": str(free_port())}
    try:
        with start_app(first) as url_a, start_app(second, index=False) as url_b:
            Client(url_a, verbose=False).predict(KIMI_QUESTION, api_name="/ask")
            a, b = scrape(url_a), scrape(url_b)
            assert value(a, "rag_questions_total", outcome="answered", kind="answer", refusal_kind="") == 1
            assert value(b, "rag_questions_total", outcome="answered", kind="answer", refusal_kind="") == 0
            assert value(a, "rag_answer_seconds_count") == 1 and value(b, "rag_answer_seconds_count") == 0
            # The index's numbers are the shared index's: the same on both.
            assert value(a, "rag_chunks") == value(b, "rag_chunks") > 0
            assert value(a, "rag_articles") == value(b, "rag_articles") == 1
    finally:
        chroma.terminate()
        chroma.wait(30)


def test_lifecycle_refuses_questions_once_draining_and_waits_for_those_in_flight():
    from rag.web.lifecycle import Draining, Lifecycle

    lifecycle = Lifecycle(grace_s=5)
    finished = threading.Event()

    def answer() -> None:
        with lifecycle.question():
            time.sleep(0.5)
        finished.set()

    worker = threading.Thread(target=answer)
    worker.start()
    time.sleep(0.1)
    lifecycle.drain()
    with pytest.raises(Draining, match="restarting"), lifecycle.question():
        pass
    assert lifecycle.in_flight == 1 and not lifecycle.wait_drained(0.05)
    assert lifecycle.wait_drained(5) and finished.is_set() and lifecycle.in_flight == 0
    worker.join()


def test_warm_up_says_not_yet_then_loads_when_asked_again():
    from rag.web.lifecycle import Lifecycle

    lifecycle, tries = Lifecycle(), []

    def load() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise LookupError("no index")

    lifecycle.warm_up(load, not_yet=lambda exc: "waiting for an index" if isinstance(exc, LookupError) else None)
    wait_for(lambda: lifecycle.model_state != "loading the model", 5, "the first try")
    assert lifecycle.model_state == "waiting for an index" and not lifecycle.model_ready.is_set()
    lifecycle.retry_warm_up()
    assert lifecycle.model_ready.wait(5) and lifecycle.model_state == "ready" and len(tries) == 2


def test_readiness_answers_within_its_deadline_from_a_hung_check_and_at_once_while_draining():
    from rag.health import Checker, NotReady, Readiness

    hang, calls, draining = threading.Event(), [], [False]

    def hung() -> str:
        calls.append("hung")
        hang.wait(30)
        return "late"

    def down() -> str:
        raise NotReady("the record database is not answering (OperationalError)")

    readiness = Readiness(Checker({"index": lambda: "27 chunks", "database": down, "model": hung}, timeout_s=0.5),
                          draining=lambda: draining[0], cache_s=0.2)
    started = time.perf_counter()
    report = readiness.report()
    assert time.perf_counter() - started < 2 and not report.ready
    assert report.to_json()["checks"] == {
        "index": {"ok": True, "detail": "27 chunks"},
        "database": {"ok": False, "detail": "the record database is not answering (OperationalError)"},
        "model": {"ok": False, "detail": "did not answer within 0.5 s"}}
    time.sleep(0.3)
    readiness.report()
    assert calls == ["hung"], "a check still running is waited for again, not started twice"
    hang.set()
    draining[0] = True
    started = time.perf_counter()
    report = readiness.report()
    assert time.perf_counter() - started < 0.1 and report.draining and not report.ready


def test_the_session_reaper_drops_sessions_unused_for_the_ttl():
    import datetime
    import types

    from rag.web.sessions import SessionReaper

    now = datetime.datetime.now()
    holder = types.SimpleNamespace(lock=threading.Lock(), session_data={"old": 1, "new": 2},
                                   time_last_used={"old": now - datetime.timedelta(seconds=120), "new": now})
    reaper = SessionReaper(types.SimpleNamespace(state_holder=holder), ttl_s=60)
    assert reaper.live() == 2 and reaper.reap() == 1
    assert holder.session_data == {"new": 2} and set(holder.time_last_used) == {"new"}
