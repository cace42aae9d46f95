"""Whole-article questions (rag.answer.overview, rag.answer.summary): routing of each wording,
summaries prepared ahead and served without a model call, comparisons with a silent side, digests
grouped by article and limited to a period — over a real Chroma index of the three-article corpus."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from rag.answer.context import SentenceVectors
from rag.answer.overview import comparison_sides, route
from rag.answer.summary import summarize_all, summarize_passages


@pytest.mark.parametrize("question, kind", [
    ("Summarize the article.", "summary"),
    ("Summarise the harbour tolls article", "summary"),
    ("What are the main points of the directive?", "summary"),
    ("What are the key takeaways of GAO-26-108745?", "summary"),
    ("TL;DR of the library hours piece", "summary"),
    ("Give me the gist of the solar report", "summary"),
    ("What is the harbour toll reform about?", "summary"),
    ("What does SB 1001 require?", "summary"),
    ("What does “Solar Panels for Every School” say?", "summary"),
    ("summarize that one", "summary"),
    ("How do the harbour tolls reform and the library hours differ?", "comparison"),
    ("Compare the solar plan with the harbour reform", "comparison"),
    ("What is the difference between Mythos 5 and Fable 5?", "comparison"),
    ("What do the toll reform and the solar plan each require?", "comparison"),
    ("Which articles discuss export controls?", "digest"),
    ("What was published on AI in March 2026?", "digest"),
    ("What did the reports say about cybersecurity?", "digest"),
    ("List the articles about schools", "digest"),
    # facts stay facts
    ("How much were harbour tolls cut?", "answer"),
    ("What does the directive say about Mythos 5?", "answer"),
    ("When does the library open on Sundays?", "answer"),
])
def test_each_wording_takes_its_route(question, kind):
    assert route(question).kind == kind, route(question)


def test_comparison_sides_are_the_two_things_compared():
    assert comparison_sides("How do the harbour tolls reform and the library hours differ?") == [
        "harbour tolls reform", "the library hours"]
    assert comparison_sides("Compare how the directive treats Mythos 5 and Fable 5.") == ["Mythos 5", "Fable 5"]
    assert comparison_sides("Compare the budget") == []


def ask(parts, question, **kwargs):
    return parts.pipeline.ask(question, **kwargs)


def test_a_summary_request_names_its_article_by_title_and_every_point_is_cited_to_it(indexed):
    answer = ask(indexed, "Summarize the harbour toll reform article")
    assert answer.kind == "summary" and not answer.refused
    lines = answer.answer.splitlines()
    assert lines[0].startswith("Harbour Toll Reform Passes")
    points = [line for line in lines if line.startswith("- ")]
    assert points and all(line.rstrip().endswith("]") for line in points), answer.answer
    assert {c.doc_id for c in answer.citations} == {"harbour-tolls"}
    assert "40 percent" in answer.answer  # the article's own central sentence
    assert answer.to_json()["kind"] == "summary"


def test_several_articles_could_be_meant_so_the_answer_offers_them(indexed):
    answer = ask(indexed, "Summarize the article.")
    assert answer.kind == "summary" and not answer.refused and not answer.citations
    assert answer.answer.startswith("Several articles could be meant")
    assert set(answer.choices) == {"harbour-tolls", "library-hours", "solar-schools"}


def test_a_follow_up_summarizes_the_article_the_conversation_is_about(indexed):
    answer = ask(indexed, "summarize that one", about=("library-hours",))
    assert answer.kind == "summary" and {c.doc_id for c in answer.citations} == {"library-hours"}


def test_an_unknown_article_is_said_so_with_the_closest_titles(indexed):
    answer = ask(indexed, "Summarize GAO-26-108745")
    assert answer.answer.startswith("No indexed article matches") and not answer.citations, answer.answer


def test_a_comparison_gives_each_side_its_own_cited_sentences_and_says_when_a_side_is_silent(indexed):
    answer = ask(indexed, "How do the harbour toll reform and volcano insurance differ?")
    assert answer.kind == "comparison", answer.answer
    lines = answer.answer.splitlines()
    harbour = next(line for line in lines if line.startswith("- harbour") or line.startswith("- Harbour"))
    assert "[1]" in harbour and answer.citations[0].doc_id == "harbour-tolls"
    assert any("volcano insurance: the articles say nothing about this" in line for line in lines), answer.answer


def test_a_digest_lists_each_relevant_article_once_newest_first_within_the_period(indexed):
    answer = ask(indexed, "Which articles were published in 2024?")
    assert answer.kind == "digest"
    assert [c.doc_id for c in answer.citations] == ["harbour-tolls"], answer.answer  # 2024-03-05 only
    assert answer.timeframe["applied"]
    everything = ask(indexed, "Which articles discuss money?")
    cited = [c.doc_id for c in everything.citations]
    assert len(cited) == len(set(cited))  # grouped: one line per article
    dates = [indexed.store().get(where={"doc_id": d}, limit=1)["metadatas"][0]["date"] for d in cited]
    assert dates == sorted(dates, reverse=True)


def test_summaries_are_prepared_once_kept_when_unchanged_and_redone_when_changed(indexed, corpus_dir):
    from rag.ingest.index import index_articles, open_record_manager, remove_articles
    from rag.ingest.load import load_paths

    first = indexed.summarize()
    assert first.written == 3 and not first.failed
    stored = {d: indexed.summaries.get(d) for d in ("harbour-tolls", "library-hours", "solar-schools")}
    assert all(s and s.points and s.method == "extractive" for s in stored.values())
    again = indexed.summarize()
    assert again.written == 0 and again.unchanged == 3  # an unchanged re-run does nothing
    answer = ask(indexed, "Summarize the harbour toll reform article")
    assert answer.llm == "summary (prepared)" and answer.timings["first_token_ms"] < 1000

    (corpus_dir / "library-hours.txt").write_text((corpus_dir / "library-hours.txt").read_text().replace(
        "18 percent", "25 percent"))
    index_articles(load_paths([corpus_dir]).articles, store=indexed.store(), chunker=indexed.chunker,
                   record_manager=open_record_manager(indexed.settings))
    changed = indexed.summarize()
    assert changed.written == 1 and changed.unchanged == 2
    assert indexed.summaries.get("harbour-tolls").created_at == stored["harbour-tolls"].created_at
    remove_articles(["solar-schools"], store=indexed.store(), record_manager=open_record_manager(indexed.settings))
    assert indexed.summaries.get("solar-schools") is None  # removed with its article


def test_a_run_killed_midway_resumes_to_the_same_result_as_a_clean_run(indexed, settings, embedding_model):
    calls = []

    def die_after_one():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as good as kill -9 between two articles: each summary is committed alone

    with pytest.raises(KeyboardInterrupt):
        indexed.summarize(before_each=die_after_one)
    assert len(indexed.summaries.fingerprints()) == 1
    resumed = indexed.summarize()
    assert resumed.written == 2 and resumed.unchanged == 1
    kept = {d: [p.text for p in indexed.summaries.get(d).points] for d in indexed.summaries.fingerprints()}
    indexed.summaries.forget(list(kept))
    indexed.summarize()
    assert kept == {d: [p.text for p in indexed.summaries.get(d).points] for d in indexed.summaries.fingerprints()}


def test_a_models_points_are_checked_and_an_invented_one_is_dropped(indexed, embedding_model):
    from rag.answer.summary import article_passages

    passages = article_passages(indexed.store(), "harbour-tolls")
    # The model's reply cites the numbered sentences; the second point is invented.
    model = FakeListChatModel(responses=[
        "- The council voted 7 to 2 to cut harbour tolls for fishing boats by 40 percent [1]\n"
        "- The mayor resigned after the vote and moved to Lisbon [2]\n"
        "- The reform is paid for by a levy on cruise ships [2]"])
    points, method, _tokens = summarize_passages(passages, title="Harbour Toll Reform Passes",
                                                 vectors=SentenceVectors(embedding_model), chat_model=model,
                                                 model_name="fake/model")
    texts = " ".join(p.text for p in points)
    assert method == "fake/model"
    assert "40 percent" in texts and "Lisbon" not in texts and "mayor" not in texts
    assert all(p.chunk_id and p.passage for p in points)


def test_a_summary_written_by_one_machine_is_served_by_another_through_postgresql(postgres, tmp_path, embedding_model,
                                                                                  corpus_dir):
    from rag.components import Components
    from rag.ingest.index import index_articles, open_record_manager
    from rag.ingest.load import load_paths
    from rag.settings import Settings

    url = postgres.new_database("summaries")
    one = Components(Settings(data_dir=tmp_path / "one", llm="extractive", _env_file=None, RAG_RECORD_DB_URL=url),
                     embedding_model=embedding_model)
    index_articles(load_paths([corpus_dir]).articles, store=one.store(create=True), chunker=one.chunker,
                   record_manager=open_record_manager(one.settings))
    assert one.summarize().written == 3
    # Another data dir (its own embedded Chroma, the same PostgreSQL): the summary is there already.
    two = Components(Settings(data_dir=tmp_path / "two", llm="extractive", _env_file=None, RAG_RECORD_DB_URL=url),
                     embedding_model=embedding_model)
    assert two.summaries.get("harbour-tolls").points == one.summaries.get("harbour-tolls").points
    assert not (tmp_path / "two" / "records.sqlite").exists()


def test_summarize_all_forgets_articles_no_longer_indexed(indexed, embedding_model):
    indexed.summarize()
    fingerprints = indexed.fingerprints()
    del fingerprints["library-hours"]
    run = summarize_all(indexed.store(), indexed.summaries, fingerprints, vectors=SentenceVectors(embedding_model))
    assert run.removed == 1 and indexed.summaries.get("library-hours") is None


def test_a_long_article_is_summarised_section_by_section_and_combined(embedding_model):
    from rag.answer.summary import MAX_POINTS, windows
    from rag.schema import Passage

    topics = ["harbour tolls for fishing boats", "library opening hours on Sundays", "solar panels on schools",
              "ferry fares to the islands"]
    passages = []
    for t, topic in enumerate(topics):
        for k in range(6):
            text = " ".join(f"The council discussed {topic} in session {t}-{k}-{n} and agreed on the next steps."
                            for n in range(8))
            passages.append(Passage(chunk_id=f"c{t}-{k}", doc_id="long", title="Council Minutes", text=text,
                                    start=len(passages) * 1000, end=len(passages) * 1000 + len(text)))
    runs = windows(passages)
    assert len(runs) > 1 and [i for run in runs for i in run] == list(range(len(passages)))
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda

    calls = []

    def echo_two(messages):  # a stand-in model: restates the first two numbered sentences it is shown
        calls.append(1)
        numbered = re.findall(r"^\[(\d+)\] (.+)$", messages[-1].content, re.MULTILINE)[:2]
        return AIMessage("\n".join(f"- {sentence} [{n}]" for n, sentence in numbered))

    points, _method, _tokens = summarize_passages(passages, title="Council Minutes", chat_model=RunnableLambda(echo_two),
                                                  vectors=SentenceVectors(embedding_model), model_name="fake/model")
    assert len(calls) == len(runs)  # one model call per section
    assert 1 < len(points) <= MAX_POINTS
    assert len({p.chunk_id[:2] for p in points}) > 1, [p.text for p in points]  # from more than one section


def test_summarize_killed_with_kill_9_resumes_to_the_same_summaries_as_a_clean_run(tmp_path, corpus_dir):
    """``python -m rag summarize`` with a slow model server, killed (SIGKILL) after its first article:
    the next run writes only the rest, and the result equals a clean run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from rag.db import engine_for
    from rag.ingest.summaries import SummaryStore

    from .conftest import REPO
    from .servers import fake_llm_server

    reply = "- The city council voted 7 to 2 to cut harbour tolls for fishing boats by 40 percent [1]"
    with fake_llm_server(reply, delay_s=0.4) as llm:
        def env_for(data: str) -> dict:
            return {**os.environ, "RAG_DATA_DIR": str(tmp_path / data), "RAG_LLM": "openai",
                    "RAG_LLM_BASE_URL": llm.url, "RAG_LLM_MODEL": "fake"}

        def stored(data: str) -> dict:
            store = SummaryStore(engine_for(f"sqlite:///{tmp_path / data / 'records.sqlite'}"), "chroma/articles")
            return {d: [(p.text, p.chunk_id) for p in store.get(d).points] for d in store.fingerprints()}

        for data in ("killed", "clean"):
            subprocess.run([sys.executable, "-m", "rag", "index", str(corpus_dir)], cwd=REPO, env=env_for(data),
                           check=True, capture_output=True, timeout=300)
        process = subprocess.Popen([sys.executable, "-m", "rag", "summarize"], cwd=REPO, env=env_for("killed"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not (tmp_path / "killed" / "records.sqlite").exists() or len(stored("killed")) < 1:
            assert time.time() < deadline and process.poll() is None, "no summary was written"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        done_before = len(stored("killed"))
        assert 1 <= done_before < 3
        resumed = subprocess.run([sys.executable, "-m", "rag", "summarize", "--json"], cwd=REPO,
                                 env=env_for("killed"), capture_output=True, text=True, timeout=300)
        clean = subprocess.run([sys.executable, "-m", "rag", "summarize", "--json"], cwd=REPO,
                               env=env_for("clean"), capture_output=True, text=True, timeout=300)
        assert json.loads(resumed.stdout)["written"] == 3 - done_before, resumed.stdout  # only the rest
        assert json.loads(clean.stdout)["written"] == 3
        assert stored("killed") == stored("clean")


def test_a_long_digest_pages_and_show_more_lists_the_next_articles(indexed, tmp_path, monkeypatch):
    import rag.answer.overview as overview
    from rag.web.chat import ChatService, Session
    from rag.web.feedback import FeedbackStore

    from .conftest import sqlite_at

    monkeypatch.setattr(overview, "DIGEST_PAGE", 1)
    service = ChatService(indexed, FeedbackStore(sqlite_at(tmp_path / "app.sqlite")))
    history, state = [], Session()

    def say(question: str) -> str:
        nonlocal history, state
        updates = list(service.respond(question, history, state, [], "", ""))
        history, _sources, state, _status = updates[-1]
        return history[-1]["content"]

    first = say("What was published since 2023?")
    assert "Solar Panels for Every School" in first and "2 more" in first and "show more" in first
    second = say("show more")
    assert "Harbour Toll Reform Passes" in second and "Solar Panels" not in second and "1 more" in second
    third = say("show more")
    assert "Public Library Extends Weekend Hours" in third and "more:" not in third


def test_a_readers_question_stops_the_summary_being_written_and_it_is_finished_later(indexed):
    """The local model has one slot: the background summariser drops the reply it is streaming the
    moment a question is in flight (the article stays pending), and finishes once the reader is served."""
    import threading
    import time

    from rag.answer.pipeline import InFlight

    in_flight = InFlight()
    slow = FakeListChatModel(responses=["- The city council voted 7 to 2 to cut harbour tolls for fishing boats by "
                                        "40 percent [1]"], sleep=0.05)
    results, streaming = [], threading.Event()

    def asked_while_streaming() -> bool:
        streaming.set()
        return in_flight.busy()

    def summarise():
        results.append(summarize_all(indexed.store(), indexed.summaries, indexed.fingerprints(),
                                     vectors=SentenceVectors(indexed.embedding_model), chat_model=slow,
                                     model_name="fake/slow", before_each=in_flight.wait_idle,
                                     preempt=asked_while_streaming))

    worker = threading.Thread(target=summarise)
    worker.start()
    assert streaming.wait(60)  # the first reply is streaming (about 4 s long)
    with in_flight:  # a reader's question
        asked = time.perf_counter()
        worker.join(10)
        stopped_after = time.perf_counter() - asked
    assert results and results[0].preempted and results[0].written == 0, results
    assert stopped_after < 1.0, stopped_after
    summarise()  # the reader is served: the next round writes them all
    assert results[1].written == 3 and not results[1].preempted
