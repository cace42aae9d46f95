"""Evaluation history: every ``rag eval`` run, with its settings, code version and per-question results.

Stored in SQLite under ``RAG_DATA_DIR/eval.sqlite`` (numbered migrations, like ``rag.web.feedback``).
``compare`` lines up two runs question by question: what got better and what got worse.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import asdict
from pathlib import Path

from rag.db import connect, migrate, now
from rag.quality.evaluate import QuestionResult

MIGRATIONS = [
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        question_set TEXT NOT NULL,
        settings TEXT NOT NULL,
        code_version TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
    """CREATE TABLE results (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        question_id TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (run_id, question_id)
    )""",
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
    def __init__(self, path: Path) -> None:
        self.path = path
        migrate(path, MIGRATIONS)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def save(self, question_set: str, settings: dict, summary: dict, results: list[QuestionResult]) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO runs (created_at, question_set, settings, code_version, summary) VALUES (?, ?, ?, ?, ?)",
                (now(), question_set, json.dumps(settings), code_version(), json.dumps(summary)))
            run_id = int(cursor.lastrowid)
            db.executemany("INSERT INTO results VALUES (?, ?, ?)",
                           [(run_id, r.id, json.dumps(asdict(r))) for r in results])
        return run_id

    def runs(self) -> list[dict]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
        return [_run_row(row) for row in rows]

    def load(self, run_id: int) -> tuple[dict, list[dict]]:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no evaluation run {run_id}; `python -m rag eval --list` shows the runs")
            results = [json.loads(r["result"]) for r in
                       db.execute("SELECT result FROM results WHERE run_id = ? ORDER BY rowid", (run_id,))]
        return _run_row(row), results


def _run_row(row: sqlite3.Row) -> dict:
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
