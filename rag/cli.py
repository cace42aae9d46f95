"""The command line: ``python -m rag index | summarize | ask | eval | gaps | docs | remove``.

Each command composes the pipeline (``rag.components``) and prints; no retrieval or prompting
logic lives here. User errors print one line ``error: …`` and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from rag.db import engine_for
from rag.ingest.progress import progress_bar, progress_over
from rag.logs import setup_logging
from rag.settings import Settings

log = logging.getLogger("rag")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    setup_logging("text", level)
    logging.getLogger("rag.ingest.ocr").setLevel(logging.INFO)  # a line per scanned page: each takes seconds
    try:
        settings = Settings(**dict(parse_overrides(args.set + getattr(args, "local_set", []))))
        if settings.log_format != "text":  # a log collector wants the events (an indexing run's) whatever -v says
            setup_logging(settings.log_format, level)
            logging.getLogger("rag.events").setLevel(logging.INFO)
        return args.handler(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every user-facing failure becomes one line
        if args.verbose:
            raise
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1


def describe(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"bad setting {'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
    return str(exc) or type(exc).__name__


def parse_overrides(pairs: list[str]) -> list[tuple[str, str]]:
    """``--set top_k=3`` → ("top_k", "3"): the same names as the RAG_* variables, lower-case."""
    overrides = []
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set takes NAME=VALUE, got {pair!r}")
        name, value = pair.split("=", 1)
        name = name.strip().lower().removeprefix("rag_")
        if name not in Settings.model_fields:
            raise ValueError(f"unknown setting {name!r}; see the Configuration table in README.md")
        overrides.append((name, value))
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Cited answers over a corpus of articles.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show tracebacks")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a setting for this run (e.g. --set llm=extractive); repeatable")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="index files, folders, URLs, .urls lists, .jsonl records (default: corpus/)")
    index.add_argument("paths", nargs="*", metavar="SOURCE")
    index.add_argument("--prune", action="store_true", help="remove indexed articles not among PATHS")
    index.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    index.add_argument("--wait", action="store_true", help="wait for another running indexer instead of failing")
    index.add_argument("--watch", action="store_true",
                       help="keep running: index files as they are added, changed or deleted under the folders given "
                            "(Ctrl-C stops)")
    index.set_defaults(handler=cmd_index)

    ask = commands.add_parser("ask", help="answer a question with cited passages")
    ask.add_argument("question", nargs="?")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--markdown", action="store_true",
                     help="print the answer as Markdown, citations as footnotes (as the web chat's download)")
    ask.add_argument("--explain", action="store_true",
                     help="after the answer, the whole trace: candidates and their ranks, the prompt, the model's raw "
                          "reply, the checker's decision on every sentence, timings")
    ask.add_argument("--batch", type=Path, metavar="FILE.jsonl", help="answer every {id, question} line; JSONL out")
    add_filter_arguments(ask)
    ask.set_defaults(handler=cmd_ask)

    evaluate = commands.add_parser("eval", help="run a question set; list, compare and report runs")
    evaluate.add_argument("file", type=Path, nargs="?")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--set", dest="local_set", action="append", default=[], metavar="NAME=VALUE",
                          help="settings for this run (e.g. --set top_k=3 --set llm=extractive)")
    evaluate.add_argument("--list", action="store_true", help="list stored runs")
    evaluate.add_argument("--compare", nargs=2, type=int, metavar=("RUN_A", "RUN_B"))
    evaluate.add_argument("--no-save", action="store_true", help="do not store the run")
    evaluate.add_argument("--judge", action="store_true",
                          help="add LLM-as-judge faithfulness/relevancy (model-judged) via the configured openai endpoint")
    evaluate.set_defaults(handler=cmd_eval)

    feedback = commands.add_parser("feedback", help="readers' feedback")
    feedback_actions = feedback.add_subparsers(required=True, metavar="ACTION")
    export = feedback_actions.add_parser("export", help="thumbs-down answers as a question set for review")
    export.add_argument("out", type=Path)
    export.add_argument("--all", action="store_true", help="include reviewed and thumbs-up items")
    export.set_defaults(handler=cmd_feedback_export)

    gaps = commands.add_parser("gaps", help="what readers asked that the articles could not answer, grouped by meaning")
    gaps.add_argument("--days", type=int, metavar="N", help="only questions of the last N days")
    gaps.add_argument("--json", action="store_true", help='print {"groups": [...]} (largest group first)')
    gaps.add_argument("--export", type=Path, metavar="FILE.jsonl",
                      help="also write the questions as an evaluation set (answerable: false)")
    gaps.set_defaults(handler=cmd_gaps)

    bench = commands.add_parser("bench", help="retrieval benchmarks")
    bench_kinds = bench.add_subparsers(required=True, metavar="KIND")
    beir = bench_kinds.add_parser("beir", help="a BEIR-format dataset: nDCG@10, MRR@10, Recall@100 per mode")
    beir.add_argument("folder", type=Path)
    beir.add_argument("--json", action="store_true")
    beir.set_defaults(handler=cmd_bench_beir)

    summarize = commands.add_parser("summarize", help="prepare a cited summary of every article that has none or "
                                                      "changed since (incremental, resumable)")
    summarize.add_argument("--json", action="store_true", help="print the run's counts as one JSON object")
    summarize.add_argument("--doc", action="append", default=[], metavar="DOC_ID", help="only these articles")
    summarize.set_defaults(handler=cmd_summarize)

    docs = commands.add_parser("docs", help="list indexed articles")
    docs.add_argument("--json", action="store_true")
    docs.set_defaults(handler=cmd_docs)

    remove = commands.add_parser("remove", help="remove articles from the index")
    remove.add_argument("doc_ids", nargs="+")
    remove.set_defaults(handler=cmd_remove)

    doctor = commands.add_parser("doctor", help="check the index, the databases and the model; exit 1 when "
                                                "something an answer needs is not ready (what to run first)")
    doctor.add_argument("--json", action="store_true", help="print the checks as one JSON object")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--doc", action="append", default=[], metavar="DOC_ID", help="only these articles")
    parser.add_argument("--from", dest="date_from", default="", metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", default="", metavar="YYYY-MM-DD")
    parser.add_argument("--all-dates", action="store_true",
                        help="ignore a period the question names ('in 2024'); by default it narrows the search")


def components(settings: Settings):
    from rag.components import Components

    return Components(settings)


# --- commands --------------------------------------------------------------------------------


def cmd_index(args, settings: Settings) -> int:
    from rag.ingest.embed import EmbeddingProcess

    sources = args.paths or [str(settings.corpus_dir)]
    if args.watch and not all(Path(s).exists() for s in sources):  # before any model loads
        raise ValueError("--watch takes files and folders, not URLs (feeds are re-read by running the index command again)")
    # Start loading the model in a child process first, so it loads while this one imports,
    # reads and chunks; if nothing changed, it is stopped unused. (An embeddings server needs none.)
    embedder = None if settings.embed_base_url else EmbeddingProcess(settings.embed_model, settings.embed_batch_size)
    try:
        from rag.ingest.index import run_indexing

        summary = run_indexing(components(settings), sources, prune=args.prune, rebuild=args.rebuild,
                               wait=args.wait, embeddings=embedder,
                               progress=progress_bar("embedding and writing", "chunks"),
                               load_progress=progress_bar("loading", "sources"),
                               report=lambda message: print(message, file=sys.stderr))
    finally:
        if embedder:
            embedder.close()
    print(f"indexed from {', '.join(sources)}: {summary.line()}", flush=True)
    if args.watch:
        return watch(settings, sources)
    return 1 if summary.failed else 0


def watch(settings: Settings, folders: list[str]) -> int:
    from rag.ingest.watch import watch_folders

    stop_on_ctrl_c_and_term()
    print(f"watching {', '.join(folders)} for changes (Ctrl-C stops)", flush=True)
    try:
        watch_folders(components(settings), folders,
                      report=lambda summary: print(f"{time.strftime('%H:%M:%S')} {summary.line()}"
                                                   + "".join(f"\n  skipped {s}: {r}" for s, r in summary.failed),
                                                   flush=True))
    except KeyboardInterrupt:
        pass
    print("stopped watching", flush=True)
    return 0


def stop_on_ctrl_c_and_term() -> None:
    """Make Ctrl-C (SIGINT) and ``kill``/``docker stop`` (SIGTERM) end a long-running command
    cleanly (``KeyboardInterrupt``), even if this process was started with SIGINT ignored or
    blocked — a background job of a script, or a parent that had it blocked, both inherited — which
    would otherwise leave a watcher running for ever."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def filters_from(args):
    from rag.answer.retrieve import Filters
    from rag.ingest.formats import normalise_date

    return Filters(doc_ids=tuple(args.doc), date_from=normalise_date(args.date_from) if args.date_from else "",
                   date_to=normalise_date(args.date_to) if args.date_to else "")


def cmd_ask(args, settings: Settings) -> int:
    from rag.answer.pipeline import QuestionError, clean_question
    from rag.quality.evaluate import load_question_set

    if args.batch is None:
        if args.question is None:
            raise ValueError('give a question: python -m rag ask "QUESTION"')
        clean_question(args.question, settings.max_question_chars)  # fail fast, before loading models
        pipeline = components(settings).pipeline
        answer = pipeline.ask(args.question, filters_from(args), infer_dates=False if args.all_dates else None)
        from rag.answer.explain import format_trace, trace

        if args.json:
            print(json.dumps({**answer.to_json(), **({"trace": trace(answer)} if args.explain else {})},
                             ensure_ascii=False))
            return 0
        if args.markdown:
            from rag.web.present import turn_markdown

            print(turn_markdown(answer, 1), end="")
        else:
            print(format_answer(answer))
        if args.explain:
            print("\n" + format_trace(trace(answer)))
        return 0
    rows = load_question_set(args.batch)
    pipeline = components(settings).pipeline
    failures = 0
    for row in rows:
        try:
            answer = pipeline.ask(row["question"], filters_from(args), id=str(row["id"]),
                                  infer_dates=False if args.all_dates else None)
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        except QuestionError as exc:
            failures += 1
            print(json.dumps({"id": row["id"], "question": row["question"], "error": str(exc)}), flush=True)
    return 1 if failures else 0


def format_answer(answer) -> str:
    from rag.schema import page_label
    from rag.web.present import closest_passages, opening_words, period_said

    lines = []
    if timeframe := answer.timeframe:
        hint = "; --all-dates to search every article" if timeframe.get("applied") else ""
        lines += [f"({period_said(timeframe)}{hint})", ""]
    lines += [answer.answer, ""]
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            excerpt = " ".join(c.text.split())
            pages = f", {page_label(c.page, c.page_end)}" if c.page else ""
            lines.append(f"  [{c.n}] {c.title} ({c.doc_id}{pages}): {excerpt[:200]}{'…' if len(excerpt) > 200 else ''}")
    elif answer.refused and answer.contexts:
        lines.append("Closest passages, for further reading:")
        for n, p in closest_passages(answer):
            lines.append(f"  [{n}] {p.title} ({p.doc_id}): “{opening_words(p)}”")
    lines.append(f"\n({answer.llm}; {answer.timings.get('total_ms', 0) / 1000:.1f} s)")
    return "\n".join(lines)


def cmd_eval(args, settings: Settings) -> int:
    from rag.quality import evaluate
    from rag.quality.report import comparison_report, run_report
    from rag.quality.runs import RunStore, compare, format_comparison

    runs = RunStore(engine_for(settings.state_db_url("eval"), settings.db_timeouts))
    reports = settings.data_dir / "reports"
    if args.list:
        for run in runs.runs():
            summary = run["summary"]
            print(f"{run['id']:>4}  {run['created_at']}  {run['code_version']:<14} {Path(run['question_set']).name:<28} "
                  f"precision {summary.get('answered_precision')}  correct {summary.get('correct')}  "
                  f"refused {summary.get('refused_unanswerable')}  "
                  f"hit@5 {summary.get('hit@5')}  trust {summary.get('trust_score')}  {summary.get('llm', '')}")
        return 0
    if args.compare:
        run_a, run_b = args.compare
        comparison = compare(runs, run_a, run_b)
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / f"compare-{run_a}-{run_b}.html"
        path.write_text(comparison_report(comparison, runs.load(run_a)[1], runs.load(run_b)[1]), encoding="utf-8")
        print(json.dumps(comparison, ensure_ascii=False) if args.json else f"{format_comparison(comparison)}\n\nreport: {path}")
        return 0
    if args.file is None:
        raise ValueError("give a question set: python -m rag eval FILE.jsonl (or --list, --compare A B)")
    rows = evaluate.load_question_set(args.file)
    pipeline = components(settings).pipeline
    results = evaluate.run(pipeline, rows, progress=progress_over(len(rows), "questions", "questions"))
    summary = evaluate.summarize(results)
    summary["llm"] = pipeline.generator.name
    if args.judge:
        from rag.answer.llm import BACKENDS

        judge_model = BACKENDS["openai"](settings).chat_model
        summary.update(evaluate.judge(results, judge_model))
    saved = ""
    if not args.no_save:
        run_id = runs.save(str(args.file), settings.public(), summary, results)
        run, stored = runs.load(run_id)
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / f"run-{run_id}.html"
        path.write_text(run_report(run, stored), encoding="utf-8")
        summary["run_id"] = run_id
        saved = f"\nsaved as run {run_id}; report: {path}"
    if args.json:
        print(json.dumps(evaluate.results_json(summary, results), ensure_ascii=False))
    else:
        print(evaluate.format_report(summary, results) + saved)
    return 0


def cmd_feedback_export(args, settings: Settings) -> int:
    from rag.web.feedback import FeedbackStore

    rows = FeedbackStore(engine_for(settings.state_db_url("app"), settings.db_timeouts)).rows(only_unreviewed=not args.all)
    if not args.all:
        rows = [r for r in rows if (r["rating"] or 0) < 0]
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({
                "id": f"feedback-{row['id']}", "question": row["question"],
                # For the reviewer to fill in: answerable, answer_must_include, evidence, source.
                "review": {"answer_given": row["answer"], "refused": bool(row["refused"]), "rating": row["rating"],
                           "comment": row["comment"], "citations": json.loads(row["citations"]), "llm": row["llm"],
                           "created_at": row["created_at"]},
            }, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} questions to {args.out}")
    return 0


def cmd_gaps(args, settings: Settings) -> int:
    from rag.quality.gaps import as_question_set, gaps_json, group_questions
    from rag.schema import REFUSAL_KINDS
    from rag.web.feedback import UnansweredLog

    if args.days is not None and args.days < 1:
        raise ValueError("--days takes a number of days, 1 or more")
    log = UnansweredLog(engine_for(settings.state_db_url("app"), settings.db_timeouts), settings.question_log_days)
    gaps = group_questions(log.rows(args.days), components(settings).embedding_model)
    if args.export:
        args.export.write_text(as_question_set(gaps), encoding="utf-8")
    if args.json:
        print(gaps_json(gaps))
        return 0
    if not gaps:
        print("no unanswered questions kept" + ("" if settings.question_log_days > 0 else
                                                " (RAG_QUESTION_LOG_DAYS=0 keeps none)"))
    for gap in gaps:
        kinds = ", ".join(f"{REFUSAL_KINDS.get(kind, kind)}: {n}" for kind, n in gap.refusal_kinds.items())
        print(f"{gap.count:>4} × {gap.representative}\n       {gap.first_seen[:10]} … {gap.last_seen[:10]} · "
              f"closest: {gap.closest_article or '–'} · {kinds}")
    if args.export:
        print(f"wrote {sum(g.count for g in gaps)} questions to {args.export}")
    return 0


def cmd_bench_beir(args, settings: Settings) -> int:
    from rag.quality.bench import format_results, run_beir

    results = run_beir(args.folder, settings, progress=progress_bar("indexing", "chunks"))
    print(json.dumps(results) if args.json else format_results(results))
    return 0


def cmd_summarize(args, settings: Settings) -> int:
    parts = components(settings)
    run = parts.summarize(only=args.doc or None,
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"written": run.written, "unchanged": run.unchanged, "removed": run.removed,
                          "failed": [{"doc_id": d, "error": e} for d, e in run.failed], "seconds": round(run.seconds, 1),
                          "tokens": run.tokens}))
    else:
        for doc_id, error in run.failed:
            print(f"failed {doc_id}: {error}", file=sys.stderr)
        print(run.line())
    return 1 if run.failed else 0


def cmd_docs(args, settings: Settings) -> int:
    rows = components(settings).articles()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for row in rows:
        print(f"{row['doc_id']:<40} {row['date'] or '-':<10} {row['chunks']:>4} chunks  {row['title'][:70]}")
    print(f"{len(rows)} articles")
    return 0


def cmd_remove(args, settings: Settings) -> int:
    from rag.ingest.index import indexer_lock, open_record_manager, remove_articles

    with indexer_lock(settings, wait=True):
        parts = components(settings)
        removed = remove_articles(args.doc_ids, store=parts.store(), record_manager=open_record_manager(settings))
    missing = [d for d, n in removed.items() if n == 0]
    for doc_id, n in removed.items():
        print(f"{doc_id}: {'removed ' + str(n) + ' chunks' if n else 'not in the index'}")
    return 1 if missing else 0


def cmd_doctor(args, settings: Settings) -> int:
    """The web app's readiness checks, plus what only a shell sees: the word index matching the
    vector store, the embedder loading, summaries still to prepare."""
    from rag.health import Checker, Report, database_check, index_check, model_file_check

    parts = components(settings)
    report = Report(Checker({"index": index_check(parts), "database": database_check(settings),
                             "words": word_index_check(parts), "embedder": embedder_check(parts),
                             "model": model_file_check(settings), "summaries": summaries_check(parts)},
                            timeout_s=DOCTOR_TIMEOUT_S).run())
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print("\n".join(report.lines()))
        print("ready" if report.ready else "NOT READY")
    return 0 if report.ready else 1


DOCTOR_TIMEOUT_S = 30.0  # the embedder's first load takes a few seconds; a hung server is still cut off


def word_index_check(parts):
    def check() -> str:
        from rag.health import NotReady
        from rag.ingest.index import lexical_index_of, open_record_manager
        from rag.ingest.store import StoreError

        words = lexical_index_of(open_record_manager(parts.settings)).size()
        try:
            chunks = parts.store()._collection.count()
        except StoreError:
            raise NotReady("no index to compare with") from None
        if parts.settings.retrieval_mode != "dense" and words != chunks:
            raise NotReady(f"the word index holds {words} chunks, the vector store {chunks}: run python -m rag index "
                           "(an indexer still running shows this too)")
        return f"{words} chunks"

    return check


def embedder_check(parts):
    def check() -> str:
        vector = parts.embedding_model.embed_query("doctor")
        return f"{parts.embedding_model.name} ({len(vector)}-d)"

    return check


def summaries_check(parts):
    def check() -> str:  # informational: a missing summary is written on demand
        from rag.ingest.index import open_record_manager

        open_record_manager(parts.settings)  # the index's tables, which the count reads, exist from here
        pending = parts.summaries.pending()
        return f"{pending} articles without a current summary" + (" (python -m rag summarize)" if pending else "")

    return check

