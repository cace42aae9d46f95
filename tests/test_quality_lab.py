"""The staff's quality lab: stored runs, comparisons, HTML reports, feedback export, BEIR benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag.quality.bench import format_results, run_beir
from rag.quality.evaluate import QuestionResult, citation_quality
from rag.quality.report import run_report
from rag.quality.runs import RunStore, compare
from rag.schema import Answer, Citation
from rag.settings import Settings

from .conftest import REPO, sqlite_at


def result(id, correct, refused=False, rank=1, answerable=True):
    return QuestionResult(id=id, question=f"question {id}?", answerable=answerable, answer=f"answer {id} [1]",
                          refused=refused, evidence_rank=rank, correct=correct,
                          timings={"retrieve_ms": 5.0, "first_token_ms": 900.0, "total_ms": 1500.0})


def test_runs_are_stored_and_compared_question_by_question(tmp_path):
    store = RunStore(sqlite_at(tmp_path / "eval.sqlite"))
    a = store.save("set.jsonl", {"top_k": 3}, {"correct": 0.5}, [result("q1", True), result("q2", False)])
    b = store.save("set.jsonl", {"top_k": 4}, {"correct": 0.5}, [result("q1", False, refused=True), result("q2", True)])
    comparison = compare(store, a, b)
    directions = {q["id"]: q["direction"] for q in comparison["questions"]}
    assert directions == {"q1": "worse", "q2": "better"}
    assert comparison["settings_diff"] == {"top_k": {"a": 3, "b": 4}}
    run, results = store.load(a)
    assert run["code_version"] and [r["id"] for r in results] == ["q1", "q2"]


def test_html_report_is_self_contained(tmp_path):
    store = RunStore(sqlite_at(tmp_path / "eval.sqlite"))
    run_id = store.save("set.jsonl", {}, {"correct": 1.0, "hit@5": 1.0}, [result("q1", True)])
    page = run_report(*store.load(run_id))
    assert "data:image/png;base64," in page, "plots are inlined"
    assert "http://" not in page and "https://" not in page, "nothing is fetched from the network"
    assert "question q1?" in page


def test_citation_precision_and_coverage():
    citation = Citation(n=1, doc_id="d", title="t", chunk_id="c", text="The council cut tolls by 40 percent.",
                        start=0, end=10)
    answer = Answer(question="What did the council do?", answer="The council cut tolls by 40 percent. [1] It rained.",
                    refused=False, citations=[citation], contexts=[], timings={}, llm="x")
    precision, coverage = citation_quality(answer, evidence=[])
    assert precision == 1.0 and coverage == 0.5


def test_eval_cli_stores_runs_lists_and_compares(tmp_path):
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "rag", "index", "corpus"], cwd=REPO, env=env, check=True, capture_output=True)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "k", "question": "Which Chinese model has comparable capabilities?",
                                     "answerable": True, "answer_must_include": [["Kimi"]], "evidence": ["Kimi 2.7"]}) + "\n")

    def rag(*args):
        return subprocess.run([sys.executable, "-m", "rag", *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)

    first = rag("eval", str(questions), "--set", "llm=extractive", "--json")
    second = rag("eval", str(questions), "--set", "llm=extractive", "--set", "retrieval_mode=bm25", "--json")
    run_a, run_b = json.loads(first.stdout)["summary"]["run_id"], json.loads(second.stdout)["summary"]["run_id"]
    assert json.loads(first.stdout)["summary"]["correct"] == 1.0
    assert str(run_a) in rag("eval", "--list").stdout
    compared = rag("eval", "--compare", str(run_a), str(run_b))
    assert "retrieval_mode: hybrid -> bm25" in compared.stdout
    assert (tmp_path / "data" / "reports" / f"compare-{run_a}-{run_b}.html").exists()
    assert (tmp_path / "data" / "reports" / f"run-{run_a}.html").exists()


def test_thumbs_down_feedback_exports_as_a_question_set(tmp_path):
    from rag.quality.evaluate import load_question_set
    from rag.web.feedback import FeedbackStore

    feedback = FeedbackStore(sqlite_at(tmp_path / "data" / "app.sqlite"))
    answer = Answer(question="Who signed it?", answer="Nobody [1].", refused=False, citations=[], contexts=[],
                    timings={}, llm="x")
    feedback.record(answer, rating=-1, comment="wrong")
    feedback.record(answer, rating=1)
    out = tmp_path / "review.jsonl"
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "rag", "feedback", "export", str(out)], cwd=REPO, env=env, check=True,
                   capture_output=True)
    rows = load_question_set(out)
    assert len(rows) == 1 and rows[0]["question"] == "Who signed it?" and rows[0]["review"]["comment"] == "wrong"


def test_beir_benchmark_runs_all_modes_on_a_tiny_dataset(tmp_path, embedding_model):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": "Vitamin D deficiency is linked to bone loss in older adults.",
            "d2": "Solar panels convert sunlight into electricity using photovoltaic cells.",
            "d3": "Regular exercise lowers blood pressure in adults with hypertension."}
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in
                                                    [("q1", "Does vitamin D affect bones?"), ("q2", "How do photovoltaic panels work?")]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    results = run_beir(folder, Settings(_env_file=None), embedding_model=embedding_model)
    for mode in ("dense", "bm25", "hybrid"):
        assert results[mode]["ndcg@10"] == pytest.approx(1.0)
        assert set(results[mode]) >= {"ndcg@10", "mrr@10", "recall@100", "query_ms"}
    assert "hybrid" in format_results(results)


def test_optional_judge_is_labelled_model_judged():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from rag.quality.evaluate import judge

    answered = result("q1", True)
    answered.contexts = [{"text": "The council cut tolls by 40 percent."}]
    refused = result("q2", False, refused=True)
    scores = judge([answered, refused], FakeListChatModel(responses=["YES", "NO"]))
    assert scores == {"judge_faithfulness (model-judged)": 1.0, "judge_relevancy (model-judged)": 0.0}


def test_html_report_shows_the_failure_kinds_and_the_trust_score(tmp_path):
    from rag.quality.evaluate import failure_kind, summarize

    results = [result("q1", True), result("q2", False, rank=2), result("q3", False, refused=True, rank=1),
               result("q4", None, refused=False, rank=None, answerable=False)]
    for r in results:
        r.failure = failure_kind(r.answerable, r.refused, r.correct, r.evidence_rank)
    store = RunStore(sqlite_at(tmp_path / "eval.sqlite"))
    run_id = store.save("set.jsonl", {}, summarize(results), results)
    page = run_report(*store.load(run_id))
    assert "trust score <b>" in page
    for kind in ("off_target", "refused_with_evidence", "unanswerable_answered"):
        assert f"<tr><td>{kind}</td><td>1</td>" in page, kind
    assert "<span class='muted'>off_target</span>" in page  # and per question
