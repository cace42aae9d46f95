"""What readers asked that the articles could not answer: kept (redacted, for a while, bounded),
grouped by meaning, exported as a question set — in the real app, its API, the CLI and the tab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag.quality.evaluate import load_question_set
from rag.quality.gaps import as_question_set, group_questions
from rag.schema import Answer, Passage
from rag.web.feedback import MAX_QUESTION, UnansweredLog

from .conftest import REPO, sqlite_at
from .test_web import browser  # noqa: F401  (a fixture)

MONGOLIA = ["What is the capital city of Mongolia?", "Which city is Mongolia's capital?",
            "Name the capital of Mongolia, please."]


def refused(question: str, kind: str = "nothing_similar") -> Answer:
    closest = Passage(chunk_id="c", doc_id="harbour-tolls", title="Harbour Toll Reform Passes", text="…")
    return Answer(question=question, answer="The articles don't say.", refused=True, citations=[],
                  contexts=[closest], timings={}, llm="fake", refusal_kind=kind)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_refused_questions_are_kept_redacted_and_bounded_and_answered_ones_are_not(tmp_path):
    log = UnansweredLog(sqlite_at(tmp_path / "app.sqlite"), days=90)
    log.record(refused("Mail ann.lee@example.org or call +1 (555) 123-4567 about the 2024-2025 budget?"))
    log.record(Answer(question="Which model is comparable?", answer="Kimi 2.7. [1]", refused=False, citations=[],
                      contexts=[], timings={}, llm="fake"))
    log.record(refused("why " * 400, kind="checks_withheld"))
    rows = log.rows()
    assert [r["kind"] for r in rows] == ["nothing_similar", "checks_withheld"]
    assert rows[0]["question"] == "Mail [email] or call [phone] about the 2024-2025 budget?"
    assert rows[0]["closest_doc"] == "harbour-tolls" and len(rows[1]["question"]) == MAX_QUESTION
    stored = (tmp_path / "app.sqlite").read_bytes()
    assert b"ann.lee" not in stored and b"555" not in stored


@pytest.mark.parametrize("personal", ["+1 (555) 123 - 4567", "555\u2013123\u20134567", "555\u2011123\u20114567",
                                      "555/123/4567", "12 34 56 78", "ann\uff20example.org", "ann\u00ad@example.org",
                                      "ann@exa\u200bmple.org", "555 123 4567"])
def test_personal_data_in_any_common_spelling_is_redacted_in_the_log_and_in_feedback(tmp_path, personal):
    """Issue 31 item 5: dashes, slashes, spaced groups, full-width and invisible characters."""
    from rag.web.feedback import FeedbackStore

    log = UnansweredLog(sqlite_at(tmp_path / "app.sqlite"), days=90)
    log.record(refused(f"reach me at {personal} about the 2019-2021 budget of 2024/05/01"))
    kept = log.rows()[0]["question"]
    assert ("[phone]" in kept or "[email]" in kept) and "2019-2021" in kept and "2024/05/01" in kept, kept
    feedback = FeedbackStore(sqlite_at(tmp_path / "app.sqlite"))
    answer = refused(f"call {personal}?")
    answer.id = "a1"
    row_id = feedback.record(answer, rating=-1, comment=f"mine is {personal}")
    row = feedback.row(row_id)
    assert personal not in row["question"] and personal not in row["comment"], row
    assert "555" not in (row["question"] + row["comment"]) and "ann" not in (row["question"] + row["comment"])


def test_questions_older_than_the_retention_are_pruned_and_zero_days_keeps_none(tmp_path):
    clock = Clock()
    log = UnansweredLog(sqlite_at(tmp_path / "app.sqlite"), days=30, clock=clock)
    log.record(refused("What did the mayor say about ferries?"))
    clock.now += timedelta(days=20)
    log.record(refused("Who owns the ferry company?"))
    assert len(log.rows()) == 2 and len(log.rows(days=7)) == 1
    clock.now += timedelta(days=15)  # the first is now 35 days old
    assert [r["question"] for r in log.rows()] == ["Who owns the ferry company?"]
    off = UnansweredLog(sqlite_at(tmp_path / "off.sqlite"), days=0)
    off.record(refused("What did the mayor say about ferries?"))
    assert off.rows() == []


def test_differently_worded_questions_form_one_group_and_export_as_a_question_set(tmp_path, embedding_model):
    log = UnansweredLog(sqlite_at(tmp_path / "app.sqlite"), days=90)
    for question in [MONGOLIA[0], "How many parameters does Mythos 5 have?", *MONGOLIA[1:],
                     "What penalties apply to companies that break the directive?"]:
        log.record(refused(question))
    gaps = group_questions(log.rows(), embedding_model)
    assert [g.count for g in gaps] == [3, 1, 1]
    assert sorted(q["question"] for q in gaps[0].questions) == sorted(MONGOLIA)
    assert gaps[0].representative in MONGOLIA and gaps[0].closest_article == "Harbour Toll Reform Passes"
    assert gaps[0].refusal_kinds == {"nothing_similar": 3} and gaps[0].first_seen <= gaps[0].last_seen
    exported = tmp_path / "gaps.jsonl"
    exported.write_text(as_question_set(gaps))
    rows = load_question_set(exported)
    assert len(rows) == 5 and all(r["answerable"] is False for r in rows) and len({r["id"] for r in rows}) == 5


def gaps_cli(env: dict) -> list[dict]:
    run = subprocess.run([sys.executable, "-m", "rag", "gaps", "--json"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["groups"]


@pytest.mark.slow
def test_the_running_app_keeps_refusals_from_ask_and_staff_see_them_grouped(tmp_path, browser):  # noqa: F811
    from gradio_client import Client

    from .test_web import free_port, open_page, start_app

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "extractive", "RAG_PORT": str(free_port()),
           "RAG_STAFF_PASSWORD": "staff password 1"}
    with start_app(env) as url:
        client = Client(url, verbose=False)
        for question in MONGOLIA:
            assert client.predict(question, api_name="/ask")["refused"]
        answered = client.predict("Which Chinese model has comparable mathematical and software exploitation "
                                  "capabilities?", api_name="/ask")
        assert not answered["refused"]

        groups = gaps_cli(env)  # the command line, on the running app's data
        assert [g["count"] for g in groups] == [3]
        assert sorted(q["question"] for q in groups[0]["questions"]) == sorted(MONGOLIA)

        table, chart = client.predict("staff password 1", api_name="/gaps_list")  # the tab's API: the same group
        rows = table["data"]
        assert [row[1] for row in rows] == [3] and rows[0][2] == groups[0]["representative"] and "<img" in chart
        exported = client.predict("staff password 1", api_name="/gaps_export")
        assert sorted(r["question"] for r in load_question_set(Path(exported))) == sorted(MONGOLIA)
        assert not (Path(env["RAG_DATA_DIR"]) / "reports").exists()  # a download only: no copy left behind
        with pytest.raises(Exception, match="wrong staff password"):
            client.predict("guess", api_name="/gaps_list")
        config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
        assert "Mongolia" not in config  # readers' questions reach staff only through the password

        page = open_page(browser, url)  # the tab in a browser: shows, exports and dismisses the group
        page.get_by_role("tab", name="Evaluate").click()
        page.fill("#staff-password input", "staff password 1")
        page.click("#gaps-show")
        page.wait_for_function("document.querySelector('#gaps-table').innerText.includes('Mongolia')", timeout=60_000)
        assert page.locator("#gaps-chart img").count() == 1
        page.click("#gaps-export")
        page.wait_for_function("document.querySelector('#gaps-file').innerText.includes('.jsonl')", timeout=60_000)
        page.fill("#gaps-id input", str(rows[0][0]))
        page.click("#gaps-dismiss")
        page.wait_for_function("!document.querySelector('#gaps-table').innerText.includes('Mongolia')",
                               timeout=60_000)
        page.close()
        assert gaps_cli(env) == []


def test_one_client_cannot_flood_the_log_and_repeats_are_dropped(tmp_path):
    """Issue 31 item 4: 30 refused questions from one client keep at most its share; an exact
    repeat is kept once; another client's question still gets in."""
    from rag.web.limits import RateLimit

    log = UnansweredLog(sqlite_at(tmp_path / "app.sqlite"), days=90, limit=RateLimit(20, 3600, "unanswered"))
    kept = [log.record(refused(f"Flood question number {n} about ferries?"), "10.6.6.6") for n in range(30)]
    assert sum(kept) == 20 and not any(kept[20:])
    assert log.record(refused("What did the port say about tolls?"), "10.1.1.1")
    assert not log.record(refused("What did the port say about tolls?"), "10.2.2.2")  # the same question again
    assert len(log.rows()) == 21


class CountingEmbedder:
    def __init__(self, model) -> None:
        self.model, self.embedded = model, 0

    def embed_documents(self, texts):
        self.embedded += len(texts)
        return self.model.embed_documents(texts)

    def embed_query(self, text):
        self.embedded += 1
        return self.model.embed_query(text)


def test_questions_are_embedded_once_when_logged_and_dismiss_removes_what_staff_saw(indexed, tmp_path):
    from rag.web.feedback import FeedbackStore
    from rag.web.staff import Staff

    counting = CountingEmbedder(indexed.embedding_model)
    engine = sqlite_at(tmp_path / "app.sqlite")
    log = UnansweredLog(engine, days=90, embed=counting.embed_query)
    for question in MONGOLIA:
        log.record(refused(question))
    assert counting.embedded == 3 and all(r["embedding"] for r in log.rows())
    indexed.settings.staff_password = __import__("pydantic").SecretStr("staff password 1")
    indexed.embedding_model = counting  # what grouping would embed with
    staff = Staff(indexed, FeedbackStore(engine), [], log)
    rows, _chart = staff.gaps_view("staff password 1")
    assert [row[1] for row in rows] == [3] and counting.embedded == 3  # grouping embedded nothing again
    log.record(refused("What is the population of Ulaanbaatar in 2031?"))  # arrives after staff looked
    staff.dismiss_gap("staff password 1", rows[0][0])
    assert counting.embedded == 4  # dismissing regrouped nothing
    left = [r["question"] for r in log.rows()]
    assert left == ["What is the population of Ulaanbaatar in 2031?"]  # only what staff saw went
