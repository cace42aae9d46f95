"""The web chat, end to end: the real app on loopback, driven by a real headless Chromium.

The app runs as a subprocess with the extractive backend (instant, deterministic); Chromium is
Debian's (``.ci/run`` installs it), driven by Playwright. Set ``RAG_UPDATE_SCREENSHOTS=1`` to
refresh the screenshots in ``docs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KIMI_QUESTION = "Which Chinese model has comparable mathematical and software exploitation capabilities?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_app(env: dict, *, index: bool = True, ready: bool = True, process_out: list | None = None):
    """Index the shipped corpus into env's data dir, run app.py, yield its URL once ``/readyz`` says
    it can answer (``ready=False``: once it serves at all), stop it. Every test client is 127.0.0.1:
    the per-client question budget is off unless the test sets one. ``process_out``: gets the process."""
    env = {"RAG_QUESTIONS_PER_MINUTE": "0", **env}
    data_dir = Path(env["RAG_DATA_DIR"])
    if index:
        subprocess.run([sys.executable, "-m", "rag", "index", "corpus"], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=300)
    data_dir.mkdir(parents=True, exist_ok=True)  # with shared state, indexing writes nothing here
    log = (data_dir / "app.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if process_out is not None:
        process_out.append(process)
    url = f"http://127.0.0.1:{env['RAG_PORT']}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url + ("readyz" if ready else ""), timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    pytest.fail(f"app did not start: {(data_dir / 'app.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("web") / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_LLM": "extractive", "RAG_PORT": str(free_port())}
    with start_app(env) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_page(browser, url: str, width: int = 1280, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    return page


def ask(page, question: str, answers_before: int = 0) -> None:
    page.fill("#question textarea", question)
    page.keyboard.press("Enter")
    # Wait until this question's answer is final (final answers carry the rendered markup).
    page.wait_for_function(
        "n => document.querySelectorAll('#chat .answer, #chat .refusal').length > n", arg=answers_before,
        timeout=120_000)


def index_into(data_dir: Path, article: Path) -> None:
    """``rag index`` of one more article into a running app's data dir, as an operator would."""
    subprocess.run([sys.executable, "-m", "rag", "index", str(article)], cwd=REPO, check=True, capture_output=True,
                   timeout=300, env={**os.environ, "RAG_DATA_DIR": str(data_dir)})


def screenshot(page, name: str) -> None:
    if os.environ.get("RAG_UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(REPO / "docs" / name), full_page=True)


def test_answer_streams_in_with_sources_and_a_clickable_citation(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url)
    ask(page, KIMI_QUESTION)
    answer = page.locator("#chat .answer").last
    assert "Kimi" in answer.inner_text()
    citation = answer.locator("a.cite").first
    target = citation.get_attribute("href").lstrip("#")
    card = page.locator(f"#sources #{target}")
    assert "Kimi 2.7" in card.locator("mark").inner_text(), "the cited passage is highlighted in its card"
    assert card.locator(".ctx").count() >= 1, "surrounding text is shown around the passage"
    citation.click()
    page.wait_for_function(f"document.getElementById('{target}').classList.contains('flash')", timeout=5_000)
    screenshot(page, "screenshot-desktop.png")
    page.close()


def test_the_box_empties_on_send_and_keeps_what_is_typed_during_the_answer(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url)
    box = page.locator("#question textarea")
    box.fill(KIMI_QUESTION)
    page.keyboard.press("Enter")
    answers_when_emptied = page.evaluate("""() => new Promise(resolve => {
        setTimeout(() => resolve('never emptied'), 60000);
        const box = document.querySelector('#question textarea');
        const check = () => box.value === ''
            ? resolve(document.querySelectorAll('#chat .answer, #chat .refusal').length)
            : requestAnimationFrame(check);
        check();
    })""")
    assert answers_when_emptied == 0, "the box is emptied when the question is sent, before its answer"
    box.fill("a draft typed while the answer streams")
    page.wait_for_function("document.querySelectorAll('#chat .answer, #chat .refusal').length > 0", timeout=120_000)
    page.wait_for_timeout(500)  # any step queued after the answer has run by now
    assert box.input_value() == "a draft typed while the answer streams"
    page.close()


def test_a_shared_link_asks_its_question_and_the_conversation_downloads_as_markdown(app_server, browser):

    url, _ = app_server
    page = open_page(browser, f"{url}?q={quote(KIMI_QUESTION)}")  # what "Link to this question" opens
    page.wait_for_function("document.querySelectorAll('#chat .answer, #chat .refusal').length > 0", timeout=120_000)
    answer = page.locator("#chat .answer").last
    assert "Kimi" in answer.inner_text()
    link = page.locator("#chat .share a").last.get_attribute("href")
    assert link.startswith("?q=") and "Chinese" in link.replace("+", " ")
    page.wait_for_function("!document.querySelector('#download').disabled", timeout=10_000)
    with page.expect_download() as download:
        page.click("#download")
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert f"## {KIMI_QUESTION}" in markdown
    assert "Kimi" in markdown and "[^1-1]" in markdown, "the answer's citation is a footnote"
    footnote = next(line for line in markdown.splitlines() if line.startswith("[^1-1]:"))
    assert "/article/us-ai-export-controls-anthropic" in footnote, "the footnote links the article"
    page.close()


def test_follow_up_is_rewritten_before_retrieval(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url)
    ask(page, KIMI_QUESTION)
    ask(page, "Which outlet reported it?", answers_before=1)
    last = page.locator("#chat .answer, #chat .refusal").last
    assert "Virginia Business" in last.inner_text()
    assert "Searched for:" in page.locator("#chat .rewrite").last.inner_text()
    page.click("#new-chat")
    page.wait_for_function("document.querySelectorAll('#chat .answer').length === 0")
    page.close()


def test_unanswerable_question_is_a_visible_refusal_with_related_reading(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url)
    ask(page, "Who won the 1998 football World Cup final?")
    refusal = page.locator("#chat .refusal").last
    assert "don't say" in refusal.inner_text()
    page.close()


def test_thumbs_down_and_comment_are_stored_for_staff(app_server, browser):
    url, data_dir = app_server
    page = open_page(browser, url)
    ask(page, KIMI_QUESTION)
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('feedback saved')")
    page.fill("#comment textarea", "Should name the report's date too.")
    page.click("#send-comment")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Comment saved')")
    with sqlite3.connect(data_dir / "app.sqlite") as db:
        rating, question, comment, citations = db.execute(
            "SELECT rating, question, comment, citations FROM feedback ORDER BY id DESC LIMIT 1").fetchone()
    assert rating == -1 and question == KIMI_QUESTION and comment == "Should name the report's date too."
    assert json.loads(citations)[0]["doc_id"] == "us-ai-export-controls-anthropic"
    page.close()


def test_phone_width_layout_stacks_sources_under_the_chat(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url, width=390, height=844)
    ask(page, KIMI_QUESTION)
    chat_box = page.locator("#chat").bounding_box()
    sources_box = page.locator("#sources").bounding_box()
    assert sources_box["y"] >= chat_box["y"] + chat_box["height"] - 1, "sources sit below the chat"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, "no sideways scrolling"
    screenshot(page, "screenshot-phone.png")
    page.close()


def test_summarize_the_article_shows_cited_bullets_and_a_cards_summarize_button_does_the_same(app_server, browser):
    url, _ = app_server
    page = open_page(browser, url)
    examples = page.locator("#chat-examples, .examples, [class*='example']").all_inner_texts()
    assert any("Summarize “U.S. Risks Falling Behind in AI Race Without Lifting Anthropic Restrictions, Experts Warn”"
               in text for text in examples), examples  # the whole title, never cut mid-word
    ask(page, "Summarize the article.")
    points = page.locator("#chat .answer").last.locator("ul.key-points li")
    assert points.count() >= 3, page.locator("#chat .answer").last.inner_text()
    assert all(point.locator("a.cite").count() >= 1 for point in points.all())
    assert "Experts Warn" in page.locator("#chat .answer").last.locator(".overview-title").inner_text()
    # The Summarize button of a source card asks the same for that card's article.
    page.locator("#sources button.summarize").first.click()
    page.wait_for_function("document.querySelectorAll('#chat .answer').length > 1", timeout=120_000)
    again = page.locator("#chat .answer").last
    assert again.locator("ul.key-points li").count() >= 3, again.inner_text()
    screenshot(page, "screenshot-summary.png")
    page.close()


def test_ask_api_through_gradio_client(app_server):
    from gradio_client import Client

    url, _ = app_server
    client = Client(url, verbose=False)
    result = client.predict(KIMI_QUESTION, api_name="/ask")
    assert not result["refused"] and "Kimi" in result["answer"]
    assert result["citations"][0]["chunk_id"] == result["contexts"][result["citations"][0]["n"] - 1]["chunk_id"]
    assert "empty" in client.predict("   ", api_name="/ask")["error"]
    assert "limit is 2,000" in client.predict("why " * 25_000, api_name="/ask")["error"]
    noisy = client.predict(KIMI_QUESTION.replace(" ", "\x00 \x1b", 2), api_name="/ask")
    assert "Kimi" in noisy["answer"]
    summary = client.predict("What are the key points of the article?", api_name="/ask")
    assert summary["kind"] == "summary" and len(summary["citations"]) >= 3 and summary["answer"].count("\n- ") >= 3
    assert result["kind"] == "answer"


def test_the_app_serves_no_files_beyond_its_own(app_server):
    """Gradio's published advisories were about reading arbitrary files through /file= routes."""
    import urllib.error

    url, data_dir = app_server
    for path in ("gradio_api/file=/etc/passwd", "file=/etc/passwd", f"gradio_api/file={data_dir}/app.sqlite",
                 "gradio_api/file=../../../../etc/passwd", "static/../../../../etc/passwd"):
        try:
            body = urllib.request.urlopen(url + path, timeout=10).read()
        except urllib.error.HTTPError as exc:
            assert exc.code in (403, 404, 400), (path, exc.code)
        else:
            assert b"root:" not in body and b"SQLite format" not in body, path


def test_anonymous_uploads_are_refused_without_the_admin_tab(app_server):
    url, _ = app_server
    request = urllib.request.Request(url + "gradio_api/upload", data=b"--b\r\n\r\n--b--\r\n", method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=30)
    assert error.value.code == 403


def test_a_period_in_the_question_shows_as_a_chip_whose_x_asks_again_over_all_dates(app_server, browser, tmp_path):
    """Last in this module: it adds a dated article to the running app's index."""
    url, data_dir = app_server
    article = tmp_path / "harbour-tolls.md"
    article.write_text("# Harbour Toll Reform Passes\n\nDate: 2024-03-05\n\nThe city council voted on Tuesday to cut "
                       "harbour tolls for fishing boats by 40 percent.\n", encoding="utf-8")
    index_into(data_dir, article)
    page = open_page(browser, url)
    ask(page, "How much were harbour tolls for fishing boats cut in March 2024?")
    assert page.locator("#chat .chip").last.inner_text() == "Articles from March 2024"
    assert "40 percent" in page.locator("#chat .answer").last.inner_text()
    chip = page.locator("#timeframe-chip")
    chip.wait_for(state="visible", timeout=10_000)
    assert "Articles from March 2024" in chip.inner_text() and "✕" in chip.inner_text()
    chip.click()  # removing the chip asks the same question again, over every date
    ask_done = "document.querySelectorAll('#chat .answer, #chat .refusal').length > 1"
    page.wait_for_function(ask_done, timeout=120_000)
    assert page.locator("#chat .chip").count() == 1, "the second answer carries no period"
    chip.wait_for(state="hidden", timeout=10_000)
    link = page.locator("#chat .share a").last.get_attribute("href")
    assert "dates=all" in link, "a link shared after removing the chip keeps it removed"
    shared = open_page(browser, url + link)
    shared.wait_for_function("document.querySelectorAll('#chat .answer, #chat .refusal').length > 0", timeout=120_000)
    assert shared.locator("#chat .chip").count() == 0 and "40 percent" in shared.locator("#chat .answer").last.inner_text()
    shared.close()
    # A period nothing was published in: every article is searched, and the answer says so.
    ask(page, "Which Chinese model has comparable mathematical and software exploitation capabilities in 2019?",
        answers_before=2)
    assert "searching all articles" in page.locator("#chat .chip-note").last.inner_text()
    page.close()


def test_an_article_indexed_while_the_app_serves_is_offered_by_the_filter_and_a_link_naming_it_filters(
        app_server, browser, tmp_path):
    """The filter's choices are read at each page load (they were fixed when the app started, so a
    link naming a newer article searched every article instead)."""
    url, data_dir = app_server
    article = tmp_path / "ferry-timetable.md"
    article.write_text("# Ferry Timetable Review\n\nThe ferry operator will add a 6 a.m. crossing on weekdays "
                       "from May, and retire the late Sunday boat.\n", encoding="utf-8")
    index_into(data_dir, article)
    page = open_page(browser, f"{url}?q={quote(KIMI_QUESTION)}&docs=ferry-timetable")
    page.wait_for_function("document.querySelectorAll('#chat .answer, #chat .refusal').length > 0", timeout=120_000)
    last = page.locator("#chat .answer, #chat .refusal").last.inner_text()
    assert "Kimi" not in last, "the question was asked of the named article only"
    titles = page.locator("#sources .src strong").all_text_contents()
    assert all(title == "Ferry Timetable Review" for title in titles)
    page.get_by_text("Filters").click()
    chosen = page.locator("#doc-filter")
    chosen.wait_for(timeout=10_000)
    assert "Ferry Timetable Review" in chosen.inner_text(), "the link's article shows as chosen"
    page.close()


def test_a_withheld_answer_is_shown_as_a_draft_while_checked_and_never_left_on_screen(browser, tmp_path):
    """A model server that writes an answer the passages do not support: the reader sees it arrive
    marked as being checked, and then only the refusal with the closest passages."""
    from .servers import fake_llm_server

    invented = "The directive was signed by Admiral Ahab Smith in 1999."
    with fake_llm_server(invented) as llm:
        env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_LLM": "openai", "RAG_LLM_BASE_URL": llm.url,
               "RAG_LLM_MODEL": "fake", "RAG_PORT": str(free_port())}
        with start_app(env) as url:
            page = open_page(browser, url)
            page.fill("#question textarea", "Who signed the export control directive on Anthropic's models?")
            page.keyboard.press("Enter")
            page.wait_for_function("document.querySelector('#chat .checking') && "
                                   "document.querySelector('#chat .checking').innerText.includes('Ahab')",
                                   timeout=60_000)
            assert "Checking against the passages" in page.locator("#chat .checking").last.inner_text()
            page.wait_for_function("document.querySelectorAll('#chat .answer, #chat .refusal').length > 0",
                                   timeout=120_000)
            page.wait_for_timeout(500)
            chat = page.locator("#chat").inner_text()
            assert "Ahab" not in chat and "1999" not in chat and "don't say" in chat
            assert page.locator("#chat .checking").count() == 0
            assert page.locator("#chat .refusal li").count() >= 1  # the closest passages, to read on
            page.close()
    assert llm.requests, "the app never asked the model server"


def test_the_filter_offers_the_newest_articles_and_any_a_link_names_when_there_are_very_many():
    from rag.web.page import FILTER_CHOICES, filter_choices, filter_label

    rows = [{"doc_id": f"a{i:05d}", "title": f"Article {i}", "date": f"{2000 + i // 365}-01-01" if i % 7 else ""}
            for i in range(FILTER_CHOICES + 500)]
    offered = [doc_id for _label, doc_id in filter_choices(rows, also=["a00007"])]
    dated = sorted((r for r in rows if r["date"]), key=lambda r: r["date"], reverse=True)
    assert len(offered) == FILTER_CHOICES + 1 and offered[-1] == "a00007"
    assert offered[0] == dated[0]["doc_id"] and {r["doc_id"] for r in dated[:FILTER_CHOICES]} == set(offered[:FILTER_CHOICES])
    assert "newest 1,000 of 1,500" in filter_label(rows) and filter_label(rows[:10]) == "Only these articles"
