"""`python -m rag index FOLDER --watch`, run as a reader's operator would: a real process, real
file events (inotify through watchfiles), the index read back from the same data folder."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.components import Components
from rag.ingest.index import list_articles

from .conftest import REPO

pytestmark = pytest.mark.slow


class Lines:
    """The watcher's stdout, read in a thread so the test can wait for the next line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        threading.Thread(target=lambda: [self.lines.append(line.rstrip()) for line in stream], daemon=True).start()

    def wait_for(self, text: str, after: int, timeout: float = 120) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, line in enumerate(self.lines[after:], after):
                if text in line:
                    return i + 1
            time.sleep(0.2)
        pytest.fail(f"no line with {text!r} after line {after} in {timeout} s: {self.lines}")


def test_watch_indexes_added_changed_and_deleted_files_until_ctrl_c(settings, corpus_dir, embedding_model, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    (private / "keys.md").write_text("# Keys\n\nThe admin password is hunter2-hunter2.\n", encoding="utf-8")
    (corpus_dir / "keys.md").symlink_to(private / "keys.md")  # there at the first scan: refused
    # PYTHONFAULTHANDLER: if the watcher does not stop, SIGABRT makes it print every thread's stack.
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_LLM": "extractive", "PYTHONFAULTHANDLER": "1"}
    errors = tmp_path / "watcher-stderr.txt"
    process = subprocess.Popen([sys.executable, "-m", "rag", "index", str(corpus_dir), "--watch"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=errors.open("w"), text=True)
    out = Lines(process.stdout)
    try:
        seen = out.wait_for("watching", 0)
        assert any("3 added" in line for line in out.lines), out.lines

        def titles() -> set[str]:
            return {row["title"] for row in list_articles(Components(settings, embedding_model=embedding_model).store())}

        (corpus_dir / "ferry.md").write_text("# Night Ferry Returns\n\nDate: 2025-03-02\n\nThe night ferry returns "
                                             "on 1 May with four sailings a week.\n", encoding="utf-8")
        seen = out.wait_for("1 added", seen)
        assert "Night Ferry Returns" in titles()

        (corpus_dir / "ferry.md").write_text("# Night Ferry Returns Early\n\nDate: 2025-03-04\n\nThe night ferry "
                                             "returns on 20 April with five sailings a week.\n", encoding="utf-8")
        seen = out.wait_for("1 updated", seen)
        assert "Night Ferry Returns Early" in titles()

        (corpus_dir / "ferry.md").unlink()
        (corpus_dir / ".ferry.md.swp").write_text("editor noise", encoding="utf-8")  # hidden: ignored
        seen = out.wait_for("1 removed", seen)
        assert titles() == {"Harbour Toll Reform Passes", "Public Library Extends Weekend Hours",
                            "Solar Panels for Every School"}

        # A file that names its own source URL is still removed with the file.
        (corpus_dir / "tides.md").write_text("# Tide Tables Published\n\nDate: 2025-03-05\nSource: "
                                             "https://harbour.example/tides\n\nThe harbour office published the "
                                             "tide tables for the summer.\n", encoding="utf-8")
        seen = out.wait_for("1 added", seen)
        assert "Tide Tables Published" in titles()
        (corpus_dir / "tides.md").unlink()
        seen = out.wait_for("1 removed", seen)
        assert "Tide Tables Published" not in titles()

        # A link leading out of the folder, added while watching: refused, never read.
        (corpus_dir / "more-keys.md").symlink_to(private / "keys.md")
        (corpus_dir / "buoys.md").write_text("# Buoys Replaced\n\nFour buoys were replaced.\n", encoding="utf-8")
        seen = out.wait_for("1 added", seen)
        assert "Keys" not in titles() and "Buoys Replaced" in titles()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            masks = signal_masks(process.pid)
            process.send_signal(signal.SIGABRT)
            process.wait(timeout=30)
            pytest.fail(f"the watcher did not stop within 60 s of Ctrl-C ({masks}); its threads:\n"
                        f"{errors.read_text()[-8000:]}")
    assert code == 0 and out.wait_for("stopped watching", 0, timeout=10)


def signal_masks(pid: int) -> str:
    """The process's ignored, blocked and pending signals (hex masks from /proc)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return ", ".join(line.replace("\t", " ") for line in status if line.startswith(("SigIgn", "SigBlk", "ShdPnd", "SigPnd")))


def inherit_ctrl_c_ignored_and_blocked() -> None:
    """What a script's background job, or a parent holding signals blocked, hands down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_watch_stops_on_ctrl_c_or_kill_even_if_started_with_them_ignored(settings, corpus_dir, stop):
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_LLM": "extractive"}
    process = subprocess.Popen([sys.executable, "-m", "rag", "index", str(corpus_dir), "--watch"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=inherit_ctrl_c_ignored_and_blocked)
    out = Lines(process.stdout)
    try:
        out.wait_for("watching", 0)
        process.send_signal(stop)
        code = process.wait(timeout=30)
    finally:
        process.kill()
    assert code == 0 and out.wait_for("stopped watching", 0, timeout=10)
