"""The reader's web chat (Gradio). It composes the pipeline; it holds no retrieval or prompting logic.

Run with ``make run`` (or ``python app.py``); it serves on ``RAG_HOST:RAG_PORT`` (127.0.0.1:7860).
API: ``/ask`` (question → the answer JSON of ``python -m rag ask --json``) and ``/chat`` (streaming).
"""

from __future__ import annotations

import atexit
import html
import inspect
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import gradio as gr
import uvicorn

from rag.admin import Admin, AdminError, WrongPassword
from rag.answer import Final, QuestionError, Restart, Sources, Token, clean_question
from rag.components import Components
from rag.feedback import FeedbackStore
from rag.followup import rewrite_question
from rag.index import IndexBusyError, list_articles
from rag.limits import LimitExceeded, LoginThrottle, RateLimit, client_key
from rag.load import LoadError, normalise_date, safe_doc_id
from rag.present import answer_html, as_text, draft_html, passage_card, share_query, sources_html, turn_markdown
from rag.redact import redact_logs
from rag.retrieve import Filters
from rag.schema import Answer
from rag.settings import Settings
from rag.staff import Staff, StaffError
from rag.store import StoreError, article_text
from rag.webguard import RequestGuard

log = logging.getLogger("rag.app")

MAX_BODY_BYTES = 1024 * 1024  # any request but an upload: a bounded chat history and question fit easily
MAX_ARTICLE_CHARS = 500_000

TITLE = "Policy Desk"
TAGLINE = "Ask the article collection. Every claim links to the passage that supports it — or you are told the articles don't say."

CSS = """
.gradio-container { max-width: 1280px !important; margin: auto; font-size: 16px; line-height: 1.55; }
#brand h1 { margin-bottom: 0; } #brand p { margin-top: 4px; opacity: .8; }
a.cite { font-weight: 600; text-decoration: none; padding: 0 2px; border-radius: 4px; cursor: pointer; }
a.cite:hover { background: var(--color-accent-soft); }
.refusal { border-left: 4px solid #d97706; padding: 4px 12px; background: rgba(217,119,6,.08); border-radius: 4px; }
.refusal ul { margin: 4px 0 0 0; } .related-label { margin: 6px 0 0 0; font-size: .9em; opacity: .8; }
.chips { margin-bottom: 6px; } .chip { display: inline-block; font-size: .85em; padding: 1px 10px; border-radius: 999px;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); margin-right: 8px; }
.chip-note { font-size: .85em; opacity: .75; font-style: italic; }
.rewrite { font-size: .8em; opacity: .65; margin-top: 6px; font-style: italic; }
.draft { opacity: .55; } .checking-label { font-size: .8em; font-style: italic; opacity: .8; display: block; margin-bottom: 4px; }
#sources { max-height: 75vh; overflow-y: auto; }
.turn-q { font-weight: 600; margin: 12px 0 6px; opacity: .8; }
.src { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px; margin-bottom: 10px; }
.src.flash { outline: 3px solid var(--color-accent); transition: outline .2s; }
.src-meta { font-size: .85em; opacity: .75; margin: 2px 0 6px; }
.src .badge { text-transform: uppercase; font-size: .75em; letter-spacing: .05em; }
.src.retrieved { opacity: .8; }
.src-text { white-space: pre-wrap; } .src-text .ctx { opacity: .6; } .src-text mark { background: rgba(250, 204, 21, .45); color: inherit; padding: 0 1px; }
.article-text { white-space: pre-wrap; max-height: 360px; overflow-y: auto; font-size: .9em; }
@media (max-width: 768px) { #sources { max-height: none; } .gradio-container { font-size: 15px; } }
"""

# Citation links scroll to their source card and flash it (and open nothing new).
HEAD = """<script>
document.addEventListener('click', (event) => {
  const link = event.target.closest('a.cite');
  if (!link) return;
  event.preventDefault();
  const card = document.getElementById(link.getAttribute('href').slice(1));
  if (!card) return;
  card.scrollIntoView({behavior: 'smooth', block: 'center'});
  card.classList.add('flash');
  setTimeout(() => card.classList.remove('flash'), 2500);
}, true);
// "Read the whole article" loads the text when opened, as plain text (never as markup).
document.addEventListener('toggle', async (event) => {
  const box = event.target;
  if (!box.matches || !box.matches('details.whole') || !box.open) return;
  const body = box.querySelector('.article-text');
  if (!body || body.dataset.loaded) return;
  body.dataset.loaded = '1';
  body.textContent = 'Loading…';
  try {
    const response = await fetch('article/' + encodeURIComponent(box.dataset.doc));
    body.textContent = response.ok ? await response.text() : 'This article is no longer in the collection.';
  } catch (error) { body.textContent = 'The article could not be loaded.'; }
}, true);
</script>"""


# Bounds on one reader's session: what the browser holds and re-sends, and what the server keeps.
MAX_TURNS = 20  # question/answer pairs kept in the chat (older ones scroll away)
SOURCE_TURNS = 3  # turns whose source cards the sources panel keeps
REWRITE_TURNS = 2  # plain-text turns the follow-up rewrite reads


@dataclass
class Session:
    """One reader's conversation: never shared between readers (it lives in ``gr.State``)."""

    history: list[tuple[str, str]] = field(default_factory=list)  # plain text (question, answer)
    answers: dict[int, dict] = field(default_factory=dict)  # chat message index -> what feedback stores
    source_turns: list[tuple[str, list[str]]] = field(default_factory=list)
    turns: int = 0  # questions asked so far: numbers the source cards (#src-turn-n) uniquely
    last_feedback_id: int | None = None
    transcript: list[str] = field(default_factory=list)  # each answered turn as Markdown, for download
    last_timeframe: dict | None = None  # the period the last answer searched (rag.timeframe), if any

    def trim(self, history: list) -> list:
        """Keep the last MAX_TURNS turns (re-keying the answers to the kept messages)."""
        drop = max(0, len(history) - 2 * MAX_TURNS)
        if drop:
            history = history[drop:]
            self.answers = {i - drop: a for i, a in self.answers.items() if i >= drop}
        self.source_turns = self.source_turns[-SOURCE_TURNS:]
        self.history = self.history[-REWRITE_TURNS:]
        self.transcript = self.transcript[-MAX_TURNS:]
        return history


class ChatService:
    """What the UI calls: the pipeline, the feedback store and the corpus listing."""

    def __init__(self, components: Components, feedback: FeedbackStore) -> None:
        self.components = components
        self.settings = components.settings
        self.feedback = feedback
        self.logins = LoginThrottle()  # wrong admin/staff passwords, per client
        self.feedback_limit = RateLimit(30, 600, "ratings")  # per client
        self.upload_limit = RateLimit(20, 600, "uploads")  # per client, before the admin password is known
        self.admin = Admin(components)
        self.transcripts = Transcripts()
        # Question sets: the project's development sets (when ../shared is beside the checkout) and
        # any set staff drop into RAG_DATA_DIR/question-sets.
        self.staff = Staff(components, feedback, [Path(__file__).resolve().parent.parent / "shared" / "eval",
                                                  components.settings.data_dir / "question-sets"])

    @property
    def pipeline(self):
        return self.components.pipeline

    def articles(self) -> list[dict]:
        try:
            return list_articles(self.components.store())
        except Exception as exc:  # no index yet: the chat says so on the first question
            log.warning("cannot list articles: %s", exc)
            return []

    def example_questions(self, limit: int = 4) -> list[str]:
        """Derived from what is indexed: the newest articles' titles."""
        rows = sorted(self.articles(), key=lambda r: r.get("date") or "", reverse=True)[:limit]
        # Titles come from articles and Gradio renders examples as Markdown: keep only plain words.
        titles = [re.sub(r"[^\w\s,.;:'’?&%-]+", " ", row["title"][:80]) for row in rows if row.get("title")]
        return [f"What does “{' '.join(title.split())}” say?" for title in titles]

    def respond(self, message: str, history: list, state: Session, docs, start, end, base_url: str = "",
                infer_dates: bool | None = None):
        """One chat turn, streamed: yields (chat messages, sources panel HTML, state, status line).
        ``base_url``: the app's address as the reader sees it, for links in the downloaded transcript;
        ``infer_dates=False``: ignore the period the question names (the chip's ✕)."""
        history = state.trim(list(history or []))
        state.last_timeframe = None  # the chip belongs to the newest answer only
        try:
            question = clean_question(message, self.settings.max_question_chars)  # before any other use
        except QuestionError as exc:
            history += [{"role": "user", "content": as_text(str(message)[:200])},
                        {"role": "assistant", "content": f"<div class='refusal'>{as_text(str(exc))}</div>"}]
            yield history, gr.skip(), state, ""
            return
        history += [{"role": "user", "content": as_text(question)}, {"role": "assistant", "content": "…"}]
        state.turns += 1
        turn = state.turns
        yield history, gr.skip(), state, ""
        try:
            filters = make_filters(docs, start, end)
            standalone = rewrite_question(question, state.history, self.pipeline.generator.chat_model)
            text, articles, shown = "", {}, False  # articles: doc_id -> article text, fetched once per turn
            for event in self.pipeline.stream(standalone, filters, infer_dates):
                if isinstance(event, Sources):
                    cards = [self.source_card(p, n, turn, cited=False, articles=articles)
                             for n, p in enumerate(event.passages, 1)]
                    if shown:  # asked again over all dates: these cards replace the first ones
                        state.source_turns[-1] = (question, cards)
                    else:
                        state.source_turns.append((question, cards))
                    shown = True
                    yield history, sources_html(state.source_turns), state, ""
                elif isinstance(event, Token):
                    text += event.text
                    # A draft until the checks have passed: shown as such, and replaced by the checked
                    # answer or by a refusal naming the closest passages (never left on screen).
                    history[-1] = {"role": "assistant", "content": draft_html(text)}
                    yield history, gr.skip(), state, ""
                elif isinstance(event, Restart):  # nothing in the question's period answered
                    text = ""
                    history[-1] = {"role": "assistant", "content": f"<div class='chip-note'>{as_text(event.note)}</div>"}
                    yield history, gr.skip(), state, ""
                elif isinstance(event, Final):
                    answer: Answer = event.answer
                    answer.question = question
                    answer.id = answer.id or uuid.uuid4().hex  # what a rating of it is keyed by
                    if standalone != question:
                        answer.rewritten_question = standalone
                    cited = {c.n for c in answer.citations}
                    state.source_turns[-1] = (question, [
                        self.source_card(p, n, turn, cited=n in cited, articles=articles)
                        for n, p in enumerate(answer.contexts, 1)])
                    link = share_query(question, filters.doc_ids, filters.date_from, filters.date_to,
                                       all_dates=infer_dates is False)
                    history[-1] = {"role": "assistant", "content": answer_html(answer, turn, link)}
                    article_url = (lambda doc_id: f"{base_url}article/{quote(doc_id)}") if base_url else None
                    state.transcript.append(turn_markdown(answer, turn, article_url))
                    state.answers[len(history) - 1] = {k: v for k, v in answer.to_json().items() if k != "contexts"}
                    state.history.append((question, answer.answer))
                    state.last_timeframe = answer.timeframe
                    history = state.trim(history)
                    yield history, sources_html(state.source_turns), state, timing_note(answer)
        except Exception as exc:
            history[-1] = {"role": "assistant", "content": f"<div class='refusal'>{as_text(user_message(exc))}</div>"}
            yield history, sources_html(state.source_turns), state, ""

    def source_card(self, passage, n: int, turn: int, *, cited: bool, articles: dict[str, str]) -> str:
        if passage.doc_id not in articles:
            try:
                articles[passage.doc_id] = article_text(self.components.store(), passage.doc_id)[1]
            except Exception:  # the article vanished in a concurrent re-index: show the passage alone
                articles[passage.doc_id] = ""
        article = articles[passage.doc_id]
        if article[passage.start:passage.end] != passage.text:
            article = ""
        return passage_card(passage, n, turn, cited=cited, article=article)

    def ask_json(self, question: str, doc_ids: list[str] | None = None, date_from: str = "",
                 date_to: str = "") -> dict:
        try:
            filters = make_filters(doc_ids, date_from, date_to)
            return self.pipeline.ask(question, filters).to_json()
        except Exception as exc:
            return {"question": question, "error": user_message(exc)}



def base_url_of(request: gr.Request | None) -> str:
    """The app's address as this reader reached it ("http://host:port/"), or "" (API without one)."""
    try:
        return str(request.base_url) if request is not None else ""
    except Exception:  # a request Gradio built without an HTTP request behind it
        return ""


class Transcripts:
    """Conversations as Markdown files for the download button (Gradio serves a copy from its
    cache). They live in a folder private to this process (``mkdtemp``: mode 0700, an unpredictable
    name, so no other local user can plant or read anything in it), each file 0600; files older
    than ``keep_s`` are deleted as new ones are written, and the folder when the process exits."""

    def __init__(self, keep_s: int = 3600) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="policy-desk-transcripts-"))
        self.keep_s = keep_s
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)

    def write(self, turns: list[str]) -> str:
        self.prune()
        name = f"conversation-{time.strftime('%Y-%m-%d-%H%M')}-{uuid.uuid4().hex[:8]}.md"
        fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(f"# {TITLE}: conversation\n\n" + "\n".join(turns))
        return str(self.folder / name)

    def prune(self) -> None:
        """Delete old transcripts: regular files directly in the folder only (never through a link)."""
        cutoff = time.time() - self.keep_s
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)


def make_filters(doc_ids, date_from: str, date_to: str) -> Filters:
    def day(value: str) -> str:
        if not value or not value.strip():
            return ""
        parsed = normalise_date(value)
        if not parsed:
            raise QuestionError(f"“{value}” is not a date; use YYYY-MM-DD")
        return parsed

    return Filters(doc_ids=tuple(doc_ids or ()), date_from=day(date_from), date_to=day(date_to))


def user_message(exc: Exception) -> str:
    """A readable sentence for the chat: never a traceback, never a secret."""
    if isinstance(exc, QuestionError):
        return str(exc)[:500]
    if isinstance(exc, StoreError):  # its message names paths and hosts: for the log only
        log.error("the index failed: %s", exc)
        return exc.reader_message
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or "APIError" in name:
        return "The language model is not reachable right now. Please try again in a moment."
    log.exception("answering failed")
    return f"Something went wrong while answering ({name}). The error was logged; please try again."


def build_app(service: ChatService) -> gr.Blocks:
    article_choices = [(f"{r['title'][:70]} ({r['doc_id']})", r["doc_id"]) for r in service.articles()]
    # Uploaded temp files older than an hour are deleted every ten minutes (and all at restart).
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        session = gr.State(Session())  # deep-copied per reader by Gradio
        with gr.Column(elem_id="brand"):
            gr.Markdown(f"# {TITLE}\n{TAGLINE}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(
                    elem_id="chat", height=520, label="Conversation", buttons=["copy"],
                    placeholder="Ask a question about the articles. Sources appear on the right (below on a phone).",
                    examples=[{"text": q} for q in service.example_questions()],
                )
                # The period read from the newest question, removable: "✕ Articles from 2024 — ask over all dates".
                chip = gr.Button("", visible=False, size="sm", elem_id="timeframe-chip", variant="secondary")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about the articles…", show_label=False, scale=5,
                                          elem_id="question", max_lines=4, submit_btn=True, stop_btn=True)
                with gr.Row():
                    new_chat = gr.Button("New conversation", size="sm", elem_id="new-chat")
                    download = gr.DownloadButton("Download conversation (Markdown)", size="sm", elem_id="download",
                                                 interactive=False)
                with gr.Accordion("Filters", open=False):
                    doc_filter = gr.Dropdown(article_choices, multiselect=True, label="Only these articles",
                                             elem_id="doc-filter")
                    with gr.Row():
                        date_from = gr.Textbox(label="From date", placeholder="YYYY-MM-DD", elem_id="date-from")
                        date_to = gr.Textbox(label="To date", placeholder="YYYY-MM-DD", elem_id="date-to")
                with gr.Row():
                    comment = gr.Textbox(label="Comment on the last rated answer (optional)", scale=4,
                                         elem_id="comment")
                    send_comment = gr.Button("Send", size="sm", scale=1, elem_id="send-comment")
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html([]), elem_id="sources")

        def respond(message: str, history: list, state: Session, docs, start, end, request: gr.Request):
            yield from service.respond(message, history, state, docs, start, end, base_url=base_url_of(request))

        def export(state: Session):
            """After each answer: the conversation as a Markdown file for the download button, and
            the chip of the period the answer searched (hidden when it searched all dates)."""
            timeframe = state.last_timeframe or {}
            chip_update = gr.Button(value=f"✕ {timeframe.get('label', '')} — ask again over all dates", visible=True) \
                if timeframe.get("applied") else gr.Button(visible=False)
            if not state.transcript:
                return gr.DownloadButton(value=None, interactive=False), chip_update
            return gr.DownloadButton(value=service.transcripts.write(state.transcript), interactive=True), chip_update

        def take_question(message: str):
            # The box is emptied the moment a question is sent, not after its answer has streamed:
            # clearing it afterwards wiped whatever the reader had typed in the meantime.
            return "", message

        sent = gr.State("")
        submit = question.submit(take_question, question, [question, sent], queue=False,
                                 api_visibility="private").then(
            respond, [sent, chatbot, session, doc_filter, date_from, date_to],
            [chatbot, sources, session, status], api_visibility="private",
            concurrency_limit=service.settings.concurrency_limit,
        )
        submit.then(export, session, [download, chip], api_visibility="private")
        question.stop(None, None, None, cancels=[submit])

        def ask_all_dates(history: list, state: Session, docs, start, end, request: gr.Request):
            """The chip's ✕: the last question again, without the period it named."""
            last_question = state.history[-1][0] if state.history else ""
            yield from service.respond(last_question, history, state, docs, start, end,
                                       base_url=base_url_of(request), infer_dates=False)

        chip.click(lambda: gr.Button(visible=False), None, chip, queue=False, api_visibility="private").then(
            ask_all_dates, [chatbot, session, doc_filter, date_from, date_to], [chatbot, sources, session, status],
            api_visibility="private", concurrency_limit=service.settings.concurrency_limit,
        ).then(export, session, [download, chip], api_visibility="private")

        # A shared link (``/?q=…&docs=…&from=…&to=…``, see rag.present.share_query) asks at once.
        known_ids = {doc_id for _label, doc_id in article_choices}

        def read_link(request: gr.Request):
            params = request.query_params if request else {}
            docs = [d for d in params.get("docs", "").split(",") if d in known_ids]
            return (params.get("q", "")[: service.settings.max_question_chars], params.get("dates") == "all", docs,
                    params.get("from", "")[:20], params.get("to", "")[:20])

        def respond_to_link(message: str, all_dates: bool, history: list, state: Session, docs, start, end,
                            request: gr.Request):
            if not message:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            yield from service.respond(message, history, state, docs, start, end, base_url=base_url_of(request),
                                       infer_dates=False if all_dates else None)

        linked = gr.State("")  # not ``sent``: a question typed meanwhile must not be asked twice
        linked_all_dates = gr.State(False)  # the link was shared after the period chip was removed
        demo.load(read_link, None, [linked, linked_all_dates, doc_filter, date_from, date_to], queue=False,
                  api_visibility="private").then(
            respond_to_link, [linked, linked_all_dates, chatbot, session, doc_filter, date_from, date_to],
            [chatbot, sources, session, status], api_visibility="private",
            concurrency_limit=service.settings.concurrency_limit,
        ).then(export, session, [download, chip], api_visibility="private")
        # The streaming ``/chat`` API takes the question itself (a State is not an API input);
        # the hidden button only carries the endpoint, as gr.ChatInterface does.
        chat_api = gr.Button(visible=False)
        chat_api.click(respond, [question, chatbot, session, doc_filter, date_from, date_to],
                       [chatbot, sources, session, status], api_name="chat",
                       concurrency_limit=service.settings.concurrency_limit)

        def example_selected(example: gr.SelectData, history, state, docs, start, end, request: gr.Request):
            yield from respond(example.value["text"], history, state, docs, start, end, request)

        chatbot.example_select(example_selected, [chatbot, session, doc_filter, date_from, date_to],
                               [chatbot, sources, session, status], api_visibility="private").then(
            export, session, [download, chip], api_visibility="private")

        def reset():
            return ([], sources_html([]), Session(), "", gr.DownloadButton(value=None, interactive=False),
                    gr.Button(visible=False))

        new_chat.click(reset, None, [chatbot, sources, session, status, download, chip], api_visibility="private")

        def rate(data: gr.LikeData, state: Session, request: gr.Request):
            answer = state.answers.get(data.index if isinstance(data.index, int) else data.index[0])
            if answer is None:
                return state, "Only answers can be rated."
            try:
                service.feedback_limit.take(client_of(request))
            except LimitExceeded as exc:
                return state, as_text(str(exc).capitalize()) + "."
            rating = 1 if data.liked else -1
            state.last_feedback_id = service.feedback.record(  # one row per answer: a new rating replaces it
                answer_from_json(answer), rating=rating, settings=service.settings.public())
            return state, "Thanks — feedback saved." + (" Add a comment below if you like." if rating < 0 else "")

        chatbot.like(rate, [session], [session, status], api_visibility="private")

        def save_comment(text: str, state: Session):
            if not text.strip():
                return "", "Write a comment first."
            if state.last_feedback_id is None:
                return text, "Rate an answer (thumbs up or down) first; the comment attaches to it."
            service.feedback.add_comment(state.last_feedback_id, text.strip())
            return "", "Comment saved."

        send_comment.click(save_comment, [comment, session], [comment, status], api_visibility="private")

        def ask(question: str) -> dict:
            """Answer one question; returns the same JSON object as `python -m rag ask --json`."""
            return service.ask_json(question)

        gr.api(ask, api_name="ask", concurrency_limit=service.settings.concurrency_limit)
        if service.admin.enabled:
            build_admin_tab(service.admin, service.logins)
        if service.staff.enabled:
            build_evaluate_tab(service.staff, service.logins)
    return demo


def client_of(request: gr.Request | None) -> str:
    """What limits are counted against (rag.limits.client_key of the address rag.webguard found)."""
    return client_key(request.client.host) if request is not None and request.client else "unknown"


def password_guarded(action, throttle: LoginThrottle, role: str, errors: tuple[type[Exception], ...]):
    """An admin/staff action for the UI and API: refused while the calling client is throttled
    (rag.limits), a wrong password counted against it, expected errors shown as messages.

    Gradio hands a handler the request when a parameter is annotated ``gr.Request`` (and fills
    ``gr.Progress`` defaults), matching parameters by position: the wrapper declares the action's
    parameters plus a trailing ``request`` (its signature and annotations are what Gradio reads).
    """
    def run(*args):
        *inputs, request = args
        client = client_of(request)
        try:
            throttle.check(client)
            result = action(*inputs)
        except WrongPassword as exc:
            throttle.failed(client, role)
            raise gr.Error(str(exc)) from None
        except (LimitExceeded, *errors) as exc:
            raise gr.Error(str(exc)) from None
        throttle.succeeded(client)
        return result

    signature = inspect.signature(action)
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request)
    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), request])
    run.__annotations__ = {"request": gr.Request}  # Gradio reads the type from here
    run.__name__ = getattr(action, "__name__", "action")
    return run


def build_evaluate_tab(staff: Staff, throttle: LoginThrottle) -> None:
    """Staff: run question sets with chosen settings, read and compare reports, review feedback."""

    def guarded(action):
        return password_guarded(action, throttle, "staff", (StaffError, LookupError, ValueError))

    def framed(report_html: str) -> str:  # the report is a whole page: show it in a sandboxed frame
        return (f'<iframe sandbox="" style="width:100%;height:720px;border:0" '
                f'srcdoc="{html.escape(report_html, quote=True)}"></iframe>')

    with gr.Tab("Evaluate", elem_id="evaluate-tab"):
        password = gr.Textbox(label="Staff password", type="password", elem_id="staff-password")
        with gr.Row():
            question_set = gr.Dropdown(staff.question_sets(), label="Question set", elem_id="eval-set")
            backend = gr.Dropdown(["", "local", "openai", "extractive"], value="", label="LLM backend (blank: current)")
            mode = gr.Dropdown(["", "hybrid", "dense", "bm25"], value="", label="Retrieval (blank: current)")
            top_k = gr.Number(value=None, precision=0, label="Passages (blank: current)")
        run_button = gr.Button("Run evaluation", variant="primary", elem_id="eval-run")
        with gr.Row():
            run_a = gr.Number(precision=0, label="Run A", elem_id="eval-run-a")
            run_b = gr.Number(precision=0, label="Run B", elem_id="eval-run-b")
            compare_button = gr.Button("Compare", elem_id="eval-compare")
            list_button = gr.Button("List runs", elem_id="eval-list")
        runs_table = gr.Dataframe(headers=["run", "when", "set", "llm", "precision", "correct", "refused", "hit@5",
                                           "trust"],
                                  interactive=False, elem_id="eval-runs")
        report = gr.HTML(elem_id="eval-report")
        gr.Markdown("### Why did it answer (or refuse) that?")
        with gr.Row():
            trace_run = gr.Number(precision=0, label="Run", elem_id="trace-run")
            trace_question = gr.Textbox(label="Question id", elem_id="trace-question")
            trace_button = gr.Button("Explain", elem_id="trace-explain")
        # Plain text in a textbox: the trace quotes articles, which must never render as markup.
        trace_text = gr.Textbox(label="Trace", lines=12, max_lines=80, interactive=False, elem_id="trace-text")
        gr.Markdown("### Readers' feedback (unreviewed, thumbs-down first)")
        feedback_button = gr.Button("Show feedback", elem_id="feedback-show")
        feedback_table = gr.Dataframe(headers=["id", "rating", "question", "answer", "comment", "when"],
                                      interactive=False, wrap=True, elem_id="feedback-table")
        with gr.Row():
            reviewed_id = gr.Number(precision=0, label="Feedback id", elem_id="feedback-id")
            reviewed_button = gr.Button("Mark reviewed", elem_id="feedback-reviewed")
            explain_feedback = gr.Button("Explain (ask again with the trace)", elem_id="feedback-explain")

        def do_run(pw, chosen, llm, retrieval, k, progress=gr.Progress()):
            overrides = {"llm": llm or None, "retrieval_mode": retrieval or None, "top_k": int(k) if k else None}
            run_id, html_report = staff.run(pw, chosen, overrides,
                                            progress=lambda rows: progress.tqdm(rows, desc="questions"))
            return framed(html_report), staff.run_list(pw)

        run_button.click(guarded(do_run), [password, question_set, backend, mode, top_k], [report, runs_table],
                         api_name="eval_run")
        def do_compare(pw, a, b):
            return framed(staff.compare(pw, a, b))

        compare_button.click(guarded(do_compare), [password, run_a, run_b],
                             report, api_name="eval_compare")
        list_button.click(guarded(staff.run_list), [password], runs_table, api_name="eval_list")
        feedback_button.click(guarded(staff.feedback_queue), [password], feedback_table, api_name="feedback_queue")

        def do_review(pw, feedback_id):
            staff.mark_reviewed(pw, feedback_id)
            return staff.feedback_queue(pw)

        reviewed_button.click(guarded(do_review), [password, reviewed_id], feedback_table, api_name="feedback_reviewed")
        trace_button.click(guarded(staff.explain_result), [password, trace_run, trace_question], trace_text,
                           api_name="eval_explain")
        explain_feedback.click(guarded(staff.explain_feedback), [password, reviewed_id], trace_text,
                               api_name="feedback_explain")


def build_admin_tab(admin: Admin, throttle: LoginThrottle) -> None:
    """Operators: list, add (upload or URL), remove and re-index articles. Password on every call."""
    columns = ["doc_id", "title", "date", "chunks", "indexed_at", "source"]
    source_columns = ["source", "kind", "checked_at", "result"]

    def table(password: str):
        rows = admin.articles(password)
        return ([[r[c] for c in columns] for r in rows], gr.update(choices=[r["doc_id"] for r in rows]),
                [[r[c] for c in source_columns] for r in admin.sources(password)])

    def guarded(action):
        return password_guarded(action, throttle, "admin", (AdminError, IndexBusyError))

    with gr.Tab("Admin", elem_id="admin-tab"):
        password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
        unlock = gr.Button("Show articles", elem_id="admin-unlock")
        articles = gr.Dataframe(headers=columns, interactive=False, elem_id="admin-articles", wrap=True)
        with gr.Row():
            files = gr.File(label="Upload articles (.txt .md .html .pdf)", file_count="multiple",
                            file_types=[".txt", ".md", ".html", ".htm", ".pdf"], elem_id="admin-files")
            urls = gr.Textbox(label="…or paste URLs of pages or RSS/Atom feeds, one per line", lines=4,
                              elem_id="admin-urls")
        add = gr.Button("Add and index", variant="primary", elem_id="admin-add")
        with gr.Row():
            reindex = gr.Button("Re-index everything", elem_id="admin-reindex")
            recheck = gr.Button("Check feeds for new entries", elem_id="admin-recheck")
        with gr.Row():
            # Custom values allowed so the API can remove by doc_id without first listing in that session;
            # unknown ids are reported as "0 chunks" by rag.admin.
            to_remove = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Articles to remove",
                                    elem_id="admin-remove-choice")
            remove = gr.Button("Remove", variant="stop", elem_id="admin-remove")
        # Plain text: results quote remote text (HTTP reason phrases, feed links, file names).
        result = gr.Textbox(label="Result", interactive=False, lines=2, max_lines=20, elem_id="admin-result")
        gr.Markdown("#### Sources, feeds and watched folders (`rag index … --watch`), last checked first")
        sources = gr.Dataframe(headers=source_columns, interactive=False, elem_id="admin-sources", wrap=True)

        def progress_of(progress: gr.Progress):
            def wrap(items, total):
                # A generator, because Gradio's tracked iterable raises IndexError (not StopIteration)
                # when asked again after the end — which LangChain's batching does.
                yield from progress.tqdm(items, total=total, desc="embedding and writing")
            return wrap

        def do_add(pw, uploaded, pasted, progress=gr.Progress()):
            summary = admin.index(pw, [f if isinstance(f, str) else f.name for f in (uploaded or [])], pasted,
                                  progress=progress_of(progress))
            failures = "".join(f"\n- {source}: {reason}" for source, reason in summary.failed)
            return (f"Indexed: {summary.line()}{failures}", *table(pw))

        def do_reindex(pw, progress=gr.Progress()):
            summary = admin.reindex_all(pw, progress=progress_of(progress))
            return (f"Re-indexed: {summary.line()}", *table(pw))

        def do_recheck(pw, progress=gr.Progress()):
            summary = admin.recheck_feeds(pw, progress=progress_of(progress))
            failures = "".join(f"\n- {source}: {reason}" for source, reason in summary.failed)
            return (f"Feeds checked: {summary.line()}{failures}", *table(pw))

        def do_remove(pw, doc_ids):
            removed = admin.remove(pw, doc_ids)
            return ("Removed: " + ", ".join(f"{d} ({n} chunks)" for d, n in removed.items()), *table(pw))

        listed = [articles, to_remove, sources]
        unlock.click(guarded(table), [password], listed, api_name="admin_list")
        add.click(guarded(do_add), [password, files, urls], [result, *listed], api_name="admin_add")
        reindex.click(guarded(do_reindex), [password], [result, *listed], api_name="admin_reindex")
        recheck.click(guarded(do_recheck), [password], [result, *listed], api_name="admin_recheck_feeds")
        remove.click(guarded(do_remove), [password, to_remove], [result, *listed], api_name="admin_remove")


def is_doc_id(value: str) -> bool:
    """Could ``value`` be an article's id (``rag.load.safe_doc_id`` leaves it as it is)?"""
    try:
        return value == safe_doc_id(value)
    except LoadError:  # nothing left of it ("-", "..")
        return False


def timing_note(answer: Answer) -> str:
    t = answer.timings
    return (f"<small>{answer.llm} · sources in {t.get('retrieve_ms', 0) / 1000:.2f} s · "
            f"first words in {t.get('first_token_ms', 0) / 1000:.1f} s · done in {t.get('total_ms', 0) / 1000:.1f} s</small>")


def answer_from_json(data: dict) -> Answer:
    from rag.schema import Citation

    return Answer(question=data["question"], answer=data["answer"], refused=data["refused"],
                  citations=[Citation(**c) for c in data["citations"]], contexts=[], timings=data["timings"],
                  llm=data["llm"], id=data.get("id"))


def build_server(service: ChatService, demo: gr.Blocks):
    """The ASGI app: Gradio mounted on FastAPI behind the request guard, plus the article route."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import PlainTextResponse

    settings = service.settings
    server = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @server.get("/article/{doc_id}", response_class=PlainTextResponse)
    def article(doc_id: str) -> PlainTextResponse:
        """One indexed article's text, for a source card's "Read the whole article" (plain text)."""
        try:
            text = article_text(service.components.store(), doc_id)[1] if is_doc_id(doc_id) else ""
        except StoreError as exc:
            log.error("the index failed: %s", exc)
            raise HTTPException(503, exc.reader_message) from None
        if not text:
            raise HTTPException(404, "no such article")
        return PlainTextResponse(text[:MAX_ARTICLE_CHARS], headers={
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'"})

    server = gr.mount_gradio_app(
        server, demo, path="/", server_name=settings.host, server_port=settings.port, show_error=False,
        footer_links=["api"], run_history=False,  # the browser keeps no copy of passwords or conversations
        max_file_size=f"{settings.max_upload_mb}mb", theme=gr.themes.Soft(), css=CSS, head=HEAD)
    from gradio.utils import get_upload_folder

    return RequestGuard(server, uploads_enabled=service.admin.enabled, upload_limit=service.upload_limit,
                        max_body_bytes=MAX_BODY_BYTES, max_upload_bytes=10 * settings.max_upload_mb * 1024 * 1024,
                        served_files=Path(get_upload_folder()), trusted_proxies=settings.trusted_proxies)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()
    settings = Settings()
    components = Components(settings)
    service = ChatService(components, FeedbackStore(settings.data_dir / "app.sqlite"))
    try:
        _ = service.pipeline  # load the models before the first reader arrives
        components.embedding_model.embed_query("warm up")  # the embedder loads lazily (indexing needs no torch)
    except StoreError as exc:  # no index yet: serve anyway; each question gets this message
        log.warning("%s", exc)
    demo = build_app(service)
    demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=64)
    log.info("serving on http://%s:%d", settings.host, settings.port)
    # proxy_headers=False: uvicorn would otherwise believe any loopback peer's X-Forwarded-For;
    # rag.webguard reads it only from the proxies RAG_TRUSTED_PROXIES names, and validates it.
    uvicorn.run(build_server(service, demo), host=settings.host, port=settings.port, log_level="warning",
                proxy_headers=False, timeout_graceful_shutdown=5)  # open event streams must not hold a stop


if __name__ == "__main__":
    main()
