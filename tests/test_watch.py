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
from rag.index import list_articles

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


def test_watch_indexes_added_changed_and_deleted_files_until_ctrl_c(settings, corpus_dir, embedding_model):
    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "RAG_LLM": "extractive"}
    process = subprocess.Popen([sys.executable, "-m", "rag", "index", str(corpus_dir), "--watch"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(timeout=60)
    assert code == 0 and out.wait_for("stopped watching", 0, timeout=10)
