"""Between retrieve and answer: which sentences of the retrieved passages the model reads.

A small model answers better from the few sentences that bear on the question than from four
whole chunks, and every prompt token costs ~12 ms of prefill on 2 cores. So instead of the top
passages whole, the prompt gets the best *sentences* of more candidates:

    candidates (hybrid top 10) ─► sentences ─► score (meaning + shared terms + rank) ─► best within budget
                                                                                  │
    passages shown to the model, each as its chosen sentences in their own order ◄┘

A sentence's score is its cosine similarity to the question (the embedding model the index already
uses), plus the weighted share of the question's content words it holds (rarer words weigh more:
names and numbers the embedding misses), plus a small bonus for its passage's retrieval rank. The
chosen sentences go back into their passages (``Passage.shown``); citations and the reader still
see the whole passage, so nothing is taken out of context.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

from langchain_core.embeddings import Embeddings

from rag.answer.citations import content_terms, rarity_weights, split_sentences
from rag.schema import Passage

LEXICAL_WEIGHT = 0.35  # how much the shared-terms share adds to the cosine similarity
RANK_WEIGHT = 0.05  # the best-ranked passage's sentences get this much more than the last one's
TABLE_ROW = re.compile(r"\S \| \S|\S \| $|^ ?\| \S")  # "cell | cell": a row of a table
_BLOCKS = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•]|\(?[0-9ivx]+[.)]|\([a-z]\))\s)")


@dataclass
class _Candidate:
    passage: int  # index into the candidates
    order: int  # position in its passage
    text: str
    score: float = 0.0
    header: str = ""  # a table row's header row: shown with it, or the row's figures mean nothing


class SentenceVectors:
    """Sentence embeddings, remembered: related questions bring back the same passages, and
    embedding their sentences is most of this stage's cost (~15 ms a sentence on 2 cores).
    Bounded (least recently used out first) and safe to share between the app's threads."""

    def __init__(self, embeddings: Embeddings, max_items: int = 20_000) -> None:
        self.embeddings = embeddings
        self.max_items = max_items
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)

    def sentences(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in vectors))
        if missing:  # embedded outside the lock: another question may embed meanwhile
            vectors.update(zip(missing, self.embeddings.embed_documents(missing), strict=True))
        with self._lock:
            for text in texts:
                self._cache[text] = vectors[text]
                self._cache.move_to_end(text)
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        return [vectors[t] for t in texts]


def passage_sentences(text: str) -> list[str]:
    """Sentences of a passage; list items and paragraphs never run into each other, and each row
    of a table (``cell | cell`` lines, ``rag.ingest.tables``) is a sentence of its own."""
    return [sentence for sentence, _header in passage_units(text)]


def passage_units(text: str) -> list[tuple[str, str]]:
    """(sentence, the header row of the table it is a row of — "" for prose and for the header itself)."""
    units: list[tuple[str, str]] = []
    for block in _BLOCKS.split(text):
        lines = block.strip().split("\n")
        if len(lines) >= 2 and all(TABLE_ROW.search(line) for line in lines):
            header = " ".join(lines[0].split())
            units += [(header, "")] + [(" ".join(line.split()), header) for line in lines[1:]]
        else:
            units += [(sentence, "") for sentence in split_sentences(block)]
    return units


def estimate_tokens(text: str) -> int:
    """Rough LLM token count (about 1.3 per word): good enough for a prompt budget, no tokenizer."""
    return int(len(text.split()) * 1.3) + 2


def focus(question: str, candidates: list[Passage], embeddings: SentenceVectors | None, *, budget_tokens: int,
          max_passages: int, parts: list[str] = ()) -> list[Passage]:
    """The candidates that get a say, each with ``shown`` set to its chosen sentences, in order of
    their best sentence. Without an embedding model, sentences are scored by shared terms alone.
    For a compound question, a sentence's similarity is the best over the question and its
    ``parts``, so each half's answer can win a place."""
    sentences = [_Candidate(i, j, s, header=h) for i, p in enumerate(candidates)
                 for j, (s, h) in enumerate(passage_units(p.text))]
    if not sentences:
        return []
    _score(question, sentences, candidates, embeddings, list(parts))

    chosen: dict[int, list[_Candidate]] = {}
    budget = budget_tokens
    for sentence in sorted(sentences, key=lambda s: s.score, reverse=True):
        cost = estimate_tokens(sentence.text)
        if cost > budget or (sentence.passage not in chosen and len(chosen) >= max_passages):
            continue
        chosen.setdefault(sentence.passage, []).append(sentence)
        budget -= cost
        if budget < 12:
            break
    shown = []
    for index, picked in chosen.items():  # insertion order: by each passage's best sentence
        headers = {s.header for s in picked if s.header} - {s.text for s in picked}
        picked += [s for s in sentences if s.passage == index and s.text in headers and not s.header][:len(headers)]
        picked.sort(key=lambda s: s.order)
        pieces = [picked[0].text]
        for before, after in zip(picked, picked[1:], strict=False):
            table = TABLE_ROW.search(before.text) and TABLE_ROW.search(after.text)  # rows stay one per line
            gap = "\n" if table and after.order == before.order + 1 else "\n… " if table else \
                " " if after.order == before.order + 1 else " … "
            pieces.append(gap + after.text)
        shown.append(replace(candidates[index], shown="".join(pieces)))
    return shown


def _score(question: str, sentences: list[_Candidate], candidates: list[Passage], embeddings: SentenceVectors | None,
           parts: list[str]) -> None:
    question_terms = content_terms(question)
    terms = [content_terms(s.text) for s in sentences]
    weight = rarity_weights(question_terms, terms)  # rarer terms weigh more, as in the extractive answerer
    total = sum(weight.values()) or 1.0
    # Without sentence vectors, a sentence inherits its passage's similarity (0 if only BM25 saw it).
    similarity = [candidates[s.passage].dense_score or 0.0 for s in sentences]
    if embeddings is not None:
        queries = [embeddings.query(q) for q in [question, *parts]]
        vectors = embeddings.sentences([s.text for s in sentences])
        similarity = [max(sum(a * b for a, b in zip(query, v, strict=True)) for query in queries) for v in vectors]
    for sentence, sentence_terms, cosine in zip(sentences, terms, similarity, strict=True):
        lexical = sum(weight[t] for t in question_terms & sentence_terms) / total
        rank_bonus = RANK_WEIGHT * (1 - sentence.passage / max(1, len(candidates)))
        sentence.score = cosine + LEXICAL_WEIGHT * lexical + rank_bonus
