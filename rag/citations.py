"""Checking what the model wrote against the passages it was given.

Small local models cite unreliably and sometimes invent. After generation, each answer sentence
is checked, judge-free, against the passages:

- ``[n]`` markers are parsed; a marker that points at no passage is removed, never shown.
- A sentence's *support* by a passage is the share of its content words (stemmed, stop words
  and question words aside) that the passage contains. A sentence with no valid marker, or whose
  marker's passage does not support it, is re-pointed at the passage that supports it best.
- A sentence that brings in a number or a name found in no passage (nor the question), or whose
  supporting passage shares no term with the question, is *unsupported* and dropped; if nothing
  supported is left, the answer becomes a refusal.
- Replies that say the passages do not answer are recognised as refusals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import Stemmer

from rag.schema import Passage

_STEMMER = Stemmer.Stemmer("english")
MARKER = re.compile(r"\s*\[(?:passages?\s*)?(\d+(?:\s*(?:,|and|-|–)\s*\d+)*)\]", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"“(\[]?[A-Z0-9])")
WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d[\d,.]*\d|\d")
REFUSAL_PATTERNS = re.compile(
    r"(articles?|passages?|text|context|sources?|documents?)\s+(do|does|did)\s*(n['’]t|not)\s+"
    r"(say|mention|specify|state|provide|contain|include|give|address|discuss|answer|indicate|cover)"
    r"|\b(is|are|was|were)\s+not\s+(mentioned|specified|stated|provided|given|available|included|disclosed)"
    r"|\bno (information|mention|details?|data)\b|\bnot enough information\b"
    r"|\b(cannot|can['’]t|unable to)\s+(be\s+)?(determine|determined|answer|find|found|say|tell)",
    re.IGNORECASE,
)
STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "according", "said", "says", "article", "articles", "passage", "passages", "one", "two", "per", "via", "within", "without", "upon", "however"]
)


@dataclass
class CheckedSentence:
    text: str  # without markers
    cites: list[int]  # 1-based passage numbers, verified
    supported: bool


TRAILING_MARKERS = re.compile(r"([.!?])((?:\s*\[[^\]]*\d[^\]]*\])+)")


def split_sentences(text: str) -> list[str]:
    """Sentences, each keeping the markers written after it ("It fell. [1] Then…" -> "It fell [1].")."""
    text = TRAILING_MARKERS.sub(r"\2\1", " ".join(text.split()))
    return [s for s in SENTENCE_END.split(text) if s.strip()]


def is_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERNS.search(text))


def _normal_word(word: str) -> str:
    word = word.lower().replace("’", "'").removesuffix("'s").strip("'-.,")
    return _STEMMER.stemWord(word.replace(",", "")) if word else ""


def all_terms(text: str) -> set[str]:
    """Every word and number of ``text``, normalised (for "does this fact appear anywhere?")."""
    return {t for t in (_normal_word(w) for w in WORD.findall(text)) if t}


def content_terms(text: str) -> set[str]:
    """The words that carry meaning: no stop words, no one- or two-letter words (numbers kept)."""
    terms = set()
    for word in WORD.findall(text):
        lowered = word.lower()
        if lowered in STOPWORDS or (len(lowered) <= 2 and not lowered.isdigit()):
            continue
        if term := _normal_word(word):
            terms.add(term)
    return terms


def novel_facts(sentence: str, known: set[str]) -> list[str]:
    """Numbers and capitalised names in ``sentence`` that no passage (nor the question) contains."""
    words = WORD.findall(sentence)
    novel = []
    for i, word in enumerate(words):
        is_number = word[0].isdigit()
        is_name = word[0].isupper() and i > 0 and word.lower() not in STOPWORDS
        if not (is_number or is_name):
            continue
        term = _normal_word(word)
        if term and term not in known:
            novel.append(word)
    return novel


def support(sentence_terms: set[str], passage_terms: set[str]) -> float:
    if not sentence_terms:
        return 0.0
    return len(sentence_terms & passage_terms) / len(sentence_terms)


def check_answer(text: str, passages: list[Passage], question: str, *,
                 min_support: float = 0.5) -> list[CheckedSentence]:
    """Split the model's reply into sentences with verified citations (see module docstring)."""
    # A byline answers "who wrote the article?": a passage with a known author carries those words.
    # A byline answers "who wrote the article?": a passage with a known author carries those words.
    bylines = [" wrote written author article" if p.author else "" for p in passages]
    passage_terms = [content_terms(f"{p.title} {p.author} {p.text}{byline}") for p, byline in zip(passages, bylines, strict=True)]
    question_terms = content_terms(question)
    known = all_terms(question + " " + " ".join(f"{p.title} {p.author} {p.text}" for p in passages))
    checked: list[CheckedSentence] = []
    for raw in split_sentences(text):
        cites = [n for n in _marker_numbers(raw) if 1 <= n <= len(passages)]
        sentence = MARKER.sub("", raw).strip()
        if not sentence or not re.search(r"\w", sentence):
            # A marker standing alone after the sentence it belongs to.
            if checked and cites:
                checked[-1].cites = _unique(checked[-1].cites + cites)
            continue
        terms = content_terms(sentence) - question_terms
        if not terms:  # restates the question and adds nothing ("The CEO of X is X.")
            checked.append(CheckedSentence(sentence, [], False))
            continue
        scores = [support(terms, pt) for pt in passage_terms]
        good = [n for n in cites if scores[n - 1] >= min_support]
        if not good and scores:
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= min_support:
                good = [best + 1]
        # The supporting passage must be about the question too: sharing no term with it means
        # the sentence stitched passage words onto the question ("the API price is billions").
        anchored = [n for n in good if not question_terms or question_terms & passage_terms[n - 1]]
        supported = bool(anchored) and not novel_facts(sentence, known)
        good = anchored or good
        checked.append(CheckedSentence(sentence, good, supported))
    return checked


def _marker_numbers(text: str) -> list[int]:
    numbers: list[int] = []
    for group in MARKER.findall(text):
        parts = re.split(r"\s*(?:,|and)\s*", group)
        for part in parts:
            if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
                low, high = (int(x) for x in re.split(r"[-–]", part))
                numbers.extend(range(low, min(high, low + 10) + 1))
            elif part.strip().isdigit():
                numbers.append(int(part))
    return _unique(numbers)


def _unique(items: list[int]) -> list[int]:
    return list(dict.fromkeys(items))
