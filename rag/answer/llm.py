"""Answer backends behind one factory, keyed by ``RAG_LLM`` (a registry, as in simonw/llm).

Every backend is a ``Generator``: a runnable from ``{"question", "passages"}`` to answer text,
which streams. Chat backends are ``prompt | chat model | StrOutputParser``; ``extractive`` is a
plain function of the passages.

- ``local``: Qwen2.5-Coder (1.5B default, 0.5B with ``RAG_LLM_MODEL=qwen2.5-coder-0.5b``) on an
  in-process llama.cpp server (``rag.answer.llm_local``).
- ``openai``: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).
- ``extractive``: no model; also the fallback when ``local`` cannot load.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI

from rag.answer import llm_local
from rag.answer.confidence import TokenChoice, no_evidence_probability, refusal_probability
from rag.answer.extractive import extractive_answer
from rag.answer.prompt import (
    EVIDENCE_GRAMMAR,
    EVIDENCE_START,
    REFUSAL,
    format_sentences,
    make_prompt,
    prompt_inputs,
    question_text,
)
from rag.settings import Settings

log = logging.getLogger(__name__)


class LLMError(Exception):
    pass


@dataclass
class Generator:
    name: str  # "<backend>/<model>", reported in every answer's ``llm`` field
    runnable: Runnable  # {"question": str, "passages": list[Passage]} -> str (streams)
    chat_model: Runnable | None = None  # for auxiliary calls (follow-up rewriting); None: extractive
    # The same call with the reply's start written in: {"question", "passages", "start"} -> the rest.
    continuation: Runnable | None = None
    # P(the reply is a refusal), from the first tokens' probabilities (rag.answer.confidence).
    refusal_probability: Callable[[list[TokenChoice]], float | None] = refusal_probability


class UsageRecorder(BaseCallbackHandler):
    """Collects what a chat model reports beside its text: the prompt's token count (prompt length
    is what costs time on a CPU) and the first tokens' probabilities (``rag.answer.confidence``)."""

    def __init__(self, steps: int = 4) -> None:
        self.prompt_tokens: int | None = None
        self.first_steps: list[TokenChoice] = []
        self._steps = steps

    def on_llm_new_token(self, token: str, *, chunk=None, **kwargs) -> None:
        info = getattr(chunk, "generation_info", None) or {}
        for entry in (info.get("logprobs") or {}).get("content") or []:
            if len(self.first_steps) < self._steps:
                self.first_steps.append(TokenChoice(entry["token"], entry["logprob"],
                                                    {t["token"]: t["logprob"] for t in entry.get("top_logprobs", [])}))

    def on_llm_end(self, response, **kwargs) -> None:
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    self.prompt_tokens = (self.prompt_tokens or 0) + usage.get("input_tokens", 0)


BACKENDS: dict[str, Callable[[Settings], Generator]] = {}


def register(name: str):
    def decorator(factory: Callable[[Settings], Generator]) -> Callable[[Settings], Generator]:
        BACKENDS[name] = factory
        return factory

    return decorator


def make_generator(settings: Settings) -> Generator:
    """Build the configured backend; if ``local`` cannot load, fall back to ``extractive`` (logged)."""
    try:
        return BACKENDS[settings.llm](settings)
    except (LLMError, llm_local.LocalModelError) as exc:
        if settings.llm != "local" or not settings.llm_fallback:
            raise
        log.warning("local model unavailable, answering extractively: %s", exc)
        fallback = BACKENDS["extractive"](settings)
        fallback.name = f"extractive (fallback: {exc})"
        return fallback


def chat_generator(name: str, chat_model: Runnable, style: str = "cite") -> Generator:
    """``prompt | chat model | text``: the one chain every chat backend uses."""
    to_inputs = RunnableLambda(lambda x: prompt_inputs(x["question"], x["passages"]))
    prompt = make_prompt(style)
    # llama.cpp (and most OpenAI-compatible servers) continue a final assistant message.
    with_start = RunnableLambda(lambda x: [*prompt.invoke(prompt_inputs(x["question"], x["passages"])).to_messages(),
                                           AIMessage(x["start"])])
    return Generator(name=name, runnable=to_inputs | prompt | chat_model | StrOutputParser(),
                     chat_model=chat_model, continuation=with_start | chat_model | StrOutputParser())


def evidence_generator(name: str, chat_model: Runnable) -> Generator:
    """Evidence before answer: the model first names the numbered sentences that state the answer,
    or "none", then answers — two lines ("Evidence: 3, 5" / "Answer: …") after a written-in
    "Evidence:", held by ``EVIDENCE_GRAMMAR`` (llama.cpp's ``grammar`` request field). "none" is a
    refusal decided at the first token, before any answer is written; otherwise the answer streams
    and ends with the chosen sentences' passages as its markers, for the checker to verify."""
    prompt = make_prompt("evidence")

    def reply(x: dict) -> Iterator[str]:
        passages, owners = format_sentences(x["passages"])
        messages = [*prompt.invoke({"question": question_text(x["question"]), "passages": passages}).to_messages(),
                    AIMessage(EVIDENCE_START)]
        constrained = chat_model.bind(extra_body={"grammar": EVIDENCE_GRAMMAR})
        yield from answer_from_evidence((chunk.content for chunk in constrained.stream(messages)), owners)

    return Generator(name=name, runnable=RunnableLambda(reply), chat_model=chat_model,
                     refusal_probability=no_evidence_probability)


_EVIDENCE_LINE = re.compile(r"\s*(none|[\d,\s]*)\s*\n\s*Answer:\s*(?=\S)", re.IGNORECASE)


def answer_from_evidence(pieces: Iterable[str], owners: list[int]) -> Iterator[str]:
    """Stream the answer line of a streamed " 3, 5\nAnswer: …" reply, ending with the evidence
    sentences' passage markers; the refusal as soon as the evidence reads "none"."""
    raw, cited = "", []
    for piece in pieces:
        if not cited:  # still reading the evidence line
            raw += piece
            if raw.strip().lower().startswith("none"):
                break
            if not (match := _EVIDENCE_LINE.match(raw)):
                continue
            numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
            cited = list(dict.fromkeys(owners[n - 1] for n in numbers if 1 <= n <= len(owners)))
            if not cited:  # only numbers of sentences that do not exist
                break
            piece = raw[match.end():]
        if piece:
            yield piece
    if not cited:
        if raw.strip() and not raw.strip().lower().startswith("none") and not _EVIDENCE_LINE.match(raw):
            # e.g. an OpenAI-compatible server that ignores llama.cpp's "grammar" field
            log.warning("the reply did not follow the evidence format (%r…); refused", raw[:60])
        yield REFUSAL
        return
    yield " " + "".join(f"[{n}]" for n in cited)


def prompt_style(settings: Settings, small_local_model: bool) -> str:
    if settings.prompt_style != "auto":
        return settings.prompt_style
    return "plain" if small_local_model else "cite"


@register("extractive")
def extractive_backend(settings: Settings) -> Generator:
    return Generator(name="extractive",
                     runnable=RunnableLambda(lambda x: extractive_answer(x["question"], x["passages"])))


@register("openai")
def openai_backend(settings: Settings) -> Generator:
    if not settings.llm_base_url and not settings.llm_api_key:
        raise LLMError("RAG_LLM=openai needs RAG_LLM_BASE_URL (and RAG_LLM_API_KEY if the server wants one)")
    chat = ChatOpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed",
        model=settings.llm_model,
        temperature=0,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=1,
        streaming=True,
    )
    style = prompt_style(settings, small_local_model=False)
    if style == "evidence":  # the server must take llama.cpp's "grammar" request field
        return evidence_generator(f"openai/{settings.llm_model}", chat)
    return chat_generator(f"openai/{settings.llm_model}", chat, style)


@register("local")
def local_backend(settings: Settings) -> Generator:
    spec = llm_local.model_spec(settings.llm_model)
    path = llm_local.ensure_model_file(spec, settings.models_dir)
    _server, base_url = llm_local.start_server(str(path), settings.llm_threads, settings.llm_ctx)
    chat = ChatOpenAI(base_url=base_url, api_key="local", model=spec.name, temperature=0,
                      max_tokens=settings.llm_max_tokens, timeout=settings.llm_timeout_s, max_retries=0,
                      streaming=True, stream_usage=True, logprobs=True, top_logprobs=5)
    style = prompt_style(settings, small_local_model=True)
    if style == "evidence":
        return evidence_generator(f"local/{spec.name}", chat)
    return chat_generator(f"local/{spec.name}", chat, style)
