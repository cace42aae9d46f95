"""Retrieval benchmark on any BEIR-format dataset, through the project's own retrieval code.

    python -m rag bench beir DIR [--json]

``DIR`` holds ``corpus.jsonl`` ({_id, title, text}), ``queries.jsonl`` ({_id, text}) and
``qrels/test.tsv`` (query-id, corpus-id, score). Each document becomes an article (title + text),
is chunked and indexed exactly as the product does it, into a temporary embedded Chroma; each test
query is answered by ``HybridRetriever`` in ``dense``, ``bm25`` and ``hybrid`` modes. A document's
score is its best chunk's rank. Metrics come from ranx (nDCG@10, MRR@10, Recall@100).
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

from rag.components import Components
from rag.ingest.formats import LoadError
from rag.ingest.index import index_articles, open_record_manager
from rag.ingest.load import article_from_text, safe_doc_id
from rag.settings import Settings

MODES = ("dense", "bm25", "hybrid")
# Published figures for context (BEIR paper, Thakur et al. 2021; sentence-transformers model card/MTEB).
REFERENCE = {"scifact": {"bm25": {"ndcg@10": 0.665}, "dense (all-MiniLM-L6-v2)": {"ndcg@10": 0.645}}}


class BenchmarkError(Exception):
    pass


def read_beir(folder: Path, split: str = "test") -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    try:
        corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
        queries = {}
        for line in (folder / "queries.jsonl").open(encoding="utf-8"):
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
        qrels: dict[str, dict[str, int]] = {}
        with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{folder} is not a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/{split}.tsv): {exc}") from exc
    return corpus, {q: queries[q] for q in qrels if q in queries}, qrels


def run_beir(folder: Path, settings: Settings, embedding_model=None, progress=None) -> dict:
    corpus, queries, qrels = read_beir(folder)
    with tempfile.TemporaryDirectory(prefix="rag-beir-") as temp:  # gone afterwards (~100 MB for SciFact)
        return _run_beir(folder, corpus, queries, qrels, Path(temp), settings, embedding_model, progress)


def _run_beir(folder: Path, corpus: list[dict], queries: dict[str, str], qrels: dict, data_dir: Path,
              settings: Settings, embedding_model, progress) -> dict:
    from ranx import Qrels, Run, evaluate

    bench_settings = settings.model_copy(update={"data_dir": data_dir, "chroma_host": None, "llm": "extractive",
                                                 "fetch_k": 200})
    parts = Components(bench_settings, embedding_model=embedding_model)
    articles, id_of = [], {}
    for row in corpus:
        try:
            doc_id = safe_doc_id(str(row["_id"]))
            articles.append(article_from_text(doc_id, row.get("text") or row.get("title") or "", title=row.get("title", "")))
            id_of[doc_id] = str(row["_id"])
        except LoadError:
            continue  # an empty document cannot be retrieved anyway
    started = time.perf_counter()
    index_articles(articles, store=parts.store(create=True), record_manager=open_record_manager(bench_settings),
                   chunker=parts.chunker, progress=progress, batch_size=512)
    index_seconds = time.perf_counter() - started

    results: dict = {"dataset": folder.name, "documents": len(articles), "queries": len(queries),
                     "index_seconds": round(index_seconds, 1)}
    retriever = parts.retriever
    for mode in MODES:
        retriever.mode = mode
        run: dict[str, dict[str, float]] = {}
        started = time.perf_counter()
        for query_id, text in queries.items():
            scores: dict[str, float] = {}
            for rank, doc in enumerate(retriever.invoke(text, k=200)):
                corpus_id = id_of.get(doc.metadata["doc_id"])
                if corpus_id is not None and corpus_id not in scores:
                    scores[corpus_id] = 1.0 / (rank + 1)  # a document ranks where its best chunk does
            run[query_id] = scores or {"__none__": 0.0}
        query_ms = (time.perf_counter() - started) * 1000 / max(1, len(queries))
        metrics = evaluate(Qrels(qrels), Run(run), ["ndcg@10", "mrr@10", "recall@100"])
        results[mode] = {name: round(float(value), 4) for name, value in metrics.items()}
        results[mode]["query_ms"] = round(query_ms, 1)
    results["reference"] = REFERENCE.get(folder.name.lower(), {})
    return results


def format_results(results: dict) -> str:
    lines = [f"{results['dataset']}: {results['documents']} documents, {results['queries']} test queries; "
             f"indexed in {results['index_seconds']} s", f"{'mode':<8} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8} {'ms/query':>9}"]
    for mode in MODES:
        m = results[mode]
        lines.append(f"{mode:<8} {m['ndcg@10']:>8.4f} {m['mrr@10']:>8.4f} {m['recall@100']:>8.4f} {m['query_ms']:>9.1f}")
    for name, figures in results.get("reference", {}).items():
        lines.append(f"published {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return "\n".join(lines)
