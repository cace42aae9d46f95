"""Evaluation metrics: evidence matching, correctness, refusal accounting."""

from rag.evaluate import QuestionResult, contains_required, evidence_rank, load_question_set, summarize

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
                          timings={"retrieve_ms": 10.0, "first_token_ms": ttft, "total_ms": ttft * 2})


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
