"""The Admin tab (operators): list, add (upload or URL), remove and re-index articles, and see
every source indexed so far — all through ``rag.web.admin``, behind the admin password."""

from __future__ import annotations

import logging

import gradio as gr

from rag.ingest.index import IndexBusyError, IndexLockLostError
from rag.ingest.load import SUPPORTED_SUFFIXES
from rag.web.admin import Admin, AdminError
from rag.web.limits import LoginThrottle
from rag.web.protected import password_guarded

log = logging.getLogger(__name__)


def build_admin_tab(admin: Admin, throttle: LoginThrottle) -> None:
    """Operators: list, add (upload or URL), remove and re-index articles. Password on every call."""
    columns = ["doc_id", "title", "date", "chunks", "indexed_at", "summary", "source"]
    source_columns = ["source", "kind", "checked_at", "result"]

    def table(password: str):
        rows = admin.articles(password)
        ready = sum(1 for r in rows if r.get("summary", "").startswith("ready"))
        counts = (f"Summaries: **{ready} ready**, **{len(rows) - ready} pending** (prepared in the background, "
                  "between readers' questions)") if rows else ""
        return ([[r.get(c, "") for c in columns] for r in rows], gr.update(choices=[r["doc_id"] for r in rows]),
                [[r[c] for c in source_columns] for r in admin.sources(password)], counts)

    def guarded(action):
        return password_guarded(action, throttle, "admin", (AdminError, IndexBusyError, IndexLockLostError))

    with gr.Tab("Admin", elem_id="admin-tab"):
        password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
        unlock = gr.Button("Show articles", elem_id="admin-unlock")
        summaries = gr.Markdown("", elem_id="admin-summaries")
        articles = gr.Dataframe(headers=columns, interactive=False, elem_id="admin-articles", wrap=True)
        with gr.Row():
            files = gr.File(label="Upload articles (.txt .md .html .pdf .docx .odt)", file_count="multiple",
                            file_types=sorted(SUPPORTED_SUFFIXES), elem_id="admin-files")
            urls = gr.Textbox(label="…or paste URLs of pages or RSS/Atom feeds, one per line", lines=4,
                              elem_id="admin-urls")
        add = gr.Button("Add and index", variant="primary", elem_id="admin-add")
        with gr.Row():
            reindex = gr.Button("Re-index everything", elem_id="admin-reindex")
            recheck = gr.Button("Check feeds for new entries", elem_id="admin-recheck")
        with gr.Row():
            # Custom values allowed so the API can remove by doc_id without first listing in that session;
            # unknown ids are reported as "0 chunks" by rag.admin.
            to_remove = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Articles to remove",
                                    elem_id="admin-remove-choice")
            remove = gr.Button("Remove", variant="stop", elem_id="admin-remove")
        # Plain text: results quote remote text (HTTP reason phrases, feed links, file names).
        result = gr.Textbox(label="Result", interactive=False, lines=2, max_lines=20, elem_id="admin-result")
        gr.Markdown("#### Sources, feeds and watched folders (`rag index … --watch`), last checked first")
        sources = gr.Dataframe(headers=source_columns, interactive=False, elem_id="admin-sources", wrap=True)

        def progress_of(progress: gr.Progress):
            def wrap(items, total):
                # A generator, because Gradio's tracked iterable raises IndexError (not StopIteration)
                # when asked again after the end — which LangChain's batching does.
                yield from progress.tqdm(items, total=total, desc="embedding and writing")
            return wrap

        def do_add(pw, uploaded, pasted, progress=gr.Progress()):
            summary = admin.index(pw, [f if isinstance(f, str) else f.name for f in (uploaded or [])], pasted,
                                  progress=progress_of(progress))
            failures = "".join(f"\n- {source}: {reason}" for source, reason in summary.failed)
            return (f"Indexed: {summary.line()}{failures}", *table(pw))

        def do_reindex(pw, progress=gr.Progress()):
            summary = admin.reindex_all(pw, progress=progress_of(progress))
            return (f"Re-indexed: {summary.line()}", *table(pw))

        def do_recheck(pw, progress=gr.Progress()):
            summary = admin.recheck_feeds(pw, progress=progress_of(progress))
            failures = "".join(f"\n- {source}: {reason}" for source, reason in summary.failed)
            return (f"Feeds checked: {summary.line()}{failures}", *table(pw))

        def do_remove(pw, doc_ids):
            removed = admin.remove(pw, doc_ids)
            return ("Removed: " + ", ".join(f"{d} ({n} chunks)" for d, n in removed.items()), *table(pw))

        listed = [articles, to_remove, sources, summaries]
        unlock.click(guarded(table), [password], listed, api_name="admin_list")
        add.click(guarded(do_add), [password, files, urls], [result, *listed], api_name="admin_add")
        reindex.click(guarded(do_reindex), [password], [result, *listed], api_name="admin_reindex")
        recheck.click(guarded(do_recheck), [password], [result, *listed], api_name="admin_recheck_feeds")
        remove.click(guarded(do_remove), [password, to_remove], [result, *listed], api_name="admin_remove")
