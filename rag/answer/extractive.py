"""The ``extractive`` answerer: no generative model, the best-matching sentences, cited.

Instant, deterministic and never inventive — the baseline for evaluation, the answerer on
machines that cannot run a model, and the fallback when the configured LLM fails. A sentence
is scored by the question terms it shares (rarer terms weigh more, across the given passages),
with a small preference for higher-ranked passages. Fewer than two shared terms, or under a
third of the question's weight: the articles don't say.
"""

from __future__ import annotations

from rag.answer.citations import content_terms, rarity_weights, split_sentences
from rag.answer.prompt import REFUSAL
from rag.schema import Passage


def extractive_answer(question: str, passages: list[Passage], max_sentences: int = 2) -> str:
    question_terms = content_terms(question)
    if not question_terms or not passages:
        return REFUSAL
    sentences = [(n, s, content_terms(s)) for n, p in enumerate(passages, 1) for s in split_sentences(p.text)]
    weight = rarity_weights(question_terms, [terms for _, _, terms in sentences])
    total = sum(weight.values())
    scored = []
    for n, sentence, terms in sentences:
        shared = question_terms & terms
        score = sum(weight[t] for t in shared)
        if len(shared) >= 2 and score >= total / 3:
            scored.append((score * (1 - 0.05 * (n - 1)), n, sentence))
    if not scored:
        return REFUSAL
    best = sorted(scored, reverse=True)[:max_sentences]
    return " ".join(f"{sentence.rstrip()} [{n}]" for _, n, sentence in best)
