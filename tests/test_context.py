"""Choosing what the model reads: the best sentences of the retrieved passages, within a budget."""

from langchain_core.embeddings import FakeEmbeddings

from rag.answer.context import SentenceVectors, estimate_tokens, focus, passage_sentences
from rag.answer.prompt import format_passages
from rag.schema import Passage

PASSAGES = [
    Passage(chunk_id="a", doc_id="port", title="Port Budget",
            text="The port authority met on Tuesday. Members discussed the weather and parking. "
                 "The authority approved a dredging budget of 38 million dollars for the north channel. "
                 "Lunch was served afterwards."),
    Passage(chunk_id="b", doc_id="ferry", title="Ferry Timetable",
            text="Winter ferry service runs four sailings a day.\n- Summer service runs eight sailings.\n"
                 "- Tickets are sold at the pier."),
]


def test_the_sentence_that_answers_is_chosen_and_the_chatter_is_left_out():
    shown = focus("How much is the dredging budget for the north channel?", PASSAGES, None,
                  budget_tokens=30, max_passages=4)
    assert shown[0].chunk_id == "a"
    assert "38 million" in shown[0].shown
    assert "Lunch" not in shown[0].shown and "weather" not in shown[0].shown
    assert shown[0].text == PASSAGES[0].text  # the reader and the citations still get the whole passage


def test_the_budget_and_the_passage_limit_hold():
    shown = focus("How many ferry sailings a day in winter and summer, and the dredging budget?", PASSAGES, None,
                  budget_tokens=40, max_passages=1)
    assert len(shown) == 1
    assert sum(estimate_tokens(s) for s in passage_sentences(shown[0].shown)) <= 40


def test_list_items_are_sentences_of_their_own():
    assert passage_sentences(PASSAGES[1].text) == [
        "Winter ferry service runs four sailings a day.", "- Summer service runs eight sailings.",
        "- Tickets are sold at the pier."]


def test_sentences_kept_apart_are_joined_with_an_ellipsis_and_the_prompt_shows_only_them():
    shown = focus("When did the port authority meet, and what budget did it approve?", PASSAGES[:1], None,
                  budget_tokens=32, max_passages=4)
    assert "Tuesday." in shown[0].shown and "… The authority approved" in shown[0].shown
    prompt = format_passages(shown)
    assert "38 million" in prompt and "Lunch" not in prompt


def test_sentence_vectors_find_a_paraphrase_that_shares_no_word(embedding_model):
    shown = focus("What will it cost to deepen the waterway?", PASSAGES, SentenceVectors(embedding_model),
                  budget_tokens=25, max_passages=4)
    assert "38 million" in shown[0].shown


def test_sentence_vectors_are_remembered_within_a_bound():
    class Counting(FakeEmbeddings):
        embedded: list = []

        def embed_documents(self, texts):
            self.embedded.extend(texts)
            return super().embed_documents(texts)

    model = Counting(size=8)
    vectors = SentenceVectors(model, max_items=3)
    first = vectors.sentences(["a", "b", "a"])
    assert model.embedded == ["a", "b"] and first[0] == first[2]
    assert vectors.sentences(["b", "a"]) == [first[1], first[0]] and model.embedded == ["a", "b"]  # remembered
    vectors.sentences(["c", "d"])  # "b" and "a" were used last before c and d: "b" is the oldest now
    assert len(vectors._cache) == 3 and "b" not in vectors._cache
