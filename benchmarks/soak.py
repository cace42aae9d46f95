"""Soak test: memory per visitor. N sessions, each a new API client asking one question, on loopback.

    python benchmarks/soak.py [--sessions 5000] [--cap 1000] [--every 1000] [--threads 4] [--json]

Starts the app twice on the shipped corpus (extractive answers, its own data dir, a free
127.0.0.1 port): first with Gradio's default hold on sessions (10,000, no expiry) — the baseline —
then with ``RAG_MAX_SESSIONS=--cap``. Each session is one POST to ``/gradio_api/call/ask`` (Gradio
makes a session for every call) and reading its answer. Prints the app's RSS (MB) and the live
sessions its /metrics reports after every ``--every`` sessions, for both runs side by side: the
capped run's RSS should stop growing once the cap is reached; the baseline's keeps growing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Which Chinese model has comparable exploitation capabilities?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def live_sessions(url: str) -> int:
    body = urllib.request.urlopen(url + "metrics", timeout=30).read().decode()
    return int(float(next(line.split()[-1] for line in body.splitlines() if line.startswith("rag_sessions "))))


def one_session(url: str) -> None:
    """A new client: one question through the API, its answer read to the end."""
    request = urllib.request.Request(url + "gradio_api/call/ask", data=json.dumps({"data": [QUESTION]}).encode(),
                                     headers={"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/ask/{event_id}", timeout=120).read().decode()
    if "event: complete" not in stream:
        raise RuntimeError(f"no answer: {stream[-300:]}")


def run(data_dir: Path, env_extra: dict, sessions: int, every: int, threads: int) -> list[dict]:
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive", "RAG_PORT": str(port),
           "RAG_QUESTIONS_PER_MINUTE": "0", "RAG_PREPARE_SUMMARIES": "false", **env_extra}
    url = f"http://127.0.0.1:{port}/"
    with (data_dir / "app.log").open("w") as log:
        app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url + "readyz", timeout=2)
                break
            except OSError:
                if app.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"the app did not start: {(data_dir / 'app.log').read_text()[-1500:]}") from None
                time.sleep(0.5)
        one_session(url)  # warm: the first question loads what the rest reuse
        rows = [{"sessions": 0, "rss_mb": round(rss_mb(app.pid), 1), "live": live_sessions(url)}]
        done, started = 0, time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            while done < sessions:
                batch = min(every, sessions - done)
                list(pool.map(lambda _: one_session(url), range(batch)))
                done += batch
                rows.append({"sessions": done, "rss_mb": round(rss_mb(app.pid), 1), "live": live_sessions(url),
                             "seconds": round(time.perf_counter() - started, 1)})
                print(f"  {done:>6} sessions: RSS {rows[-1]['rss_mb']:.0f} MB, {rows[-1]['live']} live",
                      file=sys.stderr, flush=True)
        return rows
    finally:
        app.terminate()
        app.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--cap", type=int, default=1000, help="RAG_MAX_SESSIONS of the capped run")
    parser.add_argument("--every", type=int, default=1000, help="sessions between two readings")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        data_dir = Path(folder) / "data"
        subprocess.run([sys.executable, "-m", "rag", "index", "corpus"], cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "RAG_DATA_DIR": str(data_dir)})
        print("baseline: Gradio's default (10,000 sessions, no expiry)", file=sys.stderr)
        baseline = run(data_dir, {"RAG_MAX_SESSIONS": "10000", "RAG_SESSION_TTL_S": "86400"}, args.sessions,
                       args.every, args.threads)
        print(f"capped: RAG_MAX_SESSIONS={args.cap}", file=sys.stderr)
        capped = run(data_dir, {"RAG_MAX_SESSIONS": str(args.cap)}, args.sessions, args.every, args.threads)
    if args.json:
        print(json.dumps({"baseline": baseline, "capped": capped, "cap": args.cap}))
        return
    print(f"{'sessions':>8} | {'baseline RSS MB':>15} {'live':>6} | {'capped RSS MB':>13} {'live':>6}")
    for base, cap in zip(baseline, capped, strict=True):
        print(f"{base['sessions']:>8} | {base['rss_mb']:>15.0f} {base['live']:>6} | {cap['rss_mb']:>13.0f} {cap['live']:>6}")
    grow = lambda rows: rows[-1]["rss_mb"] - rows[len(rows) // 2]["rss_mb"]  # noqa: E731
    print(f"growth over the second half: baseline {grow(baseline):+.0f} MB, capped {grow(capped):+.0f} MB")


if __name__ == "__main__":
    main()
