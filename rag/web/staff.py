"""Staff actions for the web app's Evaluate tab: run question sets, read and compare reports,
review readers' feedback. Behind ``RAG_STAFF_PASSWORD``; every call checks it (UI and API)."""

from __future__ import annotations

import threading
from pathlib import Path

from rag.db import engine_for
from rag.quality import evaluate
from rag.quality.report import comparison_report, run_report
from rag.quality.runs import RunStore, compare
from rag.web.admin import WrongPassword, check_password, password_set
from rag.web.downloads import Downloads
from rag.web.feedback import FeedbackStore, UnansweredLog


class StaffError(Exception):
    pass


class WrongStaffPassword(WrongPassword, StaffError):
    pass


class Staff:
    def __init__(self, components, feedback: FeedbackStore, question_set_dirs: list[Path],
                 unanswered: UnansweredLog | None = None, downloads: Downloads | None = None) -> None:
        self.components = components
        self.settings = components.settings
        self.feedback = feedback
        self.unanswered = unanswered
        self.runs = RunStore(engine_for(self.settings.state_db_url("eval"), self.settings.db_timeouts))
        self.question_set_dirs = question_set_dirs
        self.downloads = downloads or Downloads()
        self._shown: dict[int, list[int]] = {}  # representative question id -> the ids of its group, as shown
        self._shown_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return password_set(self.settings.staff_password)

    def check(self, password: str | None) -> None:
        check_password(self.settings.staff_password, password, "staff", StaffError, WrongStaffPassword)

    def question_sets(self) -> list[str]:
        """The sets staff may run, by name ("folder/file.jsonl"): the page and its public config
        show these names, never a server path."""
        return list(self._question_set_paths())

    def _question_set_paths(self) -> dict[str, Path]:
        found = {}
        for folder in self.question_set_dirs:
            if folder.is_dir():
                found.update({f"{folder.name}/{p.name}": p for p in sorted(folder.glob("*.jsonl"))})
        return found

    def run(self, password: str, question_set: str, overrides: dict, progress=None) -> tuple[int, str]:
        """Run a named question set with settings overrides; returns (run id, HTML report)."""
        self.check(password)
        path = self._question_set_paths().get(question_set)
        if path is None:
            raise StaffError("choose one of the listed question sets")
        from rag.components import Components

        settings = self.settings.model_copy(update={k: v for k, v in overrides.items() if v not in (None, "")})
        parts = Components(settings, embedding_model=self.components.embedding_model, live=self.components.live_store())
        rows = evaluate.load_question_set(path)
        results = evaluate.run(parts.pipeline, rows, progress)
        summary = evaluate.summarize(results)
        summary["llm"] = parts.pipeline.generator.name
        run_id = self.runs.save(str(path), settings.public(), summary, results)
        return run_id, self.report(password, run_id)

    def report(self, password: str, run_id: int) -> str:
        self.check(password)
        run, results = self.runs.load(int(run_id))
        return run_report(run, results)

    def compare(self, password: str, run_a: int, run_b: int) -> str:
        self.check(password)
        comparison = compare(self.runs, int(run_a), int(run_b))
        return comparison_report(comparison, self.runs.load(int(run_a))[1], self.runs.load(int(run_b))[1])

    def run_list(self, password: str) -> list[list]:
        self.check(password)
        return [[r["id"], r["created_at"], Path(r["question_set"]).name, r["summary"].get("llm"),
                 r["summary"].get("answered_precision"), r["summary"].get("correct"), r["summary"].get("refused_unanswerable"), r["summary"].get("hit@5"),
                 r["summary"].get("trust_score")]
                for r in self.runs.runs()]

    def feedback_queue(self, password: str) -> list[list]:
        """Unreviewed feedback, thumbs-down first."""
        self.check(password)
        return [[r["id"], {1: "👍", -1: "👎"}.get(r["rating"], ""), r["question"], r["answer"], r["comment"],
                 r["created_at"]] for r in self.feedback.rows(only_unreviewed=True)]

    def explain_result(self, password: str, run_id: int, question_id: str) -> str:
        """The stored trace of one question of an evaluation run (rag.answer.explain), as text."""
        self.check(password)
        from rag.answer.explain import format_trace

        if run_id is None or not str(question_id or "").strip():
            raise LookupError("give a run id and a question id (List runs shows the runs)")
        _run, results = self.runs.load(int(run_id))
        found = next((r for r in results if str(r["id"]) == str(question_id).strip()), None)
        if found is None:
            raise LookupError(f"run {run_id} has no question {str(question_id)[:40]!r}")
        if not found.get("trace"):
            return "This run was stored before traces were kept: run the question set again to see one."
        return f"{found['id']}: {found['question']}\n\n{format_trace(found['trace'])}"

    def explain_feedback(self, password: str, feedback_id: int) -> str:
        """A reader's rated answer, asked again now with the whole trace (the reader's own run
        kept no contexts: only what feedback needs is stored)."""
        self.check(password)
        from rag.answer.explain import format_trace, trace

        if feedback_id is None:
            raise LookupError("give a feedback id (Show feedback lists them)")
        row = self.feedback.row(int(feedback_id))
        if row is None:
            raise LookupError(f"no feedback with id {feedback_id}")
        answer = self.components.pipeline.ask(row["question"])
        return (f"{row['question']}\nThe reader saw: {row['answer'][:300]}\nAsked again now, on the current index "
                f"and settings:\n\n{format_trace(trace(answer))}")

    def mark_reviewed(self, password: str, feedback_id: int) -> None:
        self.check(password)
        self.feedback.mark_reviewed(int(feedback_id))

    # --- what readers asked that the articles could not answer (rag.quality.gaps) ------------------

    def gaps(self, password: str, days: int | None = None) -> list:
        """The kept refused questions, grouped by meaning (largest group first)."""
        self.check(password)
        from rag.quality.gaps import group_questions

        if self.unanswered is None:
            return []
        groups = group_questions(self.unanswered.rows(days), self.components.embedding_model)
        # What staff were shown: Dismiss removes exactly these questions, without grouping again.
        with self._shown_lock:
            self._shown.update({g.representative_id: [q["id"] for q in g.questions] for g in groups})
            while len(self._shown) > 10_000:
                self._shown.pop(next(iter(self._shown)))
        return groups

    def gaps_view(self, password: str) -> tuple[list[list], str]:
        """The groups as table rows (the first column is the id to dismiss a group by) and the weekly
        counts as a bar chart (an inline PNG)."""
        import base64

        from rag.quality.gaps import weekly_plot_png
        from rag.schema import REFUSAL_KINDS

        gaps = self.gaps(password)
        rows = [[g.representative_id, g.count, g.representative, g.first_seen, g.last_seen, g.closest_article,
                 ", ".join(f"{REFUSAL_KINDS.get(kind, kind)}: {n}" for kind, n in g.refusal_kinds.items())]
                for g in gaps]
        if not gaps:
            return rows, "<p>No unanswered questions are kept" + (
                "." if self.settings.question_log_days > 0 else " (RAG_QUESTION_LOG_DAYS=0).") + "</p>"
        chart = base64.b64encode(weekly_plot_png(gaps)).decode()
        return rows, f'<img alt="unanswered questions per week" src="data:image/png;base64,{chart}">'

    def gaps_export(self, password: str) -> str:
        """The grouped questions as an evaluation set (JSONL, answerable: false), written for download
        only (``rag.web.downloads``: pruned after an hour, never kept under RAG_DATA_DIR); returns its path."""
        from rag.quality.gaps import as_question_set

        return self.downloads.write("unanswered", ".jsonl", as_question_set(self.gaps(password)))

    def dismiss_gap(self, password: str, group_id: int) -> None:
        """Dismiss the group staff were shown under question ``group_id`` (the table's first column):
        the questions it held then, not a new grouping (which would embed the whole log again)."""
        self.check(password)
        with self._shown_lock:
            ids = self._shown.pop(int(group_id), None)
        if ids is None:
            raise LookupError(f"no group shown under question {group_id} (show the unanswered questions again)")
        self.unanswered.dismiss(ids)
