"""Refusal confidence from the model's token probabilities, and what the pipeline does with it."""

import math

from langchain_core.runnables import RunnableLambda

from rag.answer.confidence import TokenChoice, answering_start, refusal_probability
from rag.answer.llm import Generator, UsageRecorder
from rag.answer.pipeline import Pipeline, finalize
from rag.answer.prompt import REFUSAL
from rag.schema import Passage
from rag.settings import Settings


def step(token: str, p: float, **others: float) -> TokenChoice:
    top = {token: math.log(p), **{t.replace("_", " "): math.log(q) for t, q in others.items()}}
    return TokenChoice(token, math.log(p), top)


SURE_REFUSAL = [step("The", 0.95, There=0.02), step(" articles", 0.98, _port=0.01)]
UNSURE_REFUSAL = [step("The", 0.9, USDA=0.08), step(" articles", 0.55, _USDA=0.4)]
SURE_ANSWER = [step("USDA", 0.9, The=0.05), step(" estimated", 0.9)]


def test_refusal_probability_is_read_off_the_first_two_steps():
    assert math.isclose(refusal_probability(SURE_REFUSAL), 0.95 * 0.98)
    assert math.isclose(refusal_probability(UNSURE_REFUSAL), 0.9 * 0.55)
    assert math.isclose(refusal_probability(SURE_ANSWER), 0.05)  # off the refusal path: P("The") bounds it
    assert refusal_probability([]) is None


def test_the_likeliest_answering_start_is_offered_for_an_unsure_refusal():
    assert answering_start(UNSURE_REFUSAL) == "The USDA"  # 0.9 * 0.4 beats "USDA" at 0.08
    assert answering_start(SURE_ANSWER) is None


PASSAGES = [Passage(chunk_id="a", doc_id="milk", title="Breastfeeding Report",
                    text="According to USDA, the U.S. would save a minimum of $3.6 billion if breastfeeding "
                         "increased to meet the Healthy People goals.")]
QUESTION = "What minimum amount did USDA estimate the country would save from more breastfeeding?"


def pipeline(continuation_text: str, **settings) -> tuple[Pipeline, list]:
    asked = []

    def continue_reply(inputs):
        asked.append(inputs["start"])
        return continuation_text

    generator = Generator(name="fake", runnable=RunnableLambda(lambda x: ""),
                          continuation=RunnableLambda(continue_reply))
    return Pipeline(Settings(_env_file=None, **settings), retriever=None, generator=generator), asked


def recorded(steps: list[TokenChoice]) -> UsageRecorder:
    usage = UsageRecorder()
    usage.first_steps = steps
    return usage


def test_an_unsure_refusal_is_asked_again_and_the_checked_answer_kept():
    pipe, asked = pipeline(" would save a minimum of $3.6 billion, USDA estimated.", reask_below=0.8)
    first = finalize(QUESTION, REFUSAL, PASSAGES, {}, "fake")
    answer = pipe.second_opinion(first, QUESTION, PASSAGES, recorded(UNSURE_REFUSAL))
    assert asked == ["The USDA"]
    assert not answer.refused and "3.6 billion" in answer.answer and answer.citations[0].chunk_id == "a"
    assert "re-asked" in answer.model_output


def test_a_sure_refusal_is_not_asked_again():
    pipe, asked = pipeline("unused", reask_below=0.8)
    first = finalize(QUESTION, REFUSAL, PASSAGES, {}, "fake")
    answer = pipe.second_opinion(first, QUESTION, PASSAGES, recorded(SURE_REFUSAL))
    assert asked == [] and answer.refused


def test_an_answer_the_model_nearly_withheld_is_refused():
    pipe, _ = pipeline("unused", refuse_above=0.4)
    nearly = [step("The", 0.9), step(" U", 0.5, _articles=0.45)]  # P(refuse) = 0.405
    first = finalize(QUESTION, "The U.S. would save a minimum of $3.6 billion.", PASSAGES, {}, "fake")
    assert not first.refused
    answer = pipe.second_opinion(first, QUESTION, PASSAGES, recorded(nearly))
    assert answer.refused and answer.refusal_probability > 0.4
