"""Scale benchmark: retrieval over N chunks, written through the real indexing path.

    python benchmarks/scale.py --chunks N [--json] [--questions 50] [--keep DIR]
                               [--record-db-url postgresql://…] [--chroma HOST:PORT]

Builds a synthetic index of about N chunks in a temporary folder — real SciFact abstracts as
articles, stand-in vectors instead of the embedding model (``rag.quality.synthetic``), written by
``rag.ingest.index.index_articles`` exactly as ``rag index`` writes (Chroma, the record manager, the
lexical index, the generation number). Then an app-like reader process (extractive settings,
the real embedding model for queries) reports, over SciFact questions:

- hybrid / dense / bm25 / hybrid + a two-year date filter: p50 and p95 latency;
- the first question after a re-index of 100 new chunks by another process (how long a reader
  waits for the index to catch up), beside an ordinary question's p50 (the baseline);
  with ``--record-db-url``/``--chroma`` (shared state on PostgreSQL and a ``chroma run`` server,
  README "Several machines") that process has a data dir of its own: another machine;
- the reader's RSS, and the index's size on disk;
- how long the article list takes (the Admin tab, ``rag docs``, the overview's catalogue), where
  it came from (the word index's table, or — an index built before it, until an indexing run fills
  it — every chunk's metadata in Chroma), and again after the re-index.

``--json`` prints one object (``chunks``, ``hybrid_p50_ms``, ``filtered_p50_ms``,
``after_reindex_wait_ms``, ``rss_mb``, …). Needs ../shared/datasets/scifact.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "datasets" / "scifact"
sys.path.insert(0, str(REPO))


def settings_for(data_dir: Path):
    """Extractive settings in ``data_dir``; the servers (RAG_RECORD_DB_URL, RAG_CHROMA_HOST/PORT) come
    from the environment, which ``--record-db-url``/``--chroma`` set for every process of the run."""
    from rag.settings import Settings

    return Settings(data_dir=data_dir, llm="extractive", _env_file=None)


def on_servers() -> bool:
    return bool(os.environ.get("RAG_CHROMA_HOST"))


def build(data_dir: Path, chunks: int, report) -> tuple[int, int]:
    """Index synthetic articles until the collection holds at least ``chunks``; returns
    (chunks, articles)."""
    from rag.components import Components
    from rag.ingest.index import index_articles, open_record_manager
    from rag.quality.synthetic import StandInEmbeddings, scifact_texts, synthetic_articles

    settings = settings_for(data_dir)
    parts = Components(settings)
    texts = scifact_texts(SCIFACT)
    sample = [len(parts.chunker.split(a)) for a in synthetic_articles(texts, 300)]
    per_article = statistics.mean(sample)
    articles_needed = math.ceil(chunks / per_article)
    store, records, stand_in = parts.store(create=True), open_record_manager(settings), StandInEmbeddings()
    written, step, started = 0, 5_000, time.perf_counter()
    for first in range(0, articles_needed, step):
        count = min(step, articles_needed - first)
        summary = index_articles(synthetic_articles(texts, count, start=first), store=store, embeddings=stand_in,
                                 record_manager=records, chunker=parts.chunker, batch_size=1000)
        written += summary.chunks_written
        rate = written / (time.perf_counter() - started)
        report(f"indexed {first + count:,}/{articles_needed:,} articles, {written:,} chunks ({rate:,.0f} chunks/s)")
    return written, articles_needed


def reindex_100_chunks(data_dir: Path, first_new: int) -> int:
    from rag.components import Components
    from rag.ingest.index import index_articles, open_record_manager
    from rag.quality.synthetic import StandInEmbeddings, scifact_texts, synthetic_articles

    settings = settings_for(data_dir)
    parts = Components(settings)
    texts, written, n = scifact_texts(SCIFACT), 0, first_new
    while written < 100:
        summary = index_articles(synthetic_articles(texts, 5, start=n), store=parts.store(), embeddings=StandInEmbeddings(),
                                 record_manager=open_record_manager(settings), chunker=parts.chunker)
        written, n = written + summary.chunks_written, n + 5
    return written


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[max(0, math.ceil(q * len(values)) - 1)]


def probe(data_dir: Path, questions: int) -> None:
    """The reader: an app process's components, driven by lines on stdin, answering on stdout."""
    from rag.answer.retrieve import Filters
    from rag.components import Components

    parts = Components(settings_for(data_dir))
    retriever = parts.retriever
    parts.embedding_model.embed_query("warm up")
    asked = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").open()][:questions]
    two_years = Filters(date_from="2020-01-01", date_to="2021-12-31")

    def timed(question: str, mode: str, filters: Filters | None = None) -> float:
        retriever.mode = mode
        started = time.perf_counter()
        retriever.invoke(question, filters=filters)
        return (time.perf_counter() - started) * 1000

    def listed() -> dict:
        """The article list (Admin tab, `rag docs`, the overview's catalogue): from the word index's
        table when it is filled, else from every chunk's metadata in Chroma."""
        started = time.perf_counter()
        rows = parts.articles()
        return {"articles": len(rows), "list_ms": round((time.perf_counter() - started) * 1000, 1),
                "list_from": "word index" if parts.lexical.articles_complete() else "chroma"}

    for question in asked[:5]:  # warm caches as an app does after its first questions
        timed(question, "hybrid")
    print("ready", flush=True)
    for command in sys.stdin:
        if command.strip() == "measure":
            result = {}
            for name, mode, filters in [("hybrid", "hybrid", None), ("dense", "dense", None), ("bm25", "bm25", None),
                                        ("filtered", "hybrid", two_years)]:
                times = [timed(q, mode, filters) for q in asked]
                result[f"{name}_p50_ms"] = round(statistics.median(times), 1)
                result[f"{name}_p95_ms"] = round(percentile(times, 0.95), 1)
            result["rss_mb"] = round(rss_mb(), 1)
            result.update(listed())
            print(json.dumps(result), flush=True)
        elif command.strip() == "first":
            wait_ms = round(timed(asked[-1], "hybrid"), 1)
            after = {f"{key}_after_reindex": value for key, value in listed().items()}
            print(json.dumps({"after_reindex_wait_ms": wait_ms, **after}), flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this folder and keep it")
    parser.add_argument("--record-db-url", help="shared state in this PostgreSQL database (RAG_RECORD_DB_URL)")
    parser.add_argument("--chroma", metavar="HOST:PORT", help="vectors in this `chroma run` server")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.record_db_url:
        os.environ["RAG_RECORD_DB_URL"] = args.record_db_url
    if args.chroma:
        os.environ["RAG_CHROMA_HOST"], os.environ["RAG_CHROMA_PORT"] = args.chroma.rsplit(":", 1)
    if args.probe:
        probe(args.probe, args.questions)
        return 0
    if not SCIFACT.exists():
        print(f"needs {SCIFACT}", file=sys.stderr)
        return 2
    say = (lambda message: print(message, file=sys.stderr, flush=True)) if args.json else print
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    data_dir = folder / "data"
    try:
        started = time.perf_counter()
        existing = 0
        if (data_dir / "chroma").exists() or (on_servers() and args.keep):
            from rag.components import Components
            from rag.ingest.store import StoreError

            try:
                existing = Components(settings_for(data_dir)).store()._collection.count()
            except StoreError:
                existing = 0
        if existing:
            say(f"reusing the index of {existing:,} chunks")
            chunks = existing
            articles = chunks  # unknown; new articles get ids past any existing one
        else:
            chunks, articles = build(data_dir, args.chunks, say)
        result = {"chunks": chunks, "build_s": round(time.perf_counter() - started, 1)}
        reader = subprocess.Popen([sys.executable, __file__, "--probe", str(data_dir), "--questions", str(args.questions)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        assert reader.stdout.readline().strip() == "ready", "the reader process did not start"
        reader.stdin.write("measure\n")
        reader.stdin.flush()
        result.update(json.loads(reader.stdout.readline()))
        # On servers the re-index runs as another machine would: a data dir of its own, nothing shared on disk.
        added = reindex_100_chunks(folder / "other-machine" if on_servers() else data_dir, first_new=articles + 1_000_000)
        reader.stdin.write("first\n")
        reader.stdin.flush()
        result.update(json.loads(reader.stdout.readline()))
        result["reindexed_chunks"] = added
        reader.stdin.close()
        reader.wait(timeout=60)
        result["disk_mb"] = round(disk_mb(data_dir), 1)  # on servers: what the app keeps locally (nothing)
        result["engines"] = "PostgreSQL + chroma run" if on_servers() else "SQLite + embedded Chroma"
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"\n{result['chunks']:,} chunks on {result['engines']} (built in {result['build_s']} s), "
              f"{args.questions} SciFact questions:")
        for name in ("hybrid", "dense", "bm25", "filtered"):
            print(f"  {name:9} p50 {result[f'{name}_p50_ms']:8.1f} ms   p95 {result[f'{name}_p95_ms']:8.1f} ms")
        print(f"  first question after re-indexing {result['reindexed_chunks']} chunks: "
              f"{result['after_reindex_wait_ms']:.1f} ms (baseline: hybrid p50 {result['hybrid_p50_ms']:.1f} ms)")
        print(f"  reader RSS {result['rss_mb']:.0f} MB; index on disk {result['disk_mb']:.0f} MB")
        print(f"  article list ({result['articles']:,} articles): {result['list_ms']:.0f} ms from "
              f"{result['list_from']}; after the re-index {result['list_ms_after_reindex']:.0f} ms from "
              f"{result['list_from_after_reindex']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
