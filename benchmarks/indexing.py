"""Indexing throughput: the full `python -m rag index` against the embedding model's own speed.

    python benchmarks/indexing.py

On the same chunk texts (the two policy datasets in ../shared, chunked by the project's chunker),
in one run:
  1. raw   — SentenceTransformer.encode over all chunk texts (model already loaded): the ceiling;
  2. full  — `python -m rag index` of both folders into an empty data dir, as a user runs it
             (process start, imports, model load, loading, chunking, embedding, writing);
  3. rerun — the same command again on the unchanged corpus.
Targets: full ≥ 85% of raw chunks/s; rerun ≤ 5% of full's time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.chunk import Chunker  # noqa: E402
from rag.embed import load_embedding_model  # noqa: E402
from rag.load import load_paths  # noqa: E402
from rag.settings import Settings  # noqa: E402

DATASETS = [REPO.parent / "shared" / "datasets" / "us-ai-policy" / "docs",
            REPO.parent / "shared" / "datasets" / "digitalgov-ai-news" / "docs"]


def main() -> None:
    if not all(d.exists() for d in DATASETS):
        sys.exit("needs ../shared/datasets (us-ai-policy, digitalgov-ai-news)")
    settings = Settings(_env_file=None)
    model = load_embedding_model(settings)
    chunker = Chunker(model.count_tokens, model.max_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens)
    texts = [d.page_content for a in load_paths(DATASETS).articles for d in chunker.split(a)]
    encoder = model.embeddings._client
    encoder.encode(texts[:64], batch_size=settings.embed_batch_size)  # warm up
    started = time.perf_counter()
    encoder.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
    raw_s = time.perf_counter() - started

    data_dir = Path(tempfile.mkdtemp(prefix="rag-index-bench-"))
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "rag", "index", *map(str, DATASETS)]

    def timed() -> float:
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    full_s = timed()
    rerun_s = timed()
    n = len(texts)
    print(f"{n} chunks from {len(DATASETS)} folders")
    print(f"  raw encode        {raw_s:7.1f} s  {n / raw_s:6.1f} chunks/s   (baseline: the model alone)")
    print(f"  full rag index    {full_s:7.1f} s  {n / full_s:6.1f} chunks/s   = {raw_s / full_s:.0%} of raw (target >= 85%)")
    print(f"  rerun, unchanged  {rerun_s:7.1f} s                     = {rerun_s / full_s:.1%} of full (target <= 5%)")


if __name__ == "__main__":
    main()
