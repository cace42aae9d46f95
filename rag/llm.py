"""Answer backends behind one factory, keyed by ``RAG_LLM`` (a registry, as in simonw/llm).

Every backend is a ``Generator``: a runnable from ``{"question", "passages"}`` to answer text,
which streams. Chat backends are ``prompt | chat model | StrOutputParser``; ``extractive`` is a
plain function of the passages.

- ``local``: Qwen2.5-Coder (1.5B default, 0.5B with ``RAG_LLM_MODEL=qwen2.5-coder-0.5b``) on an
  in-process llama.cpp server (``rag.llm_local``).
- ``openai``: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, OpenAI).
- ``extractive``: no model; also the fallback when ``local`` cannot load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI

from rag import llm_local
from rag.confidence import TokenChoice
from rag.extractive import extractive_answer
from rag.prompt import make_prompt, prompt_inputs
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


class UsageRecorder(BaseCallbackHandler):
    """Collects what a chat model reports beside its text: the prompt's token count (prompt length
    is what costs time on a CPU) and the first tokens' probabilities (``rag.confidence``)."""

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
    return chat_generator(f"openai/{settings.llm_model}", chat, prompt_style(settings, small_local_model=False))


@register("local")
def local_backend(settings: Settings) -> Generator:
    spec = llm_local.model_spec(settings.llm_model)
    path = llm_local.ensure_model_file(spec, settings.models_dir)
    _server, base_url = llm_local.start_server(str(path), settings.llm_threads, settings.llm_ctx)
    chat = ChatOpenAI(base_url=base_url, api_key="local", model=spec.name, temperature=0,
                      max_tokens=settings.llm_max_tokens, timeout=settings.llm_timeout_s, max_retries=0,
                      streaming=True, stream_usage=True, logprobs=True, top_logprobs=5)
    return chat_generator(f"local/{spec.name}", chat, prompt_style(settings, small_local_model=True))
