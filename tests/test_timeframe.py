"""Periods named in a question become the date filter (rag.answer.timeframe), over a real Chroma index."""

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.llm import Generator, chat_generator
from rag.answer.pipeline import Final, Restart, Sources, build_pipeline
from rag.answer.retrieve import Filters
from rag.answer.timeframe import newest_first, timeframe_of
from rag.schema import Passage


def fake_generator(*replies: str) -> Generator:
    return chat_generator("fake/model", GenericFakeChatModel(messages=iter(replies)))


@pytest.mark.parametrize(("question", "date_from", "date_to", "label"), [
    ("What did the White House announce on chips in January 2025?", "2025-01-01", "2025-01-31",
     "Articles from January 2025"),
    ("What has changed since the 2023 executive order?", "2023-01-01", "", "Articles since 2023"),
    ("What happened between March 2024 and June 2024?", "2024-03-01", "2024-06-30",
     "Articles from March 2024 to June 2024"),
    ("What was published before 2020?", "", "2019-12-31", "Articles before 2020"),
    ("What was said after May 5, 2024?", "2024-05-06", "", "Articles after 5 May 2024"),
    ("What happened on 2025-01-14?", "2025-01-14", "2025-01-14", "Articles from 14 January 2025"),
    ("Which rules came into force from 2021 to 2023?", "2021-01-01", "2023-12-31", "Articles from 2021 to 2023"),
])
def test_periods_named_in_a_question_become_dates(question, date_from, date_to, label):
    found = timeframe_of(question)
    assert (found.date_from, found.date_to, found.label) == (date_from, date_to, label)


@pytest.mark.parametrize("question", [
    "What does the 2023 executive order say?",  # the year names the order, not the articles
    "How many parameters does Mythos 5 have?",
    "What did agencies spend 2024 dollars on?",
])
def test_a_year_that_names_a_thing_is_not_a_period(question):
    assert not timeframe_of(question).has_period


def test_latest_asks_for_newer_articles_first_among_the_relevant_ones():
    def passage(doc_id, date, similarity):
        return Passage(chunk_id=doc_id, doc_id=doc_id, title=doc_id, text="", date=date, dense_score=similarity)

    old_best, new_close, newest_unrelated, undated = (passage("old", "2021-05-01", 0.70), passage("new", "2025-02-01", 0.65),
                                                      passage("far", "2026-01-01", 0.30), passage("nodate", "", 0.69))
    assert timeframe_of("What is the latest guidance on federal AI use?").newest_first
    ranked = newest_first([old_best, undated, newest_unrelated, new_close])
    assert [p.doc_id for p in ranked] == ["new", "old", "nodate", "far"]


def test_an_answer_from_the_period_named_says_which_period_it_searched(indexed):
    pipeline = build_pipeline(indexed.settings, indexed.retriever,
                              fake_generator("Tolls for fishing boats were cut by 40 percent [1]."))
    events = list(pipeline.stream("How much were harbour tolls for fishing boats cut in March 2024?"))
    answer = events[-1].answer
    assert not answer.refused and not any(isinstance(e, Restart) for e in events)
    assert {p.doc_id for p in answer.contexts} == {"harbour-tolls"}, "only March 2024 articles were searched"
    assert answer.timeframe["applied"] and answer.timeframe["date_from"] == "2024-03-01"
    assert answer.to_json()["timeframe"]["label"] == "Articles from March 2024"
    assert answer.to_json()["filters"] == {"doc_ids": [], "date_from": "2024-03-01", "date_to": "2024-03-31"}
    assert answer.timeframe["undated_articles"] == 0


def test_when_nothing_in_the_period_answers_all_articles_are_searched_and_the_answer_says_so(indexed, corpus_dir):
    (corpus_dir / "bridge.txt").write_text("Bridge Repairs Scheduled\nDate: 2022-06-01\n\nThe old bridge will close "
                                           "for repairs in August 2024, the transport office said.\n", encoding="utf-8")
    reindex(indexed, corpus_dir)
    pipeline = build_pipeline(indexed.settings, indexed.retriever, fake_generator(
        "The articles don't say.",  # asked over 2024's articles only: harbour tolls, not the bridge
        "The old bridge will close for repairs in August 2024 [1]."))
    events = list(pipeline.stream("When will the old bridge close for repairs in 2024?"))
    restarts = [e for e in events if isinstance(e, Restart)]
    assert len(restarts) == 1 and "articles from 2024" in restarts[0].note
    sources = [e for e in events if isinstance(e, Sources)]
    assert {p.doc_id for p in sources[0].passages} == {"harbour-tolls"}, "first, 2024's articles only"
    answer = events[-1].answer
    assert not answer.refused and answer.citations[0].doc_id == "bridge"
    assert answer.timeframe["applied"] is False and "searching all articles" in answer.timeframe["note"]


def reindex(indexed, corpus_dir):
    from rag.ingest.index import index_articles, open_record_manager
    from rag.ingest.load import load_paths

    index_articles(load_paths([corpus_dir]).articles, store=indexed.store(), chunker=indexed.chunker,
                   record_manager=open_record_manager(indexed.settings))


def test_undated_articles_left_out_by_an_inferred_period_are_counted(indexed, corpus_dir):
    (corpus_dir / "ferry.txt").write_text("Ferry Timetable Changes\n\nThe harbour ferry will run every "
                                          "twenty minutes on weekdays.\n", encoding="utf-8")
    reindex(indexed, corpus_dir)
    pipeline = build_pipeline(indexed.settings, indexed.retriever,
                              fake_generator("Tolls for fishing boats were cut by 40 percent [1]."))
    answer = pipeline.ask("How much were harbour tolls for fishing boats cut in 2024?")
    assert answer.timeframe["applied"] and answer.timeframe["undated_articles"] == 1
    assert "ferry" not in {p.doc_id for p in answer.contexts}


def test_the_readers_own_dates_and_infer_dates_off_leave_the_question_unfiltered(indexed):
    question = "How much were harbour tolls for fishing boats cut in 2025?"
    reply = "Tolls for fishing boats were cut by 40 percent [1]."
    off = build_pipeline(indexed.settings, indexed.retriever, fake_generator(reply)).ask(question, infer_dates=False)
    assert off.timeframe is None and "harbour-tolls" in {p.doc_id for p in off.contexts}
    own = build_pipeline(indexed.settings, indexed.retriever, fake_generator(reply)).ask(
        question, Filters(date_from="2024-01-01", date_to="2024-12-31"))
    assert own.timeframe is None and {p.doc_id for p in own.contexts} == {"harbour-tolls"}


def test_latest_puts_the_newest_relevant_article_first_in_the_prompt(indexed):
    pipeline = build_pipeline(indexed.settings, indexed.retriever, fake_generator("unused"))
    events = list(pipeline.stream("What is the latest decision by the council, the library or the board?"))
    shown = next(e for e in events if isinstance(e, Sources)).passages
    dates = [p.date for p in shown]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) > 1
    assert isinstance(events[-1], Final) and events[-1].answer.timeframe["newest_first"]
