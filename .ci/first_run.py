"""The README's first command, as a new user runs it: `make run`, then one question through `/ask`.

Run by `.ci/run` on the clean clone after `make install` and before the test tools are installed,
so a runtime dependency that only a test tool brings in fails CI. Passes only when the served
answer comes from the default local model (not the extractive fallback) and cites a passage.

    .venv/bin/python .ci/first_run.py [--port 7860] [--timeout 1200]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Which Anthropic models were covered by the export controls?"
TEST_TOOLS = ("pytest", "playwright")


def fail(message: str, log: Path | None = None) -> None:
    print(f"first run FAILED: {message}", file=sys.stderr)
    if log and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print("--- last lines of `make run` ---\n" + "\n".join(tail), file=sys.stderr)
    sys.exit(1)


def wait_until_serving(url: str, process: subprocess.Popen, deadline: float, log: Path) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"`make run` exited with status {process.returncode} before serving", log)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    fail(f"nothing served on {url} within the time limit", log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--timeout", type=float, default=1200, help="seconds for install, index and model start")
    args = parser.parse_args()

    present = [tool for tool in TEST_TOOLS if importlib.util.find_spec(tool)]
    if present:
        message = f"test tools already installed ({', '.join(present)}): this run cannot prove the runtime install"
        if os.environ.get("CI"):
            fail(message)
        print(f"warning: {message}", file=sys.stderr)

    env = {**os.environ, "RAG_PORT": str(args.port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = Path(tempfile.mkstemp(prefix="make-run-", suffix=".log")[1])
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(["make", "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        url = f"http://127.0.0.1:{args.port}/"
        wait_until_serving(url, process, started + args.timeout, log)
        print(f"`make run` serving on {url} after {time.monotonic() - started:.0f} s")

        from gradio_client import Client

        result = Client(url, verbose=False).predict(QUESTION, api_name="/ask")
        print(f"Q: {QUESTION}\nA: {result.get('answer')}\n   llm={result.get('llm')} timings={result.get('timings')}")
        if result.get("refused") or not result.get("citations"):
            fail("the answer was refused or carries no citation", log)
        if not str(result.get("llm", "")).startswith("local/"):
            fail(f"answered by {result.get('llm')!r}, not the default local model", log)
        progress_lines = [line for line in log.read_text(errors="replace").splitlines() if "assembling" in line]
        print("\n".join(progress_lines[-3:]) or "(model already assembled: no progress lines)")
        print(f"first run OK: cited answer from {result['llm']} ({len(result['citations'])} citation(s))")
    finally:
        stop(process)
        log.unlink(missing_ok=True)


def stop(process: subprocess.Popen) -> None:
    """End `make run` and the app it started (one process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
