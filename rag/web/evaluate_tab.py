"""The Evaluate tab (staff): run question sets, read and compare reports, explain answers,
review readers' feedback — all through ``rag.web.staff``, behind the staff password."""

from __future__ import annotations

import html
import logging

import gradio as gr

from rag.web.limits import LoginThrottle
from rag.web.protected import password_guarded
from rag.web.staff import Staff, StaffError

log = logging.getLogger(__name__)


def build_evaluate_tab(staff: Staff, throttle: LoginThrottle) -> None:
    """Staff: run question sets with chosen settings, read and compare reports, review feedback."""

    def guarded(action):
        return password_guarded(action, throttle, "staff", (StaffError, LookupError, ValueError))

    def framed(report_html: str) -> str:  # the report is a whole page: show it in a sandboxed frame
        return (f'<iframe sandbox="" style="width:100%;height:720px;border:0" '
                f'srcdoc="{html.escape(report_html, quote=True)}"></iframe>')

    with gr.Tab("Evaluate", elem_id="evaluate-tab"):
        password = gr.Textbox(label="Staff password", type="password", elem_id="staff-password")
        with gr.Row():
            question_set = gr.Dropdown(staff.question_sets(), label="Question set", elem_id="eval-set")
            backend = gr.Dropdown(["", "local", "openai", "extractive"], value="", label="LLM backend (blank: current)")
            mode = gr.Dropdown(["", "hybrid", "dense", "bm25"], value="", label="Retrieval (blank: current)")
            top_k = gr.Number(value=None, precision=0, label="Passages (blank: current)")
        run_button = gr.Button("Run evaluation", variant="primary", elem_id="eval-run")
        with gr.Row():
            run_a = gr.Number(precision=0, label="Run A", elem_id="eval-run-a")
            run_b = gr.Number(precision=0, label="Run B", elem_id="eval-run-b")
            compare_button = gr.Button("Compare", elem_id="eval-compare")
            list_button = gr.Button("List runs", elem_id="eval-list")
        runs_table = gr.Dataframe(headers=["run", "when", "set", "llm", "precision", "correct", "refused", "hit@5",
                                           "trust"],
                                  interactive=False, elem_id="eval-runs")
        report = gr.HTML(elem_id="eval-report")
        gr.Markdown("### Why did it answer (or refuse) that?")
        with gr.Row():
            trace_run = gr.Number(precision=0, label="Run", elem_id="trace-run")
            trace_question = gr.Textbox(label="Question id", elem_id="trace-question")
            trace_button = gr.Button("Explain", elem_id="trace-explain")
        # Plain text in a textbox: the trace quotes articles, which must never render as markup.
        trace_text = gr.Textbox(label="Trace", lines=12, max_lines=80, interactive=False, elem_id="trace-text")
        gr.Markdown("### Readers' feedback (unreviewed, thumbs-down first)")
        feedback_button = gr.Button("Show feedback", elem_id="feedback-show")
        feedback_table = gr.Dataframe(headers=["id", "rating", "question", "answer", "comment", "when"],
                                      interactive=False, wrap=True, elem_id="feedback-table")
        with gr.Row():
            reviewed_id = gr.Number(precision=0, label="Feedback id", elem_id="feedback-id")
            reviewed_button = gr.Button("Mark reviewed", elem_id="feedback-reviewed")
            explain_feedback = gr.Button("Explain (ask again with the trace)", elem_id="feedback-explain")

        gr.Markdown("### Unanswered questions: what readers asked that the articles could not answer, by meaning")
        with gr.Row():
            gaps_button = gr.Button("Show unanswered questions", elem_id="gaps-show")
            gaps_export = gr.Button("Export as question set", elem_id="gaps-export")
        gaps_table = gr.Dataframe(headers=["id", "questions", "representative question", "first asked", "last asked",
                                           "closest article", "refused because"],
                                  interactive=False, wrap=True, elem_id="gaps-table")
        gaps_chart = gr.HTML(elem_id="gaps-chart")
        gaps_file = gr.File(label="Question set (JSONL, answerable: false)", interactive=False, elem_id="gaps-file")
        with gr.Row():
            gap_id = gr.Number(precision=0, label="Group id (first column)", elem_id="gaps-id")
            gap_dismiss = gr.Button("Dismiss group", elem_id="gaps-dismiss")

        def do_run(pw, chosen, llm, retrieval, k, progress=gr.Progress()):
            overrides = {"llm": llm or None, "retrieval_mode": retrieval or None, "top_k": int(k) if k else None}
            run_id, html_report = staff.run(pw, chosen, overrides,
                                            progress=lambda rows: progress.tqdm(rows, desc="questions"))
            return framed(html_report), staff.run_list(pw)

        run_button.click(guarded(do_run), [password, question_set, backend, mode, top_k], [report, runs_table],
                         api_name="eval_run")
        def do_compare(pw, a, b):
            return framed(staff.compare(pw, a, b))

        compare_button.click(guarded(do_compare), [password, run_a, run_b],
                             report, api_name="eval_compare")
        list_button.click(guarded(staff.run_list), [password], runs_table, api_name="eval_list")
        feedback_button.click(guarded(staff.feedback_queue), [password], feedback_table, api_name="feedback_queue")

        def do_review(pw, feedback_id):
            staff.mark_reviewed(pw, feedback_id)
            return staff.feedback_queue(pw)

        reviewed_button.click(guarded(do_review), [password, reviewed_id], feedback_table, api_name="feedback_reviewed")
        trace_button.click(guarded(staff.explain_result), [password, trace_run, trace_question], trace_text,
                           api_name="eval_explain")
        explain_feedback.click(guarded(staff.explain_feedback), [password, reviewed_id], trace_text,
                               api_name="feedback_explain")
        gaps_button.click(guarded(staff.gaps_view), [password], [gaps_table, gaps_chart], api_name="gaps_list")
        gaps_export.click(guarded(staff.gaps_export), [password], gaps_file, api_name="gaps_export")

        def do_dismiss(pw, group_id):
            if group_id is None:
                raise ValueError("give a group's id (the first column)")
            staff.dismiss_gap(pw, group_id)
            return staff.gaps_view(pw)

        gap_dismiss.click(guarded(do_dismiss), [password, gap_id], [gaps_table, gaps_chart], api_name="gaps_dismiss")
