"""Load test: N concurrent readers asking through the app's /ask API, on loopback only.

    python benchmarks/load.py [--llm extractive|local] [--readers 1 4 16] [--questions-per-reader 3]

Starts the app (its own data dir, the shipped corpus) on a free 127.0.0.1 port, then for each N
sends a fixed number of questions from N threads, each request with a deadline, and reports
throughput, p50/p95/max latency, errors (a request past its deadline is one), the app's peak
memory (RSS of its process tree) and fairness: the slowest reader's mean latency over the fastest
one's (1.0 = all readers waited alike; with the local model requests queue on its one slot). Bounded in
count and time; it stops by itself. The baseline in the same run is N=1.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Which Anthropic models were covered by the export control directive?",
    "How many cybersecurity executives signed the joint letter?",
    "Which Chinese model has comparable exploitation capabilities?",
    "What have export controls traditionally focused on?",
    "Who wrote the article?",
    "What is the price of the Mythos 5 API?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6
    except psutil.NoSuchProcess:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm", default="extractive", choices=["extractive", "local"])
    parser.add_argument("--readers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--questions-per-reader", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline per request, seconds")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="rag-load-"))
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": args.llm, "RAG_PORT": str(port),
           "RAG_HOST": "127.0.0.1", "RAG_MODELS_DIR": str(REPO / "data" / "models"),
           "RAG_QUESTIONS_PER_MINUTE": "0"}  # every simulated reader is 127.0.0.1: no per-client budget
    subprocess.run([sys.executable, "-m", "rag", "index", "corpus"], cwd=REPO, env=env, check=True, capture_output=True)
    app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline or app.poll() is not None:
                    sys.exit("the app did not start")
                time.sleep(1)
        from gradio_client import Client

        peak = [0.0]
        stop = threading.Event()

        def watch_memory():
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss_mb(app.pid))
                time.sleep(0.2)

        threading.Thread(target=watch_memory, daemon=True).start()
        print(f"backend {args.llm}; app on {url}")
        print(f"{'readers':>7} {'requests':>8} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'errors':>6} "
              f"{'peak MB':>8} {'fairness':>8}")
        for readers in args.readers:
            peak[0] = tree_rss_mb(app.pid)
            latencies, errors, per_reader = [], [], {}

            def reader(index: int, latencies=latencies, errors=errors, per_reader=per_reader):
                client = Client(url, verbose=False)
                for i in range(args.questions_per_reader):
                    question = QUESTIONS[(index + i) % len(QUESTIONS)]
                    started = time.perf_counter()
                    job = client.submit(question, api_name="/ask")
                    try:
                        result = job.result(timeout=args.timeout)
                        if "error" in result:
                            errors.append(result["error"])
                        else:
                            latencies.append(time.perf_counter() - started)
                            per_reader.setdefault(index, []).append(latencies[-1])
                    except Exception as exc:  # a timeout or a failed request counts as an error
                        errors.append(repr(exc))

            started = time.perf_counter()
            with ThreadPoolExecutor(readers) as pool:
                list(pool.map(reader, range(readers)))
            elapsed = time.perf_counter() - started
            total = readers * args.questions_per_reader
            p95 = sorted(latencies)[math.ceil(0.95 * len(latencies)) - 1] if latencies else float("nan")  # nearest rank
            p50 = statistics.median(latencies) if latencies else float("nan")
            # Fairness: the slowest reader's mean wait over the fastest one's (1.0 = everyone waited alike).
            means = [statistics.mean(v) for v in per_reader.values()]
            fairness = max(means) / min(means) if means else float("nan")
            print(f"{readers:>7} {total:>8} {total / elapsed:>7.2f} {p50:>7.2f} {p95:>7.2f} {max(latencies, default=0):>7.2f} "
                  f"{len(errors):>6} {peak[0]:>8.0f} {fairness:>8.2f}")
            for error in errors[:3]:
                print(f"        error: {error}")
        stop.set()
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
