"""Files added through the Admin tab, kept in the records database (``RAG_RECORD_DB_URL``) — bytes
and all — so that on several machines sharing PostgreSQL and a Chroma server, an article
uploaded through machine A can be re-indexed, viewed and removed from machine B.

The database holds the originals; each machine's ``RAG_DATA_DIR/uploads`` is a working copy that
indexing reads (``materialise`` writes what is missing or different). Each file is at most
``RAG_MAX_UPLOAD_MB``, as the Admin tab checks before storing it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateTable

from rag.db import migrate, now

_UPLOADS = Table("uploaded_files", MetaData(), Column("namespace", String(200), primary_key=True),
                 Column("name", String(300), primary_key=True), Column("sha256", String(64), nullable=False),
                 Column("data", LargeBinary, nullable=False), Column("uploaded_at", String(40), nullable=False))
MIGRATIONS = [CreateTable(_UPLOADS, if_not_exists=True)]  # BLOB on SQLite, BYTEA on PostgreSQL


class UploadStore:
    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace
        migrate(engine, "uploads", MIGRATIONS)

    def put(self, name: str, data: bytes) -> None:
        """Store (or replace) the upload called ``name`` (a safe file name, ``rag.web.admin``)."""
        with self.engine.begin() as db:
            db.execute(text("DELETE FROM uploaded_files WHERE namespace = :ns AND name = :name"),
                       {"ns": self.namespace, "name": name})
            db.execute(_UPLOADS.insert().values(namespace=self.namespace, name=name, data=data, uploaded_at=now(),
                                                sha256=hashlib.sha256(data).hexdigest()))

    def names(self) -> dict[str, str]:
        """name → sha256 of every stored upload."""
        with self.engine.connect() as db:
            rows = db.execute(select(_UPLOADS.c.name, _UPLOADS.c.sha256).where(_UPLOADS.c.namespace == self.namespace))
            return dict(rows.fetchall())

    def forget(self, names: list[str]) -> None:
        with self.engine.begin() as db:
            for name in names:
                db.execute(text("DELETE FROM uploaded_files WHERE namespace = :ns AND name = :name"),
                           {"ns": self.namespace, "name": name})

    def sync(self, folder: Path) -> None:
        """Make ``folder`` (this machine's working copy) hold exactly the stored uploads. The first
        time, files already there (uploaded before the database kept them) are adopted; after
        that, a file the database no longer has was removed on some machine, and goes here too."""
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / ".kept-in-database"
        stored = self.names()
        local = [path for path in folder.iterdir() if not path.name.startswith(".")]
        if not marker.exists():
            for path in local:
                if path.name not in stored and path.is_file() and not path.is_symlink():
                    self.put(path.name, path.read_bytes())
            marker.touch()
            stored = self.names()
        for path in local:
            if path.name not in stored:
                path.unlink()
        self.materialise(folder)

    def materialise(self, folder: Path) -> list[Path]:
        """Write every stored upload into ``folder`` that is missing there or differs (one file's
        bytes in memory at a time); returns the files written."""
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, sha256 in self.names().items():
            target = folder / name
            if target.is_file() and not target.is_symlink() and _sha256(target) == sha256:
                continue
            with self.engine.connect() as db:
                data = db.execute(select(_UPLOADS.c.data).where(_UPLOADS.c.namespace == self.namespace,
                                                                _UPLOADS.c.name == name)).scalar()
            if data is None:  # removed from another machine meanwhile
                continue
            partial = target.with_name(f".{name}.partial")
            partial.write_bytes(data)
            target.unlink(missing_ok=True)  # a link planted under that name is replaced, never written through
            os.replace(partial, target)
            written.append(target)
        return written


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
