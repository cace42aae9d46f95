"""Plain values that travel between the pipeline stages.

Chunks travel as LangChain ``Document``s (the vector store and the indexing API speak that);
their metadata keys are listed in ``CHUNK_METADATA_KEYS`` and documented here once:

    doc_id      stable article id (the file's stem)
    title       article title
    section     heading the chunk sits under ("" before the first heading)
    date        ISO date "YYYY-MM-DD" or ""
    date_num    the date as an int YYYYMMDD (0 when unknown) so Chroma can range-filter it
    author      author when known, else ""
    source      source URL when known, else the file path
    start, end  character span of the chunk body in the article's cleaned text
    chunk_id    stable id: hash of doc_id, body text and span
    body_offset where the body starts in page_content (page_content = header line + body)
    indexed_at  UTC time of the indexing run that wrote the chunk
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CHUNK_METADATA_KEYS = (
    "doc_id", "title", "section", "date", "date_num", "author", "source",
    "start", "end", "chunk_id", "body_offset", "indexed_at", "page", "page_end", "ocr",
)


@dataclass
class Article:
    """One cleaned article, as produced by ``rag.ingest.load``."""

    doc_id: str
    title: str
    text: str  # cleaned text; chunk spans index into it
    date: str = ""
    author: str = ""
    source: str = ""
    # (start, end, heading) for each section heading in ``text``, in order.
    headings: list[tuple[int, int, str]] = field(default_factory=list)
    path: str = ""  # the file it was read from (rag.ingest.load.file_path), "" for pages and records
    # A paged source (PDF): (offset in ``text``, page number) where each page's text starts, in order.
    pages: list[tuple[int, int]] = field(default_factory=list)
    ocr: bool = False  # some text was recognised from scanned pages: it may hold misread words


@dataclass
class Passage:
    """A retrieved chunk, with the scores that ranked it."""

    chunk_id: str
    doc_id: str
    title: str
    text: str  # the chunk body (what the reader sees and the model reads)
    section: str = ""
    date: str = ""
    author: str = ""
    source: str = ""
    start: int = 0
    end: int = 0
    score: float = 0.0  # fused rank score (higher is better)
    dense_score: float | None = None  # cosine similarity when the dense retriever saw it
    shown: str = ""  # what the model was shown of ``text`` (its chosen sentences, rag.answer.context); "" = all
    page: int = 0  # a paged source's first page of this passage (0: not paged)
    page_end: int = 0  # … and its last
    ocr: bool = False  # its article's text was (partly) recognised from a scan


# Why an answer is a refusal: the three ways the pipeline says "the articles don't say".
REFUSAL_KINDS = {
    "nothing_similar": "nothing similar enough was found",
    "model_declined": "the model said the articles don't say",
    "checks_withheld": "the checks withheld the answer",
}


@dataclass
class Citation:
    n: int
    doc_id: str
    title: str
    chunk_id: str
    text: str
    start: int
    end: int
    page: int = 0  # the cited passage's pages in a paged source (PDF); 0: not paged
    page_end: int = 0


def page_label(page: int, page_end: int = 0) -> str:
    """"p. 12", "pp. 12–13", or "" for an unpaged source."""
    if not page:
        return ""
    return f"pp. {page}–{page_end}" if page_end and page_end != page else f"p. {page}"


@dataclass
class Answer:
    """The JSON object every front end returns (see README, "The answer object")."""

    question: str
    answer: str
    refused: bool
    citations: list[Citation]
    contexts: list[Passage]
    timings: dict[str, float]
    llm: str
    id: str | None = None
    rewritten_question: str | None = None
    # The model's raw reply before the checker: kept for evaluation traces, never shown to readers
    # (it may hold the very claims the checker dropped), so not part of ``to_json``.
    model_output: str | None = None
    prompt_tokens: int | None = None  # as the model counted them, when it reports usage
    refusal_probability: float | None = None  # how likely the model was to refuse (rag.answer.confidence)
    # The period read from the question (rag.answer.timeframe): its dates and label, whether the answer
    # came from within it ("applied") or from all articles, and how many undated articles it left out.
    timeframe: dict | None = None
    filters: dict | None = None  # the filters the answer's search applied (the reader's, or a period's)
    # The retrieved candidates in fused order, with each retriever's rank and score: for traces
    # (rag.answer.explain), not part of ``to_json``.
    ranking: list[dict] | None = None
    refusal_kind: str | None = None  # for a refusal, one of REFUSAL_KINDS
    # What kind of answer (rag.answer.overview): "answer" (a fact), "summary", "comparison", "digest".
    kind: str = "answer"
    choices: list[str] | None = None  # a summary request naming no one article: the doc ids offered
    route: dict | None = None  # why the question took the route it did (for --explain)
    # A summary's, comparison's or digest's points: {"label": article or side ("" in a summary),
    # "text": the point, "cites": [n, …]} — the answer's bullets, for clients that render their own.
    points: list[dict] | None = None
    more: int = 0  # a digest: articles beyond this page ("show more" lists them)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "citations": [{k: v for k, v in asdict(c).items() if c.page or k not in ("page", "page_end")}
                          for c in self.citations],  # pages only for a paged source, as in contexts
            "contexts": [
                {"doc_id": p.doc_id, "chunk_id": p.chunk_id, "text": p.text, "score": round(p.score, 6),
                 "title": p.title, "date": p.date, "section": p.section, "source": public_source(p.source),
                 "start": p.start, "end": p.end, **({"shown": p.shown} if p.shown else {}),
                 **({"page": p.page, "page_end": p.page_end or p.page} if p.page else {}),
                 **({"ocr": True} if p.ocr else {})}
                for p in self.contexts
            ],
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "llm": self.llm,
            "kind": self.kind,
            **({"choices": self.choices} if self.choices else {}),
            **({"points": self.points} if self.points else {}),
            **({"more": self.more} if self.more else {}),
            **({"prompt_tokens": self.prompt_tokens} if self.prompt_tokens else {}),
            **({"rewritten_question": self.rewritten_question} if self.rewritten_question else {}),
            **({"filters": self.filters} if self.filters else {}),
            **({"timeframe": self.timeframe} if self.timeframe else {}),
            **({"refusal_kind": self.refusal_kind} if self.refused and self.refusal_kind else {}),
        }


def public_source(source: str) -> str:
    """How a passage's source is shown outside the server: a URL (credentials redacted) or the
    file's name — never the server's path to it."""
    from pathlib import PurePath

    from rag.redact import redact_text

    if "://" in source:
        return redact_text(source)
    return PurePath(source).name
