"""Operators' actions for the web app's Admin tab: the same indexing code as the CLI, behind a password.

Uploads are checked before anything is written: only article types, under the size limit, with
names reduced to a safe file name (no ``../``). They are kept in the records database
(``rag.ingest.uploads``: on several machines, every machine can re-index and remove them) with a
working copy under ``RAG_DATA_DIR/uploads`` that indexing reads.
"""

from __future__ import annotations

import hmac
from functools import cached_property
from pathlib import Path

from rag.ingest.index import IndexSummary, open_record_manager, remove_articles, run_indexing
from rag.ingest.load import SUPPORTED_SUFFIXES, is_url, safe_doc_id
from rag.ingest.uploads import UploadStore


class AdminError(Exception):
    pass


class WrongPassword(Exception):
    """A wrong or missing admin/staff password: the web app counts these per client (rag.web.limits)."""


class WrongAdminPassword(WrongPassword, AdminError):
    pass


def password_set(secret) -> bool:
    """Is the ``RAG_<ROLE>_PASSWORD`` secret set (and not empty)? Its features exist only then."""
    return secret is not None and bool(secret.get_secret_value())


def check_password(secret, given: str | None, role: str, disabled: type[Exception], wrong: type[WrongPassword]) -> None:
    """Constant-time check of ``given`` against the ``RAG_<ROLE>_PASSWORD`` secret."""
    if not password_set(secret):
        raise disabled(f"the {role} features are disabled (RAG_{role.upper()}_PASSWORD is not set)")
    if not hmac.compare_digest(secret.get_secret_value().encode(), (given or "").encode()):
        raise wrong(f"wrong {role} password")


class Admin:
    def __init__(self, components) -> None:
        self.components = components
        self.settings = components.settings
        self.uploads = self.settings.data_dir / "uploads"

    @cached_property
    def stored_uploads(self) -> UploadStore:
        records = open_record_manager(self.settings)
        return UploadStore(records.engine, records.namespace)

    @property
    def enabled(self) -> bool:
        return password_set(self.settings.admin_password)

    def check(self, password: str | None) -> None:
        """Every admin action calls this first, UI and API alike."""
        check_password(self.settings.admin_password, password, "admin", AdminError, WrongAdminPassword)

    def articles(self, password: str) -> list[dict]:
        """The indexed articles, each with its summary's state: "ready (method)", or "pending" while
        the app prepares it (``rag.answer.summary.BackgroundSummaries``)."""
        self.check(password)
        try:
            rows = self.components.articles()
        except Exception:  # no index yet
            return []
        try:
            versions, fingerprints = self.components.summaries.versions(), self.components.fingerprints()
        except Exception:  # the records database is down: the list still shows
            versions, fingerprints = {}, {}
        for row in rows:
            fingerprint, method = versions.get(row["doc_id"], ("", ""))
            row["summary"] = f"ready ({method})" if fingerprint and fingerprint == fingerprints.get(row["doc_id"]) \
                else "pending"
        return rows

    def accept_uploads(self, password: str, files: list[str]) -> list[str]:
        """Copy uploaded temp files into the uploads folder; returns their new paths."""
        self.check(password)
        accepted = []
        limit = self.settings.max_upload_mb * 1024 * 1024
        for temp in files or []:
            source = Path(temp)
            name = Path(source.name).name  # never a path: "../x" becomes "x"
            suffix = Path(name).suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES:
                raise AdminError(f"{name}: only {', '.join(sorted(SUPPORTED_SUFFIXES))} files can be added")
            if source.stat().st_size > limit:
                raise AdminError(f"{name}: larger than {self.settings.max_upload_mb} MB")
            target = self.uploads / f"{safe_doc_id(Path(name).stem)}{suffix}"
            data = source.read_bytes()
            if not accepted:  # this machine's folder becomes the database's working copy first
                self.stored_uploads.sync(self.uploads)
            self.stored_uploads.put(target.name, data)  # every machine's from here
            self.uploads.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # a link planted under that name is replaced, never written through
            target.write_bytes(data)
            accepted.append(str(target))
        return accepted

    def index(self, password: str, files: list[str], urls: str, progress=None) -> IndexSummary:
        self.check(password)
        sources = self.accept_uploads(password, files)
        for line in (urls or "").splitlines():
            line = line.strip()
            if not line:
                continue
            if not is_url(line):
                raise AdminError(f"not an http(s) URL: {line[:100]}")
            sources.append(line)
        if not sources:
            raise AdminError("choose files to upload or paste URLs first")
        return run_indexing(self.components, sources, progress=progress)

    def reindex_all(self, password: str, progress=None) -> IndexSummary:
        """Re-index the corpus folder and every upload (unchanged articles are skipped)."""
        self.check(password)
        self.stored_uploads.sync(self.uploads)  # uploads made (or removed) through other machines too
        has_uploads = any(not path.name.startswith(".") for path in self.uploads.iterdir())
        sources = [str(self.settings.corpus_dir)] + ([str(self.uploads)] if has_uploads else [])
        return run_indexing(self.components, sources, progress=progress)

    def sources(self, password: str) -> list[dict]:
        """Every source indexed so far (files, folders, pages, feeds, watched folders), with when
        it was last checked and what that run did; most recent first."""
        self.check(password)
        from rag.ingest.feeds import SourceLog

        records = open_record_manager(self.settings)
        return SourceLog(records.engine, records.namespace).sources()

    def recheck_feeds(self, password: str, progress=None) -> IndexSummary:
        """Read every feed again: new and updated entries are indexed, unchanged ones skipped."""
        feeds = [row["source"] for row in self.sources(password) if row["kind"] == "feed"]
        if not feeds:
            raise AdminError("no feeds yet: paste a feed's URL above and add it")
        return run_indexing(self.components, feeds, progress=progress)

    def remove(self, password: str, doc_ids: list[str]) -> dict[str, int]:
        """Remove indexed articles and their uploaded files. Ids come from the browser, so each must
        be an indexed article's (or an upload's) id, and only files directly inside the uploads
        folder are ever deleted."""
        self.check(password)
        if not doc_ids:
            raise AdminError("choose articles to remove")
        from rag.ingest.index import indexed_doc_ids, indexer_lock

        record_manager = open_record_manager(self.settings)
        uploads = self._uploads_by_id()
        known = set(indexed_doc_ids(record_manager)) | set(uploads)
        unknown = [d for d in doc_ids if d not in known or d != safe_doc_id(d)]
        if unknown:
            raise AdminError("no such article: " + ", ".join(repr(d[:80]) for d in unknown[:5]))
        with indexer_lock(self.settings, wait=False):
            removed = remove_articles(doc_ids, store=self.components.store(), record_manager=record_manager)
        # An uploaded file would come back on the next re-index (on any machine): its stored copy goes too.
        removing = set(doc_ids)
        self.stored_uploads.forget([name for name in self.stored_uploads.names() if Path(name).stem in removing])
        for doc_id in doc_ids:
            for upload in uploads.get(doc_id, []):
                upload.unlink(missing_ok=True)
        return removed

    def _uploads_by_id(self) -> dict[str, list[Path]]:
        """Uploads by doc id: the stored ones (wherever uploaded) and the files directly inside this
        machine's uploads folder (symlinks leading out of it excluded)."""
        found: dict[str, list[Path]] = {}
        for name in self.stored_uploads.names():
            found.setdefault(Path(name).stem, [])
        if not self.uploads.is_dir():
            return found
        root = self.uploads.resolve()
        for path in self.uploads.iterdir():
            if path.is_file() and not path.name.startswith(".") and path.resolve().parent == root:
                found.setdefault(path.stem, []).append(path)
        return found
