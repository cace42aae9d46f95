"""Evidence before answer: the JSON reply's sentence numbers, its streamed answer, and the
probability that the evidence list was empty."""

import json
import math

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from rag.answer import finalize
from rag.confidence import TokenChoice, empty_evidence_probability, refusal_probability
from rag.llm import answer_from_evidence, evidence_generator
from rag.prompt import REFUSAL, evidence_schema, format_sentences
from rag.schema import Passage

BUDGET = Passage(chunk_id="b:0", doc_id="budget", title="Agency budget",
                 text="The agency spent $5 million on AI in 2023. It hired 40 staff.")
CLOUD = Passage(chunk_id="c:0", doc_id="cloud", title="Cloud plan", date="2024-02-01",
                text="The cloud plan was adopted in 2024.", shown="The cloud plan was adopted in 2024.")


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_every_shown_sentence_is_numbered_and_mapped_to_its_passage():
    text, owners = format_sentences([BUDGET, CLOUD])
    assert owners == [1, 1, 2]
    assert "[1] The agency spent $5 million on AI in 2023." in text
    assert "[2] It hired 40 staff." in text and "[3] The cloud plan was adopted in 2024." in text
    assert text.count("Article:") == 2 and text.startswith("<passages>") and text.endswith("</passages>")


def test_sentences_the_context_stage_skipped_stay_apart():
    shown = Passage(chunk_id="x", doc_id="x", title="X", text="A. B. C.", shown="Alpha rose. … Gamma fell.")
    _, owners = format_sentences([shown])
    assert owners == [1, 1]


def test_the_schema_allows_only_sentence_numbers_that_exist():
    schema = evidence_schema(7)
    assert list(schema["properties"]) == ["evidence", "answer"]  # evidence is written first
    assert schema["properties"]["evidence"]["items"]["maximum"] == 7
    assert schema["properties"]["evidence"]["maxItems"] == 3


def test_the_answer_streams_and_ends_with_the_evidence_passages():
    reply = json.dumps({"evidence": [3, 1], "answer": "It spent $5 million; the plan came in 2024."})
    streamed = list(answer_from_evidence(pieces(reply), owners=[1, 1, 2]))
    assert len(streamed) > 3, "the answer arrives piece by piece, not at the end"
    assert "".join(streamed) == "It spent $5 million; the plan came in 2024. [2][1]"


def test_an_empty_evidence_list_is_a_refusal_without_waiting_for_the_answer():
    consumed = []

    def reply():
        for piece in pieces('{"evidence": [], "answer": "The agency spent a lot on cloud computing in 2023."}'):
            consumed.append(piece)
            yield piece

    assert "".join(answer_from_evidence(reply(), owners=[1, 1])) == REFUSAL
    assert len(consumed) < 12, "generation stops once the list closes empty"


def test_sentence_numbers_that_do_not_exist_are_ignored():
    reply = json.dumps({"evidence": [9], "answer": "Made up."})
    assert "".join(answer_from_evidence(pieces(reply), owners=[1, 1])) == REFUSAL


def test_an_off_target_answer_still_faces_the_checker():
    # The model cites the budget sentence but answers a question about hiring with a date.
    reply = "".join(answer_from_evidence(pieces(json.dumps({"evidence": [1], "answer": "In 2023."})), [1, 1]))
    answer = finalize("How many staff did the agency hire?", reply, [BUDGET], {}, "fake")
    assert answer.refused


def test_the_generator_runs_the_chat_model_and_checks_nothing_itself():
    reply = json.dumps({"evidence": [2], "answer": "It hired 40 staff."})
    model = GenericFakeChatModel(messages=iter([AIMessage(reply)]))
    generator = evidence_generator("fake", model)
    text = "".join(generator.runnable.stream({"question": "How many staff?", "passages": [BUDGET]}))
    assert text == "It hired 40 staff. [1]"
    answer = finalize("How many staff did the agency hire?", text, [BUDGET], {}, "fake")
    assert not answer.refused and "40" in answer.answer and answer.citations[0].chunk_id == "b:0"


def choice(token: str, **top: float) -> TokenChoice:
    top = {t.replace("_", " "): math.log(p) for t, p in top.items()}
    return TokenChoice(token, top.get(token, math.log(0.5)), top)


def test_empty_evidence_probability_is_read_where_the_list_opens():
    opening = [choice("{\n"), choice(' "'), choice("evidence"), choice('":')]
    unsure = [*opening, choice(" [", **{"_[": 0.65, "_[],\n": 0.26, "_[],": 0.01}), choice("2")]
    sure = [*opening, choice(" [", **{"_[": 0.97, "_[],\n": 0.003}), choice("1")]
    refused = [*opening, choice(" [],\n", **{"_[],\n": 0.8, "_[": 0.2})]
    assert math.isclose(empty_evidence_probability(unsure), 0.27)
    assert math.isclose(empty_evidence_probability(sure), 0.003)
    assert math.isclose(refusal_probability(refused), 0.8)  # the JSON path is recognised
    assert empty_evidence_probability(opening) is None
