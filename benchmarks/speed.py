"""Speed benchmark: time to first token on the seed questions, retrieval time on the policy corpus.

    python benchmarks/speed.py [--llm-questions N] [--skip-llm]

Prints numbers, and a baseline measured in the same run beside each:
- LLM: the full pipeline's first-token time vs. the bare model's time to first token for the
  same question with no passages (what retrieval and the passages add);
- retrieval: hybrid vs. dense-only on the same questions (what BM25 and fusion add).
Builds its indexes in a temporary directory; needs ../shared for the policy corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.components import Components  # noqa: E402
from rag.embed import load_embedding_model  # noqa: E402
from rag.index import index_articles, open_record_manager  # noqa: E402
from rag.load import load_paths  # noqa: E402
from rag.settings import Settings  # noqa: E402

SHARED = REPO.parent / "shared"


def build(settings: Settings, model, paths: list[Path]) -> Components:
    parts = Components(settings, embedding_model=model)
    index_articles(load_paths(paths).articles, store=parts.store(create=True),
                   record_manager=open_record_manager(settings), chunker=parts.chunker)
    return parts


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ms (p95 {sorted(values)[int(0.95 * (len(values) - 1))]:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm-questions", type=int, default=20)
    parser.add_argument("--skip-llm", action="store_true")
    parser.add_argument("--skip-retrieval", action="store_true")
    args = parser.parse_args()
    model = load_embedding_model(Settings())
    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))

    seed = [json.loads(line) for line in (SHARED / "eval" / "seed-questions.jsonl").open()]
    if not args.skip_llm:
        settings = Settings(data_dir=tmp / "seed", llm="local", llm_fallback=False, _env_file=None)
        parts = build(settings, model, [REPO / "corpus"])
        pipeline = parts.pipeline
        chat = pipeline.generator.chat_model
        chat.invoke("Say OK.")  # warm the server once, as a running app would be
        questions = [row["question"] for row in seed[: args.llm_questions]]
        # Pipeline questions back to back, as an app serves them: llama.cpp keeps the shared
        # prompt prefix cached between them. The baseline runs afterwards (it would evict it).
        first_tokens = [pipeline.ask(q).timings["first_token_ms"] for q in questions]
        bare = []
        for question in questions:
            started = time.perf_counter()
            for _ in chat.stream(question):
                break
            bare.append((time.perf_counter() - started) * 1000)
        print(f"local 1.5B, {len(first_tokens)} seed questions")
        print(f"  pipeline first token  {median_ms(first_tokens)}")
        print(f"  bare model first token {median_ms(bare)}   (baseline: same questions, no passages)")

    policy_dirs = [SHARED / "datasets" / "us-ai-policy" / "docs", SHARED / "datasets" / "digitalgov-ai-news" / "docs"]
    if args.skip_retrieval:
        return
    if all(p.exists() for p in policy_dirs):
        settings = Settings(data_dir=tmp / "policy", llm="extractive", _env_file=None)
        parts = build(settings, model, policy_dirs)
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
    else:
        print("retrieval: ../shared/datasets not found; skipped")


if __name__ == "__main__":
    main()
