"""Indexing throughput: the full `python -m rag index` against the embedding model's own speed.

    python benchmarks/indexing.py

On the same chunk texts (the two policy datasets in ../shared, chunked by the project's chunker),
in one run:
  1. raw   — SentenceTransformer.encode over all chunk texts (model already loaded): the ceiling;
  2. full  — `python -m rag index` of both folders into an empty data dir, as a user runs it
             (process start, imports, model load, loading, chunking, embedding, writing);
  3. rerun — the same command again on the unchanged corpus.
Targets: full ≥ 85% of raw chunks/s; rerun ≤ 5% of full's time.

These machines are shared and their speed drifts by ±10% within minutes, so the three
measurements are taken back to back in each round, and the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.ingest.chunk import Chunker  # noqa: E402
from rag.ingest.embed import load_embedding_model  # noqa: E402
from rag.ingest.load import load_paths  # noqa: E402
from rag.settings import Settings  # noqa: E402

DATASETS = [REPO.parent / "shared" / "datasets" / "us-ai-policy" / "docs",
            REPO.parent / "shared" / "datasets" / "digitalgov-ai-news" / "docs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="raw/full/rerun rounds, interleaved (default 3)")
    rounds = parser.parse_args().rounds
    if not all(d.exists() for d in DATASETS):
        sys.exit("needs ../shared/datasets (us-ai-policy, digitalgov-ai-news)")
    settings = Settings(_env_file=None)
    model = load_embedding_model(settings)
    chunker = Chunker(model.count_tokens, model.max_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens)
    texts = [d.page_content for a in load_paths(DATASETS).articles for d in chunker.split(a)]
    encoder = model.embeddings._client
    encoder.encode(texts[:64], batch_size=settings.embed_batch_size)  # warm up

    def raw() -> float:
        started = time.perf_counter()
        encoder.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        return time.perf_counter() - started

    def index(data_dir: Path) -> float:
        env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag", "index", *map(str, DATASETS)], cwd=REPO, env=env, check=True,
                       capture_output=True)
        return time.perf_counter() - started

    n = len(texts)
    print(f"{n} chunks from {len(DATASETS)} folders; {rounds} rounds (raw, full, rerun back to back)")
    ratios, rerun_shares = [], []
    for round_number in range(1, rounds + 1):
        data_dir = Path(tempfile.mkdtemp(prefix="rag-index-bench-"))
        raw_s, full_s, rerun_s = raw(), index(data_dir), index(data_dir)
        ratios.append(raw_s / full_s)
        rerun_shares.append(rerun_s / full_s)
        print(f"  round {round_number}: raw encode {raw_s:5.1f} s ({n / raw_s:4.1f} chunks/s) | "
              f"full rag index {full_s:5.1f} s ({n / full_s:4.1f} chunks/s) = {raw_s / full_s:.0%} of raw | "
              f"rerun {rerun_s:4.1f} s = {rerun_s / full_s:.1%} of full")
    print(f"median: full = {statistics.median(ratios):.0%} of raw encode throughput (target >= 85%); "
          f"rerun = {statistics.median(rerun_shares):.1%} of full (target <= 5%)")


if __name__ == "__main__":
    main()
