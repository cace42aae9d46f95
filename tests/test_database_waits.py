"""A database that waits must not freeze the web app (issue 31 item 2): the real app on a real
PostgreSQL, with a table lock held by another session and then with the server paused (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from .test_web import free_port, start_app

pytestmark = pytest.mark.slow
ADMIN = "operators only, please"


def upload(url: str) -> tuple[int, float]:
    boundary = "x-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(url + "gradio_api/upload", data=form, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


def page_time(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return time.perf_counter() - started


def postgres_processes(postgres) -> list[int]:
    """The server's postmaster and every backend it forked."""
    postmaster = int(Path(f"{postgres.folder}/data/postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return [postmaster, *children]


def while_uploading(url: str) -> tuple[tuple[int, float], float]:
    """An upload (whose limit check needs the database) and, meanwhile, another visitor's page."""
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("upload", upload(url)))
    worker.start()
    time.sleep(0.5)
    page = page_time(url)
    worker.join(timeout=60)
    return result["upload"], page


def test_a_locked_or_paused_database_costs_one_request_a_503_and_other_visitors_nothing(postgres, tmp_path):
    database = postgres.new_database("waits")
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "extractive", "RAG_PORT": str(free_port()),
           "RAG_ADMIN_PASSWORD": ADMIN, "RAG_RECORD_DB_URL": database, "RAG_DB_READER_WAIT_S": "3",
           "RAG_PREPARE_SUMMARIES": "false"}
    with start_app(env) as url:
        assert upload(url)[0] == 200
        # Another session holds the counters' table for 8 s.
        with psycopg.connect(database.replace("postgresql://", "postgresql://", 1)) as holder:
            holder.execute("LOCK TABLE limited_actions IN ACCESS EXCLUSIVE MODE")
            (status, took), page = while_uploading(url)
            holder.rollback()
        assert page < 1.5, f"a plain page took {page:.1f} s while the database waited"
        assert status == 503 and took < 6, (status, took)
        assert upload(url)[0] == 200  # the lock is gone: uploads count again

        # The server stops answering altogether (SIGSTOP), then comes back.
        processes = postgres_processes(postgres)
        for pid in processes:
            os.kill(pid, signal.SIGSTOP)
        try:
            (status, took), page = while_uploading(url)
        finally:
            for pid in processes:
                os.kill(pid, signal.SIGCONT)
        assert page < 1.5, f"a plain page took {page:.1f} s while the database was paused"
        assert status == 503 and took < 6, (status, took)
        deadline = time.time() + 30
        while upload(url)[0] != 200:  # recovers by itself, no restart
            assert time.time() < deadline, "the app did not recover after the database came back"
            time.sleep(1)
        log = (tmp_path / "data" / "app.log").read_text()
        assert "Traceback" not in log, log[-2000:]
