"""Evaluation metrics: evidence matching, correctness, refusal accounting."""

import pytest

from rag.quality.evaluate import (
    QuestionResult,
    contains_required,
    evidence_rank,
    failure_kind,
    load_question_set,
    summarize,
)

from .conftest import SEED_QUESTIONS


def test_evidence_matches_across_wrapping_markup_and_case():
    contexts = ["Nothing here.", "It required reporting above 10<sup>26</sup>\n  integer or **floating-point** operations."]
    assert evidence_rank(contexts, ["above 10<sup>26</sup> integer or floating-point"]) == 2
    assert evidence_rank(contexts, ["not present"]) is None


def test_correct_needs_one_alternative_from_every_group():
    assert contains_required("Mythos 5 and Fable 5", [["Mythos"], ["Fable", "Saga"]])
    assert not contains_required("Only Mythos 5", [["Mythos"], ["Fable"]])


def result(id, answerable, rank=None, correct=None, refused=False, ttft=100.0):
    return QuestionResult(id=id, question="q", answerable=answerable, answer="a", refused=refused,
                          evidence_rank=rank, correct=correct, contexts=[{}],
                          timings={"retrieve_ms": 10.0, "first_token_ms": ttft, "total_ms": ttft * 2},
                          failure=failure_kind(answerable, refused, correct, rank))


def test_summary_counts_hits_refusals_and_latency():
    results = [result("a", True, rank=1, correct=True), result("b", True, rank=4, correct=False),
               result("c", True, rank=None, correct=False, refused=True),
               result("d", False, refused=True), result("e", False, refused=False)]
    summary = summarize(results)
    assert summary["hit@1"] == round(1 / 3, 3) and summary["hit@5"] == round(2 / 3, 3)
    assert summary["mrr"] == round((1 + 0.25) / 3, 3)
    assert summary["correct"] == round(1 / 3, 3)
    assert summary["refused_unanswerable"] == 0.5 and summary["false_refusals"] == 1
    assert summary["first_token_ms_p50"] == 100.0


def test_the_shared_question_sets_parse(tmp_path):
    if SEED_QUESTIONS.exists():
        rows = load_question_set(SEED_QUESTIONS)
        assert len(rows) >= 20 and all("question" in r for r in rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no id"}\n')
    try:
        load_question_set(bad)
    except ValueError as exc:
        assert "bad.jsonl:1" in str(exc)
    else:
        raise AssertionError("a line without an id must be rejected")


def test_each_failure_is_told_apart_by_where_the_evidence_was():
    assert failure_kind(True, refused=False, correct=False, evidence_rank=2) == "off_target"
    assert failure_kind(True, refused=False, correct=False, evidence_rank=None) == "wrong_unretrieved"
    assert failure_kind(True, refused=True, correct=False, evidence_rank=1) == "refused_with_evidence"
    assert failure_kind(True, refused=True, correct=False, evidence_rank=None) == "refused_unretrieved"
    assert failure_kind(False, refused=False, correct=None, evidence_rank=None) == "unanswerable_answered"
    assert failure_kind(True, refused=False, correct=True, evidence_rank=1) is None
    assert failure_kind(False, refused=True, correct=None, evidence_rank=None) is None


def test_summary_counts_failure_kinds_and_the_trust_score():
    results = [result("a", True, rank=1, correct=True), result("b", True, rank=4, correct=False),
               result("c", True, rank=1, correct=False, refused=True),
               result("d", False, refused=True), result("e", False, refused=False)]
    summary = summarize(results)
    assert (summary["off_target"], summary["refused_with_evidence"], summary["unanswerable_answered"]) == (1, 1, 1)
    # answering: 1 correct of 3 answered (a, b, e), 3 answerable -> P = R = 1/3
    assert summary["answer_f1"] == round(1 / 3, 3)
    # refusing: 1 right of 2 refused (c, d), 2 unanswerable (d, e) -> P = R = 1/2
    assert summary["refusal_f1"] == 0.5
    assert summary["trust_score"] == round((0.333 + 0.5) / 2, 3)
    # Of the three answers shown (a, b, e) one was right: precision 1/3, two wrong shown.
    assert (summary["answered_precision"], summary["answers_shown"], summary["wrong_shown"]) == (0.333, 3, 2)


def test_answered_precision_counts_only_what_a_reader_was_shown():
    shown_right = [result(str(i), True, rank=1, correct=True) for i in range(9)]
    withheld = [result(f"w{i}", True, rank=1, correct=False, refused=True) for i in range(5)]
    summary = summarize(shown_right + withheld + [result("u", False, refused=False)])
    assert summary["answered_precision"] == 0.9 and summary["wrong_shown"] == 1
    assert summarize(withheld)["answered_precision"] is None  # nothing shown: nothing to be wrong about


def test_refusing_everything_or_answering_everything_scores_low_trust():
    answerable = [result(str(i), True, rank=1, correct=True) for i in range(8)]
    unanswerable = [result(f"u{i}", False, refused=False) for i in range(2)]
    answers_all = summarize(answerable + unanswerable)
    refuses_all = summarize([result(str(i), True, rank=1, correct=False, refused=True) for i in range(8)]
                            + [result(f"u{i}", False, refused=True) for i in range(2)])
    assert answers_all["refusal_f1"] == 0.0 and answers_all["trust_score"] < 0.5
    assert refuses_all["answer_f1"] == 0.0 and refuses_all["trust_score"] < 0.5


def test_whole_article_questions_are_scored_per_kind_in_json_text_and_html(indexed):
    """Issue 32: key-point coverage (a refusal scores 0), sources cited for digests, and the
    checker's verdict on every point shown — per kind, in the summary, the text report and the HTML."""
    from rag.quality.evaluate import format_report, run
    from rag.quality.report import run_report

    rows = [
        {"id": "s1", "kind": "summary", "question": "Summarize the harbour toll reform article", "answerable": True,
         "sources": ["harbour-tolls"], "key_points": [["40 percent"], ["levy on cruise ships"], ["volcano"]]},
        {"id": "d1", "kind": "digest", "question": "Which articles were published in 2024?", "answerable": True,
         "sources": ["harbour-tolls", "library-hours"], "key_points": [["Harbour"]]},
        {"id": "f1", "kind": "fact", "question": "How much were harbour tolls cut?", "answerable": True,
         "answer_must_include": [["40"]]},
        {"id": "s2", "kind": "summary", "question": "How tall is the volcano?", "answerable": True,
         "key_points": [["metres"]]},  # refused: scores 0
    ]
    results = run(indexed.pipeline, rows)
    by_id = {r.id: r for r in results}
    assert by_id["s1"].answer_kind == "summary" and by_id["s1"].key_point_coverage == round(2 / 3, 3)
    assert by_id["s1"].point_verdicts and all(v["supported"] for v in by_id["s1"].point_verdicts)
    assert by_id["d1"].sources_cited == 0.5  # library-hours is from 2023
    assert by_id["s2"].refused and by_id["s2"].key_point_coverage == 0.0
    summary = summarize(results)
    kinds = summary["by_kind"]
    assert kinds["summary"]["questions"] == 2 and kinds["summary"]["key_point_coverage"] == pytest.approx(1 / 3, abs=0.002)
    assert kinds["digest"]["sources_cited"] == 0.5 and kinds["summary"]["points_checked_ok"] == 1.0
    assert "kind summary" in format_report(summary, results)
    html = run_report({"id": 1, "question_set": "x", "created_at": "now", "code_version": "c", "summary": summary,
                       "settings": {}}, [__import__("dataclasses").asdict(r) for r in results])
    assert "By kind of question" in html and "key points 0.667" in html
