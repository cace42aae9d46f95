"""Checking what the model wrote against the passages it was given.

Small local models cite unreliably and sometimes invent. After generation, each answer sentence
is checked, judge-free, against the passages:

- ``[n]`` markers are parsed; a marker that points at no passage is removed, never shown.
- A sentence's *support* by a passage is the share of its content words (stemmed, stop words
  and question words aside) that the passage contains. A sentence with no valid marker, or whose
  marker's passage does not support it, is re-pointed at the passage that supports it best.
- Every number and name in a sentence must be *grounded* (``grounded``): found in a passage the
  sentence cites, inside a sentence of that passage that is about the question (shares a content
  word with it, or its neighbours share two) or that says what the answer says around it. A fact
  found only in an unrelated sentence is how a small model stitches ("Over 100 executives signed"
  becoming "the model has 100 parameters"). A number answering "how many X" must stand next to X.
  A name the question gives but no passage holds is excused only when the sentence brings a
  grounded fact of its own; otherwise it is the question's subject pinned on another's claim.
  A fact grounded in a second passage adds that passage to the sentence's citations (answers that
  need two articles).
- A sentence with an ungrounded fact, or whose supporting passage shares no term with the
  question, is *unsupported* and dropped; if nothing supported is left, the answer is a refusal.
- The answer must be of the question's kind (``expected_kinds``): "when" needs a date, "how
  many/much" a number, "how long" a duration, "which agency/publication/…" a name that the question
  does not already give. An answer that is not (the model answered a neighbouring question) is
  refused by ``rag.answer.pipeline``.
- Replies that say the passages do not answer are recognised as refusals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
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
    support: float = 0.0  # share of its new words found in its best passage
    reason: str = ""  # why it was dropped (for `rag ask --explain`); "" when kept


TRAILING_MARKERS = re.compile(r"([.!?])((?:\s*\[[^\]]*\d[^\]]*\])+)")


ABBREVIATION = re.compile(r"(?:^|\s)(?:No|Nos|Sec|Secs|Art|Inc|Corp|Co|Ltd|Mr|Mrs|Ms|Dr|St|Gen|Gov|Sen|Rep|"
                          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|v|vs|e\.g|i\.e|U\.S|[A-Z])\.$")


def split_sentences(text: str) -> list[str]:
    """Sentences, each keeping the markers written after it ("It fell. [1] Then…" -> "It fell [1].").
    "Public Act No. 22-15" and "U.S. Code" stay whole."""
    text = TRAILING_MARKERS.sub(r"\2\1", " ".join(text.split()))
    sentences: list[str] = []
    for piece in SENTENCE_END.split(text):
        if sentences and ABBREVIATION.search(sentences[-1]):
            sentences[-1] += " " + piece
        elif piece.strip():
            sentences.append(piece)
    return sentences


def is_refusal(text: str) -> bool:
    return bool(REFUSAL_PATTERNS.search(text))


_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
_TENS = ["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_NAMES = {name: str(n) for n, name in enumerate(_UNITS)} | {name: str(10 * n) for n, name in enumerate(_TENS, 3)}


def _normal_word(word: str) -> str:
    word = word.lower().replace("’", "'").removesuffix("'s").strip("'-.,")
    if word in NUMBER_NAMES:  # statutes write "sixty (60) days", answers "60 days"
        return NUMBER_NAMES[word]
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


def rarity_weights(question_terms: set[str], term_sets: list[set[str]]) -> dict[str, float]:
    """Each question term's weight over these sentences: rarer terms weigh more (an IDF)."""
    return {t: math.log(1 + len(term_sets) / (1 + sum(t in ts for ts in term_sets))) for t in question_terms}


def facts(sentence: str) -> set[str]:
    """The numbers and capitalised names in ``sentence``, normalised (sentence-initial words aside:
    they are capitalised anyway)."""
    found = set()
    for i, word in enumerate(WORD.findall(sentence)):
        is_number = word[0].isdigit()
        is_name = word[0].isupper() and i > 0 and word.lower() not in STOPWORDS
        if (is_number or is_name) and (term := _normal_word(word)):
            found.add(term)
    return found


@dataclass
class _Sentence:
    terms: set[str]  # every word and number
    content: set[str]  # content words


AUTHORSHIP = re.compile(r"\b(who (wrote|authored|penned)|written by|author|byline|writer)\b", re.IGNORECASE)


def _sentences_of(passage: Passage, with_author: bool = False) -> list[_Sentence]:
    """A passage's sentences, plus one for its article's title and date (facts such as a report's
    year or issuer often live only there) — and its author, only for questions about authorship:
    a byline must not answer "who is the CEO?"."""
    from rag.ingest.chunk import readable_date

    author = passage.author if with_author else ""
    label = f"{passage.title} {author} {readable_date(passage.date) if passage.date else ''}"
    return [_Sentence(all_terms(s), content_terms(s)) for s in [label, *split_sentences(passage.text)]]


def _window(sentences: list[_Sentence], i: int) -> list[_Sentence]:
    """Sentence ``i`` and its neighbours in the passage (the title line, at 0, is nobody's neighbour)."""
    return sentences[i:i + 1] if i == 0 else sentences[max(1, i - 1): i + 2]


def _windows(terms: set[str], sentences: list[_Sentence]) -> Iterator[tuple[_Sentence, set[str]]]:
    """Each sentence holding one of ``terms``, with the content words of it and its neighbours."""
    for i, sentence in enumerate(sentences):
        if terms & sentence.terms:
            yield sentence, set().union(*(s.content for s in _window(sentences, i)))


def grounded(fact: str, sentences: list[_Sentence], question_terms: set[str], question_all: set[str],
             claim_terms: set[str]) -> bool:
    """Is ``fact`` in one of these sentences, where that sentence is about the question — it shares
    a content word with it, or its neighbours share two (questions are paraphrased, and a name is
    often introduced a sentence before what is said of it) — or says what the answer says around
    the fact (at least half of the answer sentence's own words)? A fact the question itself gives
    only needs to be there."""
    claim = claim_terms - {fact}
    for sentence, window in _windows({fact}, sentences):
        if fact in question_all or (sentence.content - {fact}) & question_terms:
            return True
        if len((window - {fact}) & question_terms) >= 2:
            return True
        if claim and len(sentence.content & claim) * 2 >= len(claim):
            return True
    return False


HOW_MANY = re.compile(r"\bhow (?:many|much)\b(.*)", re.I)
_WH = r"(?:(?:on|in|by|at|above|below|under|from|to|for|with|during|after|before)\s+)?(?:what|which|when|who|whom|whose|where|why|how)\b"
COMPOUND = re.compile(rf"(?:[,;?]\s*(?:and\s+)?|\s+and\s+)(?={_WH})", re.IGNORECASE)


def question_parts(question: str) -> list[str]:
    """The questions inside a compound one ("Which memo was it, and when was it signed?"), or
    ``[]`` for a simple question. Each part is retrieved for on its own, so the article that
    answers the second half competes too."""
    parts = [p.strip(" ,;?") for p in COMPOUND.split(question)]
    parts = [p for p in parts if len(p.split()) >= 3]
    return parts if len(parts) > 1 else []


def counted_terms(question: str) -> list[set[str]]:
    """What a "how many/much" question counts, one set per part of a compound question: the words
    after it up to the next stop word ("how many separate AI bills had …" -> separ, ai, bill;
    "how much in damages can …" -> damag).
    Nothing when part of a compound question asks something else: a number in the answer may
    answer that part ("What order number was it, and how many days did it allow?")."""
    counts = [_counted(part) for part in question_parts(question) or [question]]
    return counts if all(counts) else []


def _counted(question: str) -> set[str]:
    match = HOW_MANY.search(question)
    if not match:
        return set()
    words = WORD.findall(match.group(1))
    while words and words[0].lower() in STOPWORDS:
        words.pop(0)
    phrase = []
    for word in words[:5]:
        if word.lower() in STOPWORDS:
            break
        phrase.append(word)
    return {_normal_word(w) for w in phrase if len(w) > 2} - {""}


def counts_the_right_thing(numbers: set[str], counted: list[set[str]], sentences: list[_Sentence]) -> bool:
    """Does one of ``numbers`` stand in (or next to) a sentence that names what one part of the
    question counts — half its words, when it takes four or more ("how much CHIPS Act grant
    funding" is not answered by "$40 billion investment in memory chip manufacturing")?"""
    return any(len(window & terms) >= max(1, len(terms) // 2)
               for _sentence, window in _windows(numbers, sentences) for terms in counted)


def stands_in_question_context(names: set[str], question_terms: set[str], sentences: list[_Sentence]) -> bool:
    """Is one of ``names`` in (or next to) a sentence that shares two of the question's words? The
    name that answers "which X did Y?" sits beside Y, not beside any mention of the topic."""
    return any(len((window - names) & question_terms) >= 2 for _sentence, window in _windows(names, sentences))


QUESTION_KINDS = [
    # "When did/was …" asks for a date; "When GAO studied …, what did …" does not.
    ("date", re.compile(r"\b(when (did|does|do|is|was|were|will|would|has|had|have|can|could|should|must|are)|"
                        r"(what|which) (dates?|days?|years?|months?)|by what (date|time)|since when)\b", re.I)),
    ("duration", re.compile(r"\bhow (long|often|soon)\b", re.I)),
    # "What share …", and "What tariff rate …" / "What total dollar amount …" too.
    ("number", re.compile(r"\b(how (many|much|large|big|high|low|far)|by how much|what (?:(?!(?:did|does|do|is|was|"
                          r"were|are|has|had|have)\b)\w+ ){0,2}(share|percentage|percent|proportion|fraction|number|"
                          r"amount|sum|price|cost|rate|portion)|how many)\b", re.I)),
    # "Which agency …", and with up to two words between: "which White House official", "which
    # youth-development program", "which two AI developers" (each asks for a proper name).
    ("name", re.compile(r"\b(which|what) (?:(?!(?:did|does|do|is|was|were|are|has|had|have)\b)[\w-]+ ){0,2}"
                        r"(news ?\w*|publication|outlet|newspaper|magazine|agency|agencies|company|"
                        r"companies|firm|firms|organi[sz]ations?|country|countries|state|states|administration|official|"
                        r"officials|regions?|city|cities|subcommittee|committee|department|program|programs|bank|"
                        r"university|court|body|bodies|developers|institute|council|initiative)\b", re.I)),
]
NUMBER_WORDS = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|thousand|million|billion|trillion|half|quarter|third|dozen|dozens|hundreds|"
    r"thousands|millions|billions|single|several|few)\b", re.I)
DURATION_UNITS = re.compile(r"\b(seconds?|minutes?|hours?|days?|weeks?|months?|quarters?|years?|decades?|annual(ly)?|"
                            r"daily|weekly|monthly|yearly|biennial(ly)?)\b", re.I)
MONTHS = re.compile(r"\b([Jj]an(uary)?|[Ff]eb(ruary)?|[Mm]arch|[Aa]pr(il)?|May|[Jj]une?|[Jj]uly?|[Aa]ug(ust)?|"
                    r"[Ss]ep(t(ember)?)?|[Oo]ct(ober)?|[Nn]ov(ember)?|[Dd]ec(ember)?)\b")  # "may" the verb is no date
_YEAR = r"\b(1[89]\d\d|20\d\d)s?\b(?![/\d])"
YEAR = re.compile(r"(?<![/\d])" + _YEAR)  # not Directive 2002/58/EC
# A year used as a date ("in 2023", "March 5, 2024"): no answer to "how many".
DATED_YEAR = re.compile(r"\b(in|since|by|until|from|during|before|after|through|fiscal year|FY)\s+((early|mid|late)[- ])?"
                        + _YEAR + "|" + MONTHS.pattern + r"[\s\d,]*" + _YEAR, re.I)
DAY_OR_TIME = re.compile(r"\b(\d{1,2}(:\d\d)?\s*(a\.?m\.?|p\.?m\.?)|noon|midnight|o'clock|mondays?|tuesdays?|"
                         r"wednesdays?|thursdays?|fridays?|saturdays?|sundays?|spring|summer|autumn|fall|winter|"
                         r"today|yesterday|tomorrow)(?!\w)", re.I)


def expected_kinds(question: str) -> list[str]:
    """What a correct answer must contain, from the question's wh-words: date, duration, number, name."""
    return [kind for kind, pattern in QUESTION_KINDS if pattern.search(question)]


def answers_kind(kind: str, text: str, question: str) -> bool:
    """Does answer ``text`` contain something of this kind (see ``expected_kinds``)?"""
    if kind == "date":
        return bool(YEAR.search(text) or MONTHS.search(text) or DAY_OR_TIME.search(text)
                    or re.search(r"\d{1,2}/\d{1,2}/\d{2,4}", text))
    if kind == "number":
        # A year is not an amount ("How many staff?" – "In 2023."), nor is a number the question
        # already gives ("How many parameters does Mythos 5 have?" – "Mythos 5 is risky.").
        given = {n.rstrip(".,") for n in re.findall(r"\d[\d,.]*", question)}
        amounts = [n for n in re.findall(r"\d[\d,.]*", DATED_YEAR.sub(" ", text)) if n.rstrip(".,") not in given]
        return bool(amounts or NUMBER_WORDS.search(text))
    if kind == "duration":
        return bool(re.search(r"\d", text) or DURATION_UNITS.search(text))
    if kind == "name":  # a capitalised word the question does not already give (any position)
        asked = all_terms(question)
        return any(word[0].isupper() and word.lower() not in STOPWORDS and _normal_word(word) not in asked
                   and _normal_word(word.split("-")[0]) not in asked  # "AI-based" names nothing new
                   for word in WORD.findall(text))
    return True


def answers_every_part(question: str, text: str) -> bool:
    """A compound question whose parts each ask for a figure ("What order number was it, and how many
    days did it allow?") needs as many figures the question does not give: one is half an answer."""
    figures = [p for p in question_parts(question) if {"number", "date", "duration"} & set(expected_kinds(p))]
    if len(figures) < 2:
        return True
    given = {n.rstrip(".,") for n in re.findall(r"\d[\d,.]*", question)}
    found = {n.rstrip(".,") for n in re.findall(r"\d[\d,.]*", text)} - given
    found |= {w.lower() for w in NUMBER_WORDS.findall(text)}
    return len(found) >= len(figures)


def holds_question_years(question: str, shown: list[Passage], cited: list[Passage]) -> bool:
    """Do the passages hold the years the question names — each in some passage shown, and one in
    a passage cited (text, title or date)? A figure for "the 2017 proposal" from passages that
    never say 2017 is a neighbouring figure, not the answer."""
    years = {m.group(1) for m in YEAR.finditer(question)}
    if not years:
        return True
    in_shown, in_cited = (" ".join(f"{p.title} {p.date} {p.text}" for p in ps) for ps in (shown, cited))
    return all(year in in_shown for year in years) and any(year in in_cited for year in years)


def support(sentence_terms: set[str], passage_terms: set[str]) -> float:
    if not sentence_terms:
        return 0.0
    return len(sentence_terms & passage_terms) / len(sentence_terms)


def check_answer(text: str, passages: list[Passage], question: str, *,
                 min_support: float = 0.5) -> list[CheckedSentence]:
    """Split the model's reply into sentences with verified citations (see module docstring)."""
    # A byline answers "who wrote the article?": a passage with a known author carries those words.
    bylines = [" wrote written author article" if p.author else "" for p in passages]
    passage_terms = [content_terms(f"{p.title} {p.author} {p.text}{byline}") for p, byline in zip(passages, bylines, strict=True)]
    question_terms = content_terms(question)
    question_all = all_terms(question)
    question_names = facts(question)
    counted = counted_terms(question)
    asks_name = "name" in expected_kinds(question)
    sentences_of = [_sentences_of(p, with_author=bool(AUTHORSHIP.search(question))) for p in passages]

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
            checked.append(CheckedSentence(sentence, [], False, 0.0, "adds nothing to the question"))
            continue
        scores = [support(terms, pt) for pt in passage_terms]
        reason = ""
        good = [n for n in cites if scores[n - 1] >= min_support]
        if not good and scores:
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= min_support:
                good = [best + 1]
        # The supporting passage must be about the question too: sharing no term with it means
        # the sentence stitched passage words onto the question ("the API price is billions").
        anchored = [n for n in good if not question_terms or question_terms & passage_terms[n - 1]]
        anchored = _add_second_source(content_terms(sentence), anchored, passage_terms, question_terms)
        # The question's own names count wherever they stand ("OpenAI responded …" opens a sentence).
        sentence_facts = facts(sentence) | (all_terms(sentence) & question_names)
        cites, ungrounded = _ground_facts(sentence_facts, terms - sentence_facts, anchored, sentences_of,
                                          passage_terms, question_terms, question_all)
        supported = bool(anchored) and not ungrounded
        if not good:
            reason = f"no passage holds half of its words (best {max(scores, default=0):.2f})"
        elif not anchored:
            reason = "its passage shares no word with the question (stitched)"
        elif ungrounded:
            reason = f"not in the passage it cites: {', '.join(sorted(ungrounded)[:5])}"
        # "How many parameters?" answered with a number that counts executives is not an answer.
        numbers = {f for f in sentence_facts if f[0].isdigit()}
        if supported and counted and numbers - question_all and not any(
                counts_the_right_thing(numbers - question_all, counted, sentences_of[n - 1]) for n in cites):
            supported, reason = False, "its number does not stand beside what the question counts"
        # "Which publication reported X?" answered with a publication named beside something else.
        names = {f for f in sentence_facts if not f[0].isdigit()} - question_all
        if supported and asks_name and names and not any(
                stands_in_question_context(names, question_terms, sentences_of[n - 1]) for n in cites):
            supported, reason = False, "the name it gives stands beside something else in the passage"
        best = max((scores[n - 1] for n in (cites or good)), default=max(scores, default=0.0))
        checked.append(CheckedSentence(sentence, cites or good, supported, round(best, 2), reason))
    return checked


def _add_second_source(terms: set[str], cites: list[int], passage_terms: list[set[str]],
                       question_terms: set[str]) -> list[int]:
    """A sentence that joins two articles ("X did A, and Y did B") cites the second one too: another
    passage about the question that holds most of what the cited one lacks."""
    if not cites:
        return cites
    uncovered = terms - set().union(*(passage_terms[n - 1] for n in cites))
    if len(uncovered) < 2:
        return cites
    for n in range(1, len(passage_terms) + 1):
        if n not in cites and question_terms & passage_terms[n - 1] \
                and len(uncovered & passage_terms[n - 1]) * 2 >= len(uncovered):
            return [*cites, n]
    return cites


def _ground_facts(sentence_facts: set[str], claim_terms: set[str], cites: list[int],
                  sentences_of: list[list[_Sentence]],
                  passage_terms: list[set[str]], question_terms: set[str],
                  question_all: set[str]) -> tuple[list[int], set[str]]:
    """Each fact must be grounded in a cited passage, or in another passage about the question
    (which is then cited too). A name the question gives may be missing from the passages (the
    question names the source, "according to the White House fact sheet", or paraphrases) if the
    sentence brings a grounded fact of its own; otherwise the answer pins the question's subject on
    someone else's claim ("OpenAI responded by disabling access" from a passage about Anthropic).
    (Checking the whole cited article instead was measured and let that case through: articles
    mention their competitors.) Returns the citations and the facts grounded nowhere."""
    if not cites:
        return cites, sentence_facts
    cites = list(cites)
    missing, excusable = set(), set()
    for fact in sentence_facts:
        if any(grounded(fact, sentences_of[n - 1], question_terms, question_all, claim_terms) for n in cites):
            continue
        others = [n for n in range(1, len(sentences_of) + 1) if n not in cites
                  and question_terms & passage_terms[n - 1]
                  and grounded(fact, sentences_of[n - 1], question_terms, question_all, claim_terms)]
        if others:
            cites.append(others[0])
        elif fact in question_all:
            excusable.add(fact)
        else:
            missing.add(fact)
    # With a grounded fact of its own, the sentence answers about the passage, and the question's
    # name was the asker's wording ("London" for "the UK"); with none, it is the name pinned on
    # someone else's claim.
    own = {f for f in sentence_facts - question_all - missing if f[0].isdigit() or len(f) > 2}  # not "AI"
    if excusable and not own:
        missing |= excusable
    return cites, missing


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
