"""Stage 5 — answer: a question in, a cited ``Answer`` out (streamed as events on the way).

    question ─► retrieve (hybrid; each half of a compound question too)
             ─► choose sentences (rag.answer.context) ─► prompt ─► model ─► check (rag.answer.citations) ─► Answer
                       │ nothing relevant: refuse without asking           │ an unsure refusal: ask again
    events:  Sources ──┘                               Token … Token       │ with an answering start
                                                                            └─► (rag.answer.confidence)   Final

Every front end (CLI, web chat, API, evaluation) calls ``Pipeline.stream`` or ``Pipeline.ask``,
so they cannot drift apart.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace

from langchain_core.embeddings import Embeddings

from rag.answer.citations import (
    answers_every_part,
    answers_kind,
    check_answer,
    expected_kinds,
    holds_question_years,
    is_refusal,
    question_parts,
)
from rag.answer.confidence import answering_start
from rag.answer.context import SentenceVectors, estimate_tokens, focus
from rag.answer.llm import Generator, UsageRecorder, make_generator
from rag.answer.overview import Overview, Route, route
from rag.answer.prompt import REFUSAL, group_by_article
from rag.answer.retrieve import Filters, HybridRetriever, interleave, to_passage
from rag.answer.timeframe import Timeframe, newest_first, timeframe_of
from rag.schema import Answer, Citation, Passage
from rag.settings import Settings

log = logging.getLogger(__name__)


class QuestionError(ValueError):
    """The question cannot be answered as asked (empty, too long)."""


@dataclass
class Sources:
    passages: list[Passage]


@dataclass
class Token:
    text: str


@dataclass
class Restart:
    """What streamed so far is void: nothing in the question's period answered, so the question
    is asked again over all articles (front ends clear the partial answer and show ``note``)."""

    note: str


@dataclass
class Final:
    answer: Answer


Event = Sources | Token | Restart | Final


def clean_question(question: str, max_chars: int) -> str:
    """Drop control characters and surplus whitespace; refuse empty or over-long questions."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    if len(question) > max_chars:  # before any work on it: 5 MB of spaces is refused, not collapsed
        raise QuestionError(
            f"the question is {len(question):,} characters long; the limit is {max_chars:,} (RAG_MAX_QUESTION_CHARS)"
        )
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in question)
    text = " ".join(text.split())
    if not text:
        raise QuestionError("the question is empty; type a question about the articles")
    return text


class InFlight:
    """Questions being answered now: background work for the model (summaries) waits until none is."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self):
        with self._idle:
            self._count += 1

    def __exit__(self, *exc):
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def busy(self) -> bool:
        return self._count > 0

    def wait_idle(self, settle_s: float = 0.5) -> None:
        """Return once no question has been in flight for ``settle_s`` (a reader's next question
        often follows at once)."""
        with self._idle:
            while True:
                self._idle.wait_for(lambda: self._count == 0)
                if not self._idle.wait_for(lambda: self._count > 0, timeout=settle_s):
                    return


class Pipeline:
    def __init__(self, settings: Settings, retriever: HybridRetriever, generator: Generator,
                 fallback: Generator | None = None, embeddings: Embeddings | None = None,
                 overview: Overview | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self.generator = generator
        self.fallback = fallback
        # Scores sentences for the prompt (rag.answer.context); None: by shared terms alone.
        self.sentence_vectors = SentenceVectors(embeddings) if embeddings is not None else None
        self.overview = overview  # summaries, comparisons, digests (rag.answer.overview); None: facts only
        self.in_flight = InFlight()

    def ask(self, question: str, filters: Filters | None = None, id: str | None = None,
            infer_dates: bool | None = None, about: tuple[str, ...] = ()) -> Answer:
        for event in self.stream(question, filters, infer_dates, about):
            if isinstance(event, Final):
                event.answer.id = id
                return event.answer
        raise RuntimeError("pipeline ended without an answer")  # unreachable: stream always ends in Final

    def stream(self, question: str, filters: Filters | None = None,
               infer_dates: bool | None = None, about: tuple[str, ...] = (), page: int = 0) -> Iterator[Event]:
        """Answer ``question`` as events. ``infer_dates`` (default ``RAG_INFER_DATES``): a period
        the question names narrows the search to it (``rag.answer.timeframe``) unless the reader set dates;
        when nothing in the period answers, the question is asked again over all articles.
        ``about``: the articles the conversation is about ("summarize that one"); ``page``: a long
        digest's page ("show more")."""
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        routed = route(question)
        why = routed.why if routed.kind == "answer" or self.overview is None else \
            f"{routed.why}, but nothing matched that way: answered as a question of fact"
        with self.in_flight:
            for event in self._stream(question, routed, started, filters, infer_dates, about, page):
                if isinstance(event, Final) and event.answer.route is None:
                    event.answer.route = {"kind": "answer", "why": why}
                yield event

    def _stream(self, question: str, routed: Route, started: float, filters: Filters | None,
                infer_dates: bool | None, about: tuple[str, ...], page: int) -> Iterator[Event]:
        filters = filters or Filters()
        if self.overview is not None and routed.kind != "answer":
            # Whole-article questions: prepared summaries, comparisons, digests — no model call.
            overview = self.overview.answer(question, routed, filters, about, page)
            if overview is not None:
                overview.filters = overview.filters or filters.to_json()
                yield Sources(overview.contexts)
                yield Final(overview)
                return
        infer = self.settings.infer_dates if infer_dates is None else infer_dates
        timeframe = timeframe_of(question) if infer else Timeframe()
        if filters.date_from or filters.date_to:  # the reader's own dates win over the question's
            timeframe = timeframe.without_period()
        if not timeframe.has_period:
            yield from self._answer(question, filters, timeframe, started)
            return
        within = replace(filters, date_from=timeframe.date_from, date_to=timeframe.date_to)
        for event in self._answer(question, within, timeframe, started):
            if isinstance(event, Final) and event.answer.refused:
                note = f"Nothing in {timeframe.label[0].lower()}{timeframe.label[1:]} answers this; searching all articles."
                yield Restart(note)
                for again in self._answer(question, filters, timeframe.without_period(), started):
                    if isinstance(again, Final):
                        again.answer.timeframe = {**timeframe.to_json(), "applied": False, "note": note}
                    yield again
                return
            if isinstance(event, Final):
                undated = self.retriever.lexical.undated_articles(filters.doc_ids)
                event.answer.timeframe = {**timeframe.to_json(), "applied": True, "undated_articles": undated}
            yield event

    def _answer(self, question: str, filters: Filters, timeframe: Timeframe, started: float) -> Iterator[Event]:
        parts = question_parts(question)
        docs = self.retriever.invoke(question, filters=filters)
        if parts:  # a compound question: what answers each half competes for the prompt too
            docs = interleave([docs, *(self.retriever.invoke(p, filters=filters) for p in parts)],
                              k=max(len(docs), self.settings.candidate_passages))
        retrieve_ms = (time.perf_counter() - started) * 1000
        ranking = [{"chunk_id": d.id or d.metadata.get("chunk_id"), "doc_id": d.metadata.get("doc_id"),
                    "title": d.metadata.get("title", ""), "fused": d.metadata.get("score"),
                    **{key: d.metadata.get(key) for key in ("dense_rank", "dense_score", "bm25_rank", "bm25_score",
                                                            "page", "page_end")}}
                   for d in docs]  # the fused order, with each retriever's rank and score (rag.answer.explain)
        candidates = [to_passage(d) for d in docs]
        if timeframe.newest_first:  # "the latest guidance on …": newer relevant articles first
            candidates = newest_first(candidates)
        passages = self.choose_passages(question, candidates, parts)
        if timeframe.newest_first:
            passages = sorted(passages, key=lambda p: p.date or "", reverse=True)  # stable: articles stay grouped
        yield Sources(passages)

        timings = {"retrieve_ms": retrieve_ms}
        if not self.relevant_enough(passages):
            timings["first_token_ms"] = timings["total_ms"] = (time.perf_counter() - started) * 1000
            refused = refusal(question, passages, timings, self.generator.name, kind="nothing_similar")
            refused.ranking, refused.filters = ranking, filters.to_json()
            yield Final(refused)
            return

        text, first_token_at, used, usage = "", None, self.generator, UsageRecorder()
        try:
            for piece in self.generator.runnable.stream({"question": question, "passages": passages},
                                                        config={"callbacks": [usage]}):
                if first_token_at is None and piece:
                    first_token_at = time.perf_counter()
                text += piece
                yield Token(piece)
        except Exception as exc:  # a server down or gone mid-answer: say so, or fall back
            if self.fallback is None:
                raise
            log.warning("LLM %s failed (%s); answering with %s", self.generator.name, exc, self.fallback.name)
            used = self.fallback
            text = self.fallback.runnable.invoke({"question": question, "passages": passages})
            first_token_at = time.perf_counter()
            yield Token("\n\n" + text)
        finished = time.perf_counter()
        timings["first_token_ms"] = ((first_token_at or finished) - started) * 1000
        timings["total_ms"] = (finished - started) * 1000
        name = used.name if used is self.generator else f"{used.name} (fallback: {self.generator.name} failed)"
        answer = finalize(question, text, passages, timings, name)
        if used is self.generator:
            answer = self.second_opinion(answer, question, passages, usage)
        answer.prompt_tokens = usage.prompt_tokens
        answer.timings["total_ms"] = (time.perf_counter() - started) * 1000
        if timeframe.newest_first and not timeframe.has_period:
            answer.timeframe = {**timeframe.to_json(), "applied": True}
        answer.ranking, answer.filters = ranking, filters.to_json()
        yield Final(answer)

    def second_opinion(self, answer: Answer, question: str, passages: list[Passage], usage: UsageRecorder) -> Answer:
        """Act on how likely the model was to refuse (``rag.answer.confidence``): refuse an answer it nearly
        withheld; re-ask, with an answering start written in, a refusal it was unsure of."""
        p_refuse = self.generator.refusal_probability(usage.first_steps)
        answer.refusal_probability = p_refuse
        if p_refuse is None:
            return answer
        if not answer.refused and p_refuse >= self.settings.refuse_above:
            guessed = refusal(question, passages, answer.timings, answer.llm, answer.model_output, kind="checks_withheld")
            guessed.refusal_probability = p_refuse
            return guessed
        start = answering_start(usage.first_steps)
        if not (answer.refused and is_refusal(answer.model_output or "") and p_refuse < self.settings.reask_below
                and start and self.generator.continuation is not None):
            return answer
        started = time.perf_counter()
        try:
            rest = self.generator.continuation.invoke({"question": question, "passages": passages, "start": start})
        except Exception as exc:  # the first reply stands
            log.warning("re-asking the model failed: %s", exc)
            return answer
        answer.timings["reask_ms"] = (time.perf_counter() - started) * 1000
        retried = finalize(question, start + rest, passages, answer.timings, answer.llm)
        retried.model_output = f"{answer.model_output}\n[re-asked, starting {start!r}] {start}{rest}"
        retried.refusal_probability = p_refuse
        return retried

    def choose_passages(self, question: str, candidates: list[Passage], parts: list[str] | None = None) -> list[Passage]:
        """What the model reads, within the prompt budget (prompt length is what costs time): the
        best sentences of the top candidates, or the best passages whole (``RAG_CONTEXT_MODE``)."""
        if self.settings.context_mode == "sentences":
            shown = focus(question, candidates[: self.settings.candidate_passages], self.sentence_vectors,
                          budget_tokens=self.settings.context_tokens, max_passages=self.settings.top_k,
                          parts=parts or [])
            return group_by_article(shown)
        chosen: list[Passage] = []
        budget = self.settings.context_tokens
        for passage in candidates:
            cost = estimate_tokens(passage.text) + 6  # the "[n] " label and line
            if len(chosen) >= self.settings.top_k or (chosen and cost > budget):
                break
            chosen.append(passage)
            budget -= cost
        # The prompt names each article once, so its passages sit together (and are numbered so).
        return group_by_article(chosen)

    def relevant_enough(self, passages: list[Passage]) -> bool:
        if not passages:
            return False
        dense = [p.dense_score for p in passages if p.dense_score is not None]
        return not dense or max(dense) >= self.settings.min_dense_score


def finalize(question: str, text: str, passages: list[Passage], timings: dict, llm: str) -> Answer:
    """Turn the model's reply into an Answer with verified citations, or a refusal."""
    sentences = check_answer(text, passages, question)
    if not sentences or is_refusal(sentences[0].text):
        return refusal(question, passages, timings, llm, text, kind="model_declined")
    kept = [s for s in sentences if s.supported and not is_refusal(s.text)]
    if not kept:
        declined = all(is_refusal(s.text) for s in sentences)
        return refusal(question, passages, timings, llm, text, kind="model_declined" if declined else "checks_withheld")
    # Off-target: a "when" question answered without a date, "which agency" without a name, …
    kept_text = " ".join(s.text for s in kept)
    if not all(answers_kind(kind, kept_text, question) for kind in expected_kinds(question)) \
            or not answers_every_part(question, kept_text):
        return refusal(question, passages, timings, llm, text, kind="checks_withheld")
    parts, cited = [], []
    for sentence in kept:
        markers = "".join(f"[{n}]" for n in sentence.cites)
        parts.append(f"{sentence.text.rstrip()} {markers}".rstrip())
        cited.extend(n for n in sentence.cites if n not in cited)
    # "How many comments on the 2017 proposal?" answered from passages that never say 2017.
    if not holds_question_years(question, passages, [passages[n - 1] for n in cited]):
        return refusal(question, passages, timings, llm, text, kind="checks_withheld")
    citations = [
        Citation(n=n, doc_id=passages[n - 1].doc_id, title=passages[n - 1].title, chunk_id=passages[n - 1].chunk_id,
                 text=passages[n - 1].text, start=passages[n - 1].start, end=passages[n - 1].end,
                 page=passages[n - 1].page, page_end=passages[n - 1].page_end)
        for n in cited
    ]
    return Answer(question=question, answer=" ".join(parts), refused=False, citations=citations,
                  contexts=passages, timings=timings, llm=llm, model_output=text)


def refusal(question: str, passages: list[Passage], timings: dict, llm: str, model_output: str | None = None,
            kind: str = "model_declined") -> Answer:
    """The answer "The articles don't say.", with the closest passages and why (``REFUSAL_KINDS``)."""
    return Answer(question=question, answer=REFUSAL, refused=True, citations=[], contexts=passages,
                  timings=timings, llm=llm, model_output=model_output, refusal_kind=kind)


def build_pipeline(settings: Settings, retriever: HybridRetriever, generator: Generator | None = None,
                   embeddings: Embeddings | None = None, overview: Overview | None = None) -> Pipeline:
    generator = generator or make_generator(settings)
    fallback = None
    if settings.llm_fallback and not generator.name.startswith("extractive"):
        from rag.answer.llm import BACKENDS

        fallback = BACKENDS["extractive"](settings)
    return Pipeline(settings, retriever, generator, fallback, embeddings, overview)
