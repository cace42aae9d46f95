"""Evaluation history: every ``rag eval`` run, with its settings, code version and per-question results.

Stored in the "eval" state database (``RAG_DATA_DIR/eval.sqlite``, or the shared PostgreSQL database:
``rag.db``), with numbered migrations like ``rag.web.feedback``.
``compare`` lines up two runs question by question: what got better and what got worse.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Text, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateTable

from rag.db import migrate, now
from rag.quality.evaluate import QuestionResult

_tables = MetaData()
_RUNS = Table(
    "runs", _tables,
    Column("id", Integer, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("question_set", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("code_version", Text, nullable=False),
    Column("summary", Text, nullable=False),
    sqlite_autoincrement=True)
_RESULTS = Table(
    "results", _tables,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("question_id", Text, primary_key=True),
    Column("result", Text, nullable=False))


def _number_existing_results(db: Connection) -> None:
    """Results were listed in insertion order (SQLite's rowid); PostgreSQL has no rowid, so the
    order is now a column. Only SQLite files can hold rows from before it."""
    if db.dialect.name == "sqlite":
        db.execute(text("UPDATE results SET position = rowid"))


MIGRATIONS = [
    CreateTable(_RUNS),
    CreateTable(_RESULTS),
    "ALTER TABLE results ADD COLUMN position INTEGER NOT NULL DEFAULT 0",
    _number_existing_results,
]


class RunNotFound(LookupError):
    pass


def code_version(repo: Path | None = None) -> str:
    """The git commit (with "+dirty" for uncommitted changes) or "unknown" outside a checkout."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunStore:
    """Evaluation runs; ``engine`` is ``rag.db.engine_for(settings.state_db_url("eval"))``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        migrate(engine, "runs", MIGRATIONS)

    def save(self, question_set: str, settings: dict, summary: dict, results: list[QuestionResult]) -> int:
        with self.engine.begin() as db:
            run_id = int(db.execute(text(
                "INSERT INTO runs (created_at, question_set, settings, code_version, summary) "
                "VALUES (:at, :qs, :settings, :code, :summary) RETURNING id"),
                {"at": now(), "qs": question_set, "settings": json.dumps(settings), "code": code_version(),
                 "summary": json.dumps(summary)}).scalar_one())
            if results:
                db.execute(text("INSERT INTO results (run_id, question_id, result, position) "
                                "VALUES (:run, :qid, :result, :position)"),
                           [{"run": run_id, "qid": r.id, "result": json.dumps(asdict(r)), "position": n}
                            for n, r in enumerate(results, 1)])
        return run_id

    def runs(self) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(text("SELECT * FROM runs ORDER BY id DESC")).mappings().all()
        return [_run_row(row) for row in rows]

    def load(self, run_id: int) -> tuple[dict, list[dict]]:
        with self.engine.connect() as db:
            row = db.execute(text("SELECT * FROM runs WHERE id = :id"), {"id": run_id}).mappings().first()
            if row is None:
                raise RunNotFound(f"no evaluation run {run_id}; `python -m rag eval --list` shows the runs")
            results = [json.loads(r[0]) for r in db.execute(
                text("SELECT result FROM results WHERE run_id = :id ORDER BY position"), {"id": run_id})]
        return _run_row(row), results


def _run_row(row) -> dict:
    return {"id": row["id"], "created_at": row["created_at"], "question_set": row["question_set"],
            "settings": json.loads(row["settings"]), "code_version": row["code_version"],
            "summary": json.loads(row["summary"])}


def outcome(result: dict) -> str:
    """One word for how a question went: correct / wrong / refused / missed (unanswerable answered)."""
    if result.get("error"):
        return "error"
    if result.get("answerable") is False:
        return "refused" if result["refused"] else "answered"
    if result["refused"]:
        return "refused"
    return "correct" if result.get("correct") else "wrong"


def is_good(result: dict) -> bool:
    state = outcome(result)
    return state == "correct" or (result.get("answerable") is False and state == "refused")


def why(result: dict) -> str:
    """The stored trace's one-line reason (rag.answer.explain), and the sentence the checker dropped first."""
    trace = result.get("trace") or {}
    if not trace:
        return ""  # a run stored before traces were
    dropped = next((s for s in trace.get("sentences", []) if not s["supported"] and s.get("reason")), None)
    return trace["decision"] + (f" — dropped {dropped['text'][:60]!r}: {dropped['reason']}" if dropped else "")


def compare(store: RunStore, run_a: int, run_b: int) -> dict:
    """Summary deltas and the questions whose outcome changed between two runs."""
    meta_a, results_a = store.load(run_a)
    meta_b, results_b = store.load(run_b)
    by_id_b = {r["id"]: r for r in results_b}
    changed = []
    for a in results_a:
        b = by_id_b.get(a["id"])
        if b is None:
            continue
        if outcome(a) != outcome(b) or a.get("evidence_rank") != b.get("evidence_rank"):
            direction = "better" if is_good(b) and not is_good(a) else "worse" if is_good(a) and not is_good(b) else "changed"
            changed.append({"id": a["id"], "question": a["question"], "direction": direction,
                            "a": {"outcome": outcome(a), "rank": a.get("evidence_rank"), "answer": a["answer"],
                                  "why": why(a)},
                            "b": {"outcome": outcome(b), "rank": b.get("evidence_rank"), "answer": b["answer"],
                                  "why": why(b)}})
    keys = [k for k, v in meta_a["summary"].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    deltas = {k: {"a": meta_a["summary"].get(k), "b": meta_b["summary"].get(k)} for k in keys}
    settings_diff = {k: {"a": meta_a["settings"].get(k), "b": meta_b["settings"].get(k)}
                     for k in sorted(set(meta_a["settings"]) | set(meta_b["settings"]))
                     if meta_a["settings"].get(k) != meta_b["settings"].get(k)}
    return {"a": meta_a, "b": meta_b, "metrics": deltas, "settings_diff": settings_diff, "questions": changed}


def format_comparison(comparison: dict) -> str:
    a, b = comparison["a"], comparison["b"]
    lines = [f"run {a['id']} ({a['created_at']}, {a['code_version']}) vs run {b['id']} ({b['created_at']}, {b['code_version']})"]
    for key, change in comparison["settings_diff"].items():
        lines.append(f"  setting {key}: {change['a']} -> {change['b']}")
    lines.append(f"{'metric':<24} {'A':>10} {'B':>10}")
    for key, values in comparison["metrics"].items():
        lines.append(f"{key:<24} {_fmt(values['a']):>10} {_fmt(values['b']):>10}")
    for direction in ("better", "worse", "changed"):
        rows = [q for q in comparison["questions"] if q["direction"] == direction]
        if rows:
            lines.append(f"\n{direction.upper()} ({len(rows)}):")
            for q in rows:
                lines.append(f"  {q['id']}: {q['a']['outcome']} (rank {q['a']['rank']}) -> {q['b']['outcome']} "
                             f"(rank {q['b']['rank']})  {q['question'][:80]}")
                for side in ("a", "b"):
                    if q[side].get("why"):
                        lines.append(f"      {side.upper()}: {q[side]['why']}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
