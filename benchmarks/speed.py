"""Speed benchmark: time to first token and prompt length with the local model; retrieval time.

    python benchmarks/speed.py [--baseline REF] [--questions FILE --corpus DIR …] [--llm-questions N]
                               [--skip-llm] [--skip-retrieval]

Prints numbers, and a baseline measured in the same run beside each:
- LLM: the full pipeline's time to first token and prompt tokens on the same questions, for this
  tree and — with ``--baseline REF`` (a git commit, branch or tag, e.g. ``main``) — for that
  version's code, checked out into a temporary git worktree and run in its own process on an index
  built the same way. Without ``--baseline``, the bare model's first token for the same questions
  with no passages is the baseline (what retrieval and the passages add).
- retrieval: hybrid vs. dense-only on the same questions (what BM25 and fusion add).
Default questions: the seed set over ``corpus/``. Builds its indexes in a temporary directory;
needs ../shared for the question sets and the policy corpus.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def median_ms(values: list[float]) -> str:
    p95 = sorted(values)[max(0, math.ceil(0.95 * len(values)) - 1)]  # nearest rank
    return f"{statistics.median(values):8.1f} ms (p95 {p95:.1f})"


def build(settings, model, paths: list[Path]):
    from rag.components import Components
    from rag.ingest.index import index_articles, open_record_manager
    from rag.ingest.load import load_paths

    parts = Components(settings, embedding_model=model)
    index_articles(load_paths(paths).articles, store=parts.store(create=True),
                   record_manager=open_record_manager(settings), chunker=parts.chunker)
    return parts


def measure_pipeline(questions: list[str], corpus: list[Path], with_bare: bool) -> dict:
    """First-token times and prompt lengths of the pipeline in *this process's* ``rag`` package
    (which may be another version's, see ``--code``). Only APIs every version has are used."""
    from langchain_core.callbacks import BaseCallbackHandler

    from rag.ingest.embed import load_embedding_model
    from rag.settings import Settings

    class Usage(BaseCallbackHandler):
        def __init__(self) -> None:
            self.prompt_tokens: list[int] = []

        def on_llm_end(self, response, **kwargs) -> None:
            for generations in response.generations:
                usage = getattr(getattr(generations[0], "message", None), "usage_metadata", None)
                if usage:
                    self.prompt_tokens.append(usage.get("input_tokens", 0))

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(data_dir=tmp / "index", llm="local", llm_fallback=False, _env_file=None,
                        RAG_MODELS_DIR=REPO / "data" / "models")
    parts = build(settings, load_embedding_model(settings), corpus)
    pipeline = parts.pipeline
    chat = pipeline.generator.chat_model
    chat.stream_usage = True
    usage = Usage()
    chat.callbacks = [usage]
    chat.invoke("Say OK.")  # warm the server once, as a running app would be
    usage.prompt_tokens.clear()
    # Pipeline questions back to back, as an app serves them: llama.cpp keeps the shared prompt
    # prefix cached between them. The bare-model baseline runs afterwards (it would evict it).
    answers = [pipeline.ask(q) for q in questions]
    result = {"first_token_ms": [a.timings["first_token_ms"] for a in answers],
              "prompt_tokens": list(usage.prompt_tokens),
              "refused": sum(a.refused for a in answers)}
    if with_bare:
        chat.callbacks = []
        bare = []
        for question in questions:
            started = time.perf_counter()
            for _ in chat.stream(question):
                break
            bare.append((time.perf_counter() - started) * 1000)
        result["bare_first_token_ms"] = bare
    return result


def run_elsewhere(code: Path, args: argparse.Namespace) -> dict:
    """``measure_pipeline`` in a child process that imports ``rag`` from ``code``."""
    command = [sys.executable, __file__, "--measure", str(code), "--questions", str(args.questions),
               "--llm-questions", str(args.llm_questions), "--corpus", *map(str, args.corpus)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"measuring {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worktree(ref: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="rag-baseline-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), ref], check=True)
    return path


def report_llm(label: str, measured: dict) -> None:
    tokens = measured["prompt_tokens"]
    print(f"  {label:<28} first token {median_ms(measured['first_token_ms'])}; "
          f"prompt tokens p50 {statistics.median(tokens) if tokens else '–'}; refused {measured['refused']}")


def benchmark_llm(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in args.questions.open() if line.strip()]
    count = min(args.llm_questions, len(rows))
    print(f"local 1.5B, {count} questions of {args.questions.name}")
    if not args.baseline:
        sys.path.insert(0, str(REPO))
        current = measure_pipeline([r["question"] for r in rows[:count]], args.corpus, with_bare=True)
        report_llm("this tree", current)
        print(f"  {'bare model (baseline)':<28} first token {median_ms(current['bare_first_token_ms'])}"
              "   (same questions, no passages)")
        return
    current = run_elsewhere(REPO, args)  # both sides in a process of their own, built the same way
    tree = worktree(args.baseline)
    try:
        baseline = run_elsewhere(tree, args)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    report_llm("this tree", current)
    report_llm(f"{args.baseline} (baseline)", baseline)
    ratio = statistics.median(current["first_token_ms"]) / statistics.median(baseline["first_token_ms"])
    print(f"  first token p50, this tree / baseline: {ratio:.2f}")


def benchmark_retrieval() -> None:
    sys.path.insert(0, str(REPO))
    from rag.ingest.embed import load_embedding_model
    from rag.settings import Settings

    policy_dirs = [SHARED / "datasets" / "us-ai-policy" / "docs", SHARED / "datasets" / "digitalgov-ai-news" / "docs"]
    if not all(p.exists() for p in policy_dirs):
        print("retrieval: ../shared/datasets not found; skipped")
        return
    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(data_dir=tmp / "policy", llm="extractive", _env_file=None)
    parts = build(settings, load_embedding_model(settings), policy_dirs)
    questions = [json.loads(line)["question"] for line in (SHARED / "eval" / "policy-questions.jsonl").open()]
    retriever = parts.retriever
    retriever.invoke("warm up")
    timings = {}
    for mode in ("hybrid", "dense"):
        retriever.mode = mode
        values = []
        for question in questions * 3:
            started = time.perf_counter()
            retriever.invoke(question)
            values.append((time.perf_counter() - started) * 1000)
        timings[mode] = values
    print(f"retrieval, policy corpus ({parts.store()._collection.count()} chunks), {len(questions) * 3} queries")
    print(f"  hybrid  {median_ms(timings['hybrid'])}")
    print(f"  dense   {median_ms(timings['dense'])}   (baseline: Chroma alone)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", metavar="REF", help="also measure this git ref's code, side by side")
    parser.add_argument("--questions", type=Path, default=SHARED / "eval" / "seed-questions.jsonl")
    parser.add_argument("--corpus", type=Path, nargs="+", default=[REPO / "corpus"])
    parser.add_argument("--llm-questions", type=int, default=20)
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode: rag from this folder
    args = parser.parse_args()

    if args.measure:
        sys.path.insert(0, str(args.measure))
        rows = [json.loads(line) for line in args.questions.open() if line.strip()][: args.llm_questions]
        print(json.dumps(measure_pipeline([r["question"] for r in rows], args.corpus, with_bare=False)))
        return
    if not args.skip_llm:
        benchmark_llm(args)
    if not args.skip_retrieval:
        benchmark_retrieval()


if __name__ == "__main__":
    main()
