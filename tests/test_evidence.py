"""Evidence before answer (``RAG_PROMPT_STYLE=evidence``): sentence numbers, the streamed answer,
its markers, and the probability that the evidence was "none"."""

import math

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from rag.answer.confidence import TokenChoice, no_evidence_probability
from rag.answer.llm import answer_from_evidence, evidence_generator
from rag.answer.pipeline import finalize
from rag.answer.prompt import EVIDENCE_GRAMMAR, REFUSAL, format_sentences
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


def test_the_answer_streams_and_ends_with_the_evidence_passages():
    streamed = list(answer_from_evidence(pieces(" 3, 1\nAnswer: It spent $5 million; the plan came in 2024."),
                                         owners=[1, 1, 2]))
    assert len(streamed) > 3, "the answer arrives piece by piece, not at the end"
    assert "".join(streamed) == "It spent $5 million; the plan came in 2024. [2][1]"


def test_none_is_a_refusal_without_waiting_for_the_answer():
    consumed = []

    def reply():
        for piece in pieces(" none\nAnswer: The agency spent a lot on cloud computing in 2023."):
            consumed.append(piece)
            yield piece

    assert "".join(answer_from_evidence(reply(), owners=[1, 1])) == REFUSAL
    assert len(consumed) <= 2, "generation stops at the evidence line"


def test_a_reply_that_ignores_the_format_is_refused_and_logged(caplog):
    with caplog.at_level("WARNING", logger="rag.answer.llm"):
        text = "".join(answer_from_evidence(pieces("The agency spent $5 million."), owners=[1, 1]))
    assert text == REFUSAL
    assert "did not follow the evidence format" in caplog.text


def test_sentence_numbers_that_do_not_exist_are_ignored():
    assert "".join(answer_from_evidence(pieces(" 9\nAnswer: Made up."), owners=[1, 1])) == REFUSAL


def test_an_off_target_answer_still_faces_the_checker():
    # The model names the budget sentence but answers a question about hiring with a year.
    reply = "".join(answer_from_evidence(pieces(" 1\nAnswer: In 2023."), [1, 1]))
    assert reply == "In 2023. [1]"
    assert finalize("How many staff did the agency hire?", reply, [BUDGET], {}, "fake").refused


class Recording(GenericFakeChatModel):
    """A fake chat model that remembers what it was sent (messages and request options)."""

    sent: list = []

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.sent.append((messages, kwargs))
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


def test_the_generator_writes_in_the_start_and_sends_the_grammar():
    model = Recording(messages=iter([AIMessage(" 2\nAnswer: It hired 40 staff.")]), sent=[])
    text = "".join(evidence_generator("fake", model).runnable.stream({"question": "How many staff?",
                                                                      "passages": [BUDGET]}))
    assert text == "It hired 40 staff. [1]"
    messages, options = model.sent[0]
    assert messages[-1].type == "ai" and messages[-1].content == "Evidence:"
    assert "[2] It hired 40 staff." in messages[-2].content
    assert options["extra_body"] == {"grammar": EVIDENCE_GRAMMAR}
    answer = finalize("How many staff did the agency hire?", text, [BUDGET], {}, "fake")
    assert not answer.refused and "40" in answer.answer and answer.citations[0].chunk_id == "b:0"


def choice(token: str, **top: float) -> TokenChoice:
    top = {t.replace("_", " "): math.log(p) for t, p in top.items()}
    return TokenChoice(token, top[token.replace("_", " ")] if token in top else math.log(0.5), top)


def test_no_evidence_probability_is_read_off_the_first_token():
    sure = [choice(" ", **{"_": 0.49, "_[": 0.46, "_none": 0.022, "_None": 0.01}), choice("1", **{"1": 0.99})]
    unsure = [choice(" none", **{"_none": 0.47, "_": 0.22, "_[": 0.2, "_None": 0.07})]
    via_space = [choice(" ", **{"_": 0.6, "_none": 0.1}), choice("none", **{"none": 0.5, "3": 0.5})]
    assert math.isclose(no_evidence_probability(sure), 0.032)
    assert math.isclose(no_evidence_probability(unsure), 0.54)
    assert math.isclose(no_evidence_probability(via_space), 0.1 + 0.6 * 0.5)
    assert no_evidence_probability([]) is None
