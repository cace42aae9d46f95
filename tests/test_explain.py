"""The trace staff read to see why an answer came out as it did (rag.answer.explain), with a fake model."""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.explain import format_trace, trace
from rag.answer.llm import chat_generator
from rag.answer.pipeline import build_pipeline
from rag.quality.evaluate import QuestionResult
from rag.quality.runs import RunStore, compare, format_comparison

from .conftest import sqlite_at


def ask(indexed, question: str, reply: str):
    generator = chat_generator("fake/model", GenericFakeChatModel(messages=iter([reply])))
    return build_pipeline(indexed.settings, indexed.retriever, generator).ask(question)


def test_the_trace_shows_which_sentence_was_kept_and_why_the_other_was_dropped(indexed):
    answer = ask(indexed, "How much were harbour tolls for fishing boats cut?",
                 "Tolls for fishing boats were cut by 40 percent [1]. The mayor resigned over the vote in protest [1].")
    t = trace(answer)
    assert t["decision"] == "answered: 1 of 2 sentences kept"
    kept, dropped = t["sentences"]
    assert kept["supported"] and kept["support"] >= 0.5 and kept["reason"] == ""
    assert not dropped["supported"] and dropped["reason"], "a dropped sentence says why"
    assert t["ranking"][0]["doc_id"] == "harbour-tolls" and t["ranking"][0]["dense_rank"] == 1
    assert "40 percent" in t["prompt"] and t["model_output"].startswith("Tolls")
    text = format_trace(t)
    assert "dropped:" in text and "kept, cites [1]" in text


def test_the_trace_names_the_check_that_refused(indexed):
    answer = ask(indexed, "When does the toll reform take effect?", "The reform is paid for by a levy on cruise ships [1].")
    assert answer.refused
    assert "asks for a date" in trace(answer)["decision"]
    unrelated = indexed.settings.model_copy(update={"min_dense_score": 0.99})
    never = chat_generator("fake/model", GenericFakeChatModel(messages=iter([])))
    refused = build_pipeline(unrelated, indexed.retriever, never).ask("Recipe for banana bread?")
    assert trace(refused)["decision"].startswith("refused before asking the model")


def test_compare_says_why_a_question_flipped(tmp_path, indexed):
    runs = RunStore(sqlite_at(tmp_path / "eval.sqlite"))
    question = "When does the toll reform take effect?"
    wrong = ask(indexed, question, "The reform is paid for by a levy on cruise ships [1].")
    right = ask(indexed, question, "The reform takes effect on July 1 [1].")
    ids = []
    for answer in (wrong, right):
        result = QuestionResult(id="q1", question=question, answerable=True, answer=answer.answer,
                                refused=answer.refused, evidence_rank=1, correct=not answer.refused,
                                trace=trace(answer))
        ids.append(runs.save("set.jsonl", {}, {"correct": float(result.correct)}, [result]))
    text = format_comparison(compare(runs, *ids))
    assert "BETTER (1)" in text and "A: refused: the question asks for a date" in text and "B: answered" in text


def test_a_readers_thumbs_down_can_be_explained_by_staff(tmp_path, indexed):
    from pydantic import SecretStr

    from rag.web.feedback import FeedbackStore
    from rag.web.staff import Staff

    settings = indexed.settings.model_copy(update={"staff_password": SecretStr("a long staff password")})
    indexed.settings = settings
    feedback = FeedbackStore(sqlite_at(tmp_path / "app.sqlite"))
    answer = indexed.pipeline.ask("How much were harbour tolls for fishing boats cut?")
    answer.id = "reader-answer-1"
    feedback_id = feedback.record(answer, rating=-1, comment="too vague")
    staff = Staff(indexed, feedback, [])
    text = staff.explain_feedback("a long staff password", feedback_id)
    assert text.startswith("How much were harbour tolls") and "The reader saw:" in text
    assert "DECISION" in text and "harbour-tolls" in text and "CHECKER" in text
