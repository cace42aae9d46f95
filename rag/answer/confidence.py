"""How sure the model was that the passages do not answer — read from its own token probabilities.

A small model's free-text "The articles don't say." is a coin it tosses at the first two tokens:
it refuses questions whose answer is in the top passage, and answers near-miss questions it should
refuse. llama.cpp reports, for every generated token, the probabilities of the five likeliest
tokens, so the refusal's probability can be read off the first steps of the reply instead:

    P(refuse) = P(first token "The") × P(second token "articles"/"passages"/… | "The")

Along the path the model took, the alternatives it did not take are visible, so this is known
whether it refused or answered. ``rag.answer.pipeline`` uses it both ways (thresholds in the settings,
chosen by measurement on the development sets, see README "Quality"):

- the model answered, but P(refuse) was high: the answer is refused (a near miss, guessed at);
- the model refused, but P(refuse) was low: it is asked again with its likeliest *answering*
  start written in for it (the prompt is cached, so this costs only the new answer's tokens),
  and that answer faces the same checker as any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFUSAL_FIRST = {"The"}
REFUSAL_SECOND = {" articles", " article", " passages", " passage", " provided", " text"}


@dataclass
class TokenChoice:
    """One generated token and the likeliest alternatives at that step (log-probabilities)."""

    token: str
    logprob: float
    top: dict[str, float]

    def p(self, token: str) -> float:
        if token == self.token:
            return math.exp(self.logprob)
        return math.exp(self.top[token]) if token in self.top else 0.0


def refusal_probability(steps: list[TokenChoice]) -> float | None:
    """P(the reply starts as a refusal), from the first two steps; None without probabilities."""
    if not steps:
        return None
    first = sum(steps[0].p(t) for t in REFUSAL_FIRST)
    if steps[0].token not in REFUSAL_FIRST or len(steps) < 2:
        # Not on the refusal path: its second step is unseen, so take its likeliest case (an upper bound).
        return first
    return first * sum(steps[1].p(t) for t in REFUSAL_SECOND)


def answering_start(steps: list[TokenChoice]) -> str | None:
    """The likeliest start of a reply that is not a refusal, for a reply that was one."""
    if len(steps) < 2 or steps[0].token not in REFUSAL_FIRST:
        return None
    options: list[tuple[float, str]] = []
    for token, logprob in steps[0].top.items():  # another first token
        if token not in REFUSAL_FIRST and token.strip():
            options.append((math.exp(logprob), token))
    p_first = steps[0].p(steps[0].token)
    for token, logprob in steps[1].top.items():  # "The" followed by something else
        if token not in REFUSAL_SECOND and token.strip():
            options.append((p_first * math.exp(logprob), steps[0].token + token))
    return max(options)[1] if options else None


def no_evidence_probability(steps: list[TokenChoice]) -> float | None:
    """P(the evidence line reads "none"), for a reply written after "Evidence:": the model's
    first token is the choice between a sentence number and none (after a bare space, the next)."""
    if not steps:
        return None
    first = steps[0]
    p_none = sum(first.p(t) for t in {first.token, *first.top} if t.strip().lower().startswith("none"))
    if first.token.isspace() and len(steps) > 1:
        second = steps[1]
        p_none += first.p(first.token) * sum(second.p(t) for t in {second.token, *second.top}
                                             if t.strip().lower().startswith("none"))
    return p_none
