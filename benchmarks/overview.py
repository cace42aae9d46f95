"""Whole-article questions: how fast a prepared summary is served, beside fact questions on the same
index and model, and what preparing the summaries cost.

    RAG_DATA_DIR=DIR python benchmarks/overview.py [--summarize-log FILE] [--facts N] [--summaries N]

- Time to first token, p50 and p95, of the development set's summary questions
  (``benchmarks/data/overview-questions.jsonl``; answered from the prepared summaries) and, as the
  baseline measured in the same run, of the first N answerable fact questions of
  ``../shared/eval/policy-questions.jsonl`` and ``laws-audits-questions.jsonl`` — same index, same model.
- With ``--summarize-log`` (what ``python -m rag summarize`` printed, one line per article): per
  dataset (by the manifest id's prefix), articles, minutes, articles per minute and tokens per second.

The index in ``RAG_DATA_DIR`` must hold ../shared/datasets/{us-ai-policy,digitalgov-ai-news,laws-and-audits}
and its summaries (``python -m rag summarize``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATASETS = {"wh": "us-ai-policy", "crs": "us-ai-policy", "dg": "digitalgov-ai-news", "la": "laws-and-audits"}


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"p50 {statistics.median(ordered) / 1000:6.2f} s   p95 {p95 / 1000:6.2f} s   (n={len(ordered)})"


def summarize_cost(log: Path) -> None:
    line = re.compile(r"\] (?P<doc>[^:]+): (?P<points>\d+) points in (?P<s>[\d.]+) s(?:, (?P<rate>[\d.]+) tokens/s)?")
    per: dict[str, dict] = {}
    for match in line.finditer(log.read_text()):
        dataset = DATASETS.get(re.match(r"[a-z]+", match["doc"]).group(0), "other")
        row = per.setdefault(dataset, {"articles": 0, "seconds": 0.0, "tokens": 0.0})
        seconds = float(match["s"])
        row["articles"] += 1
        row["seconds"] += seconds
        row["tokens"] += seconds * float(match["rate"] or 0)
    print(f"{'dataset':<22} {'articles':>8} {'minutes':>8} {'articles/min':>13} {'tokens/s':>9}")
    total = {"articles": 0, "seconds": 0.0, "tokens": 0.0}
    for dataset, row in sorted(per.items()):
        for key in total:
            total[key] += row[key]
        print(f"{dataset:<22} {row['articles']:>8} {row['seconds'] / 60:>8.1f} "
              f"{row['articles'] / (row['seconds'] / 60):>13.2f} {row['tokens'] / row['seconds']:>9.1f}")
    print(f"{'all':<22} {total['articles']:>8} {total['seconds'] / 60:>8.1f} "
          f"{total['articles'] / (total['seconds'] / 60):>13.2f} {total['tokens'] / total['seconds']:>9.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summarize-log", type=Path)
    parser.add_argument("--facts", type=int, default=10, help="fact questions from each development set")
    parser.add_argument("--summaries", type=int, default=16)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import rag  # noqa: F401  (offline defaults)
    from rag.components import Components
    from rag.quality.evaluate import load_question_set
    from rag.settings import Settings

    if args.summarize_log:
        summarize_cost(args.summarize_log)
        print()
    overview = [r for r in load_question_set(REPO / "benchmarks" / "data" / "overview-questions.jsonl")
                if r.get("kind") == "summary"][: args.summaries]
    facts = []
    for name in ("policy-questions.jsonl", "laws-audits-questions.jsonl"):
        if (SHARED / "eval" / name).exists():
            facts += [r for r in load_question_set(SHARED / "eval" / name) if r.get("answerable")][: args.facts]
    pipeline = Components(Settings()).pipeline
    pipeline.ask("warm up the model")  # the first call loads it
    timings: dict[str, list[float]] = {"summary (prepared)": [], "fact (baseline)": []}
    kinds = {}
    for label, rows in (("summary (prepared)", overview), ("fact (baseline)", facts)):
        for row in rows:
            answer = pipeline.ask(row["question"])
            timings[label].append(answer.timings["first_token_ms"])
            kinds[answer.kind] = kinds.get(answer.kind, 0) + 1
    print(f"model: {pipeline.generator.name}; answers by kind: {json.dumps(kinds)}")
    for label, values in timings.items():
        print(f"{label:<20} first token {percentiles(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
