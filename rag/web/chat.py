"""The reader's chat: one conversation turn through the pipeline, streamed as the page shows it.

``ChatService`` is what the page calls: it asks the pipeline (``rag.answer.pipeline``), turns its
events into chat messages and source cards (``rag.web.present``), keeps what a rating needs, and
writes the conversation's Markdown for download (``rag.web.downloads``). No retrieval or prompting here.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import gradio as gr

from rag.answer.followup import rewrite_question
from rag.answer.overview import SHOW_MORE, route
from rag.answer.pipeline import Final, QuestionError, Restart, Sources, Token, clean_question
from rag.answer.retrieve import Filters
from rag.components import Components
from rag.ingest.formats import normalise_date
from rag.ingest.store import StoreError, article_text
from rag.logs import event_log, log_event
from rag.schema import Answer
from rag.web.admin import Admin
from rag.web.downloads import Downloads
from rag.web.feedback import FeedbackStore, UnansweredLog, redact_personal
from rag.web.lifecycle import Draining, Lifecycle
from rag.web.limits import (
    FairGate,
    LimitExceeded,
    LoginThrottle,
    MemoryCounts,
    QuestionBudget,
    RateLimit,
    SharedCounts,
    too_many_questions,
)
from rag.web.metrics import Metrics, outcome_of
from rag.web.present import answer_html, as_text, draft_html, passage_card, share_query, sources_html, turn_markdown
from rag.web.staff import Staff

log = logging.getLogger(__name__)

TITLE = "Policy Desk"  # the product's name: the page's heading and each transcript's


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
    last_timeframe: dict | None = None  # the period the last answer searched (rag.answer.timeframe), if any
    last_doc_ids: tuple[str, ...] = ()  # the articles the last answer cited ("summarize that one")
    last_digest: tuple[str, int] | None = None  # a digest with more to list: (its question, the page shown)

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

    def __init__(self, components: Components, feedback: FeedbackStore, unanswered: UnansweredLog | None = None,
                 metrics: Metrics | None = None, lifecycle: Lifecycle | None = None) -> None:
        self.components = components
        self.settings = components.settings
        self.feedback = feedback
        self.metrics = metrics or Metrics()  # this process's counters (rag.web.metrics)
        self.lifecycle = lifecycle or Lifecycle(self.settings.shutdown_grace_s)  # warm-up and graceful stop
        # Per client; counted in the shared database when there is one (every app process counts the same tries).
        counts = SharedCounts(feedback.engine) if self.settings.shared_state else MemoryCounts()
        hit = self.metrics.limit_hit
        # Refused questions for staff: each client adds at most 20 an hour, so a flood cannot push out the rest.
        self.unanswered = unanswered or UnansweredLog(
            feedback.engine, self.settings.question_log_days, embed=components.embedding_model.embed_query,
            limit=RateLimit(20, 3600, "unanswered", counts=counts))
        self.logins = LoginThrottle(counts=counts, on_failure=self.metrics.login_failed)  # wrong admin/staff passwords
        self.feedback_limit = RateLimit(30, 600, "ratings", counts=counts, on_hit=hit)
        self.upload_limit = RateLimit(20, 600, "uploads", counts=counts, on_hit=hit)  # before the admin password is known
        self.question_budget = QuestionBudget(self.settings.questions_per_minute, counts=counts, on_hit=hit)
        # The model's turns, round-robin between clients (Gradio lets more questions in than this).
        self.model_turns = FairGate(self.settings.concurrency_limit)
        self.admin = Admin(components)
        self.downloads = Downloads()  # transcripts and exports, in a private temp folder
        self.background = None  # the summariser thread (rag.answer.summary.BackgroundSummaries), when app.py starts one
        self.sessions = None  # the idle-session reaper (rag.web.sessions.SessionReaper), made by rag.web.server
        # Question sets: the project's development sets (when ../shared is beside the checkout) and
        # any set staff drop into RAG_DATA_DIR/question-sets.
        self.staff = Staff(components, feedback, [Path(__file__).resolve().parents[3] / "shared" / "eval",
                                                  components.settings.data_dir / "question-sets"], self.unanswered,
                           self.downloads)

    @property
    def pipeline(self):
        return self.components.pipeline

    def articles(self) -> list[dict]:
        try:
            return list(self.components.catalog.articles().values())
        except Exception as exc:  # no index yet: the chat says so on the first question
            log.warning("cannot list articles: %s", exc)
            return []

    def example_questions(self, limit: int = 4) -> list[str]:
        """Derived from what is indexed: a summary of each of the newest articles, by its whole title
        (what readers ask first, and answered at once from the prepared summary)."""
        rows = sorted(self.articles(), key=lambda r: r.get("date") or "", reverse=True)[:limit]
        # Titles come from articles and Gradio renders examples as Markdown: keep only plain words.
        titles = [re.sub(r"[^\w\s,.;:'’?&%-]+", " ", row["title"][:300]) for row in rows if row.get("title")]
        return [f"Summarize “{' '.join(title.split())}”" for title in titles]

    def respond(self, message: str, history: list, state: Session, docs, start, end, base_url: str = "",
                infer_dates: bool | None = None, client: str = "unknown"):
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
        try:
            if self.lifecycle.draining:
                raise Draining()
            self.question_budget.take(client)
        except Exception as exc:  # over budget, restarting — or the shared counters' database is down: say so
            said = str(exc) if isinstance(exc, LimitExceeded) else user_message(exc)
            self.metrics.failed("rejected" if isinstance(exc, (LimitExceeded, Draining)) else "error")
            history += [{"role": "user", "content": as_text(question)},
                        {"role": "assistant", "content": f"<div class='refusal'>{as_text(said)}</div>"}]
            yield history, gr.skip(), state, ""
            return
        history += [{"role": "user", "content": as_text(question)}, {"role": "assistant", "content": "…"}]
        state.turns += 1
        turn = state.turns
        yield history, gr.skip(), state, ""
        try:
            with self.lifecycle.question():  # a stop that begins now lets this answer finish first
                yield from self._answer_turn(question, history, state, turn, docs, start, end, base_url,
                                             infer_dates, client)
        except Exception as exc:
            self.metrics.failed("rejected" if isinstance(exc, Draining) else "error")
            history[-1] = {"role": "assistant", "content": f"<div class='refusal'>{as_text(user_message(exc))}</div>"}
            yield history, sources_html(state.source_turns), state, ""

    def _answer_turn(self, question: str, history: list, state: Session, turn: int, docs, start, end,
                     base_url: str, infer_dates, client: str):
        """``respond`` once the question is accepted: routed, rewritten, waited for a turn, answered."""
        filters = make_filters(docs, start, end)
        # "Summarize that one" names its article through the conversation (``about``), not a rewrite.
        page = 0
        if SHOW_MORE.match(question) and state.last_digest:  # the next page of the last digest
            standalone, page = state.last_digest[0], state.last_digest[1] + 1
            whole_article = True
        else:
            whole_article = route(question).kind != "answer"
        # A turn at the model (round-robin between clients); in flight from here, so the background
        # summariser drops what it is writing (the follow-up rewrite asks the model too).
        with self.model_turn(client) as waited, self.pipeline.in_flight:
            if not page:
                standalone = question if whole_article else rewrite_question(question, state.history,
                                                                             self.pipeline.generator.chat_model)
            yield from self._stream_turn(question, standalone, filters, infer_dates, history, state, turn, base_url,
                                         client, page, waited)

    @contextmanager
    def model_turn(self, client: str):
        """A turn at the model (``FairGate``), the wait counted in /metrics; yields the seconds waited."""
        started = time.perf_counter()
        with self.model_turns.turn(client, waiting=self.metrics.waiting_for_model()):
            yield time.perf_counter() - started

    def _stream_turn(self, question: str, standalone: str, filters: Filters, infer_dates, history: list,
                     state: Session, turn: int, base_url: str, client: str, page: int = 0, waited: float = 0.0):
        """The pipeline's events for one question, as the chat shows them (see ``respond``)."""
        text, articles, shown = "", {}, False  # articles: doc_id -> article text, fetched once per turn
        for event in self.pipeline.stream(standalone, filters, infer_dates, about=state.last_doc_ids, page=page):
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
                state.last_digest = (standalone, page) if answer.kind == "digest" and answer.more else None
                if answer.citations:  # what "it" and "that one" mean in the next question
                    state.last_doc_ids = tuple(dict.fromkeys(c.doc_id for c in answer.citations))
                self.unanswered.record(answer, client)
                self.observe(answer, waited)
                history = state.trim(history)
                yield history, sources_html(state.source_turns), state, timing_note(answer)

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
                 date_to: str = "", client: str = "unknown") -> dict:
        try:
            wait = self.question_budget.wait_s(client, take=True)
            if wait > 0:
                self.metrics.failed("rejected")
                return {"question": question, "error": too_many_questions(wait), "retry_after_s": round(wait)}
            filters = make_filters(doc_ids, date_from, date_to)
            with self.lifecycle.question(), self.model_turn(client) as waited:
                answer = self.pipeline.ask(question, filters)
            self.unanswered.record(answer, client)
            self.observe(answer, waited)
            return answer.to_json()
        except Exception as exc:
            self.metrics.failed("rejected" if isinstance(exc, Draining) else "error")
            return {"question": question, "error": user_message(exc)}

    def observe(self, answer: Answer, waited: float) -> None:
        """An answered (or refused) question, for /metrics and the log: latencies and kinds; its text
        only with RAG_LOG_QUESTIONS (personal data redacted)."""
        self.metrics.answered(answer, waited)
        t = answer.timings
        fields = {"outcome": outcome_of(answer), "kind": answer.kind, "refusal_kind": answer.refusal_kind or "",
                  "retrieve_s": round(t.get("retrieve_ms", 0) / 1000, 3),
                  "first_token_s": round(t.get("first_token_ms", 0) / 1000, 3),
                  "total_s": round(t.get("total_ms", 0) / 1000, 3), "queue_wait_s": round(waited, 3),
                  "citations": len(answer.citations), "llm": answer.llm}
        if self.settings.log_questions:
            fields["question"] = redact_personal(answer.question)[:500]
        log_event(event_log, "question", "question %s (%s) in %.1f s, first words after %.1f s", fields["outcome"],
                  answer.kind, fields["total_s"], fields["first_token_s"], **fields)



def base_url_of(request: gr.Request | None) -> str:
    """The app's address as this reader reached it ("http://host:port/"), or "" (API without one)."""
    try:
        return str(request.base_url) if request is not None else ""
    except Exception:  # a request Gradio built without an HTTP request behind it
        return ""


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
    if isinstance(exc, (QuestionError, Draining)):
        return str(exc)[:500]
    if isinstance(exc, StoreError):  # its message names paths and hosts: for the log only
        log.error("the index failed: %s", exc)
        return exc.reader_message
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or "APIError" in name:
        return "The language model is not reachable right now. Please try again in a moment."
    log.exception("answering failed")
    return f"Something went wrong while answering ({name}). The error was logged; please try again."



def timing_note(answer: Answer) -> str:
    t = answer.timings
    return (f"<small>{answer.llm} · sources in {t.get('retrieve_ms', 0) / 1000:.2f} s · "
            f"first words in {t.get('first_token_ms', 0) / 1000:.1f} s · done in {t.get('total_ms', 0) / 1000:.1f} s</small>")


def answer_from_json(data: dict) -> Answer:
    from rag.schema import Citation

    return Answer(question=data["question"], answer=data["answer"], refused=data["refused"],
                  citations=[Citation(**c) for c in data["citations"]], contexts=[], timings=data["timings"],
                  llm=data["llm"], id=data.get("id"))
