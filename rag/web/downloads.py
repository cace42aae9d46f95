"""Files the app hands a browser to download (a conversation's Markdown, the unanswered questions
as a question set). Gradio serves a copy from its cache; the file we write lives in a folder
private to this process (``mkdtemp``: mode 0700, an unpredictable name, so no other local user can
plant or read anything in it), each file 0600. Files older than ``keep_s`` are deleted as new ones
are written, and the folder when the process exits — so an export never outlives the question log
it came from, and nothing is left under ``RAG_DATA_DIR`` (with all state on PostgreSQL, a local file
would be a second copy that no retention setting reaches).

The folder is under the system's temp directory: the one place besides Gradio's upload folder from
which Gradio (with its own path check on, ``rag.web.server``) will return a file."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path


class Downloads:
    def __init__(self, keep_s: int = 3600) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="policy-desk-downloads-"))
        self.keep_s = keep_s
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)

    def write(self, stem: str, suffix: str, text: str) -> str:
        """Write ``text`` to a new file named ``<stem>-<time>-<random><suffix>``; returns its path."""
        self.prune()
        name = f"{stem}-{time.strftime('%Y-%m-%d-%H%M%S')}-{uuid.uuid4().hex[:8]}{suffix}"
        fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        return str(self.folder / name)

    def prune(self) -> None:
        """Delete old files: regular files directly in the folder only (never through a link)."""
        cutoff = time.time() - self.keep_s
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)
