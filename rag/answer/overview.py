"""Whole-article questions: "summarize the article", "how do A and B differ", "what was published on
X in March" — answered from prepared summaries and from retrieval grouped by article, not by the
single-fact pipeline (ten passages, a 300-token prompt, a checker that wants a fact).

    question ─► route: summary | comparison | digest | answer (everything else: rag.answer.pipeline)
    summary     ─► which article (its number "GAO-26-108745", "SB 1001"; its title; the one the
                   conversation is about; the only one) ─► its prepared summary (no model call),
                   else its central sentences at once while a fuller one is prepared
    comparison  ─► each side (an article, or a topic within the articles) ─► its sentences that bear
                   on the question, each cited to its own article; a side nothing covers is said so
    digest      ─► retrieval grouped by article (in the question's period) ─► one cited line per
                   article, newest first

Every point shown is an article's own sentence or a model's point that passed the checker
(``rag.answer.summary``), cited to its passage.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rag.answer.citations import content_terms
from rag.answer.context import SentenceVectors, passage_sentences
from rag.answer.retrieve import Filters, HybridRetriever, to_passage
from rag.answer.summary import article_passages, cosine, extractive_points
from rag.answer.timeframe import timeframe_of
from rag.ingest.chunk import readable_date
from rag.ingest.summaries import KeyPoint, SummaryStore
from rag.schema import Answer, Citation, Passage

KINDS = ("answer", "summary", "comparison", "digest")
DIGEST_PAGE = 8  # articles listed per digest answer
# A digest lists the articles whose best passage is this close (cosine) to the best article's, and
# at least DIGEST_FLOOR: measured on benchmarks/data/overview-questions.jsonl's digests.
DIGEST_BAND = 0.17
DIGEST_FLOOR = 0.25

_DOC_WORDS = r"(?:article|report|bill|act|order|executive order|memo|memorandum|document|piece|directive|plan|" \
             r"framework|guidance|rule|strategy|statute|law|audit|study|post|story|paper|one)"
SUMMARY_WORDS = re.compile(
    r"\b(summari[sz]e|summary|sum (?:it |this |that )?up|tl;?dr|key (?:points|takeaways|findings|provisions|messages)|"
    r"main (?:points|findings|takeaways|provisions|ideas|messages)|takeaways|gist|overview of|highlights of|"
    r"in a nutshell)\b", re.IGNORECASE)
ABOUT = re.compile(r"^\s*what(?:'s| is| was)\s+(?P<name>.+?)\s+about\s*\??\s*$", re.IGNORECASE)
# "What does SB 1001 require?" / "What does “Title” say?" — nothing after the verb: the whole article.
SAYS = re.compile(r"^\s*what (?:does|did) (?P<name>.+?) (?:say|require|do|propose|find|cover|establish|recommend|"
                  r"conclude|announce)\s*\??\s*$", re.IGNORECASE)
COMPARE = re.compile(r"\b(?:compare|comparison|contrast|differ|differs|difference|differences|versus|vs\.?)\b|"
                     r"\bwhat do .+ and .+ each\b", re.IGNORECASE)
DIGEST = re.compile(
    r"\b(?:which|what|any|list(?: the| all)?|show(?: me)?(?: the| all)?)\s+(?:articles|reports|documents|pieces|stories|"
    r"publications|posts|audits|papers)\b|\bwhat (?:was|were|has been|have been|got) (?:published|written|reported|"
    r"released|announced)\b|\bwhat did (?:the )?(?:\w+ ){0,2}(?:articles|reports|documents|agencies|sources|publications|"
    r"audits) say\b",
    re.IGNORECASE)
# An article's number as policy people cite it: GAO-26-108745, SB 1001, H.R. 1234, EO 14110, M-24-10.
IDENTIFIER = re.compile(r"\b(?:[A-Z]{1,5}\.?){1,3}[\s-]?\d[\d-]{1,}\b")
SHOW_MORE = re.compile(r"^\s*(?:show|list|see|give me|and)?\s*(?:me\s+)?(?:the\s+)?(?:more|next(?: page)?|the rest|others)"
                       r"(?: articles| ones| results)?\s*[.!?]*\s*$", re.IGNORECASE)
THAT_ONE = re.compile(rf"\b(?:it|this|that|the same)\b|\b(?:this|that|the) {_DOC_WORDS}\b", re.IGNORECASE)
_ROUTE_WORDS = re.compile(
    rf"\b(?:summari[sz]e|summary|sum|up|tl;?dr|key|main|points?|takeaways?|findings?|provisions?|ideas?|messages?|gist|"
    rf"overview|highlights|of|the|a|an|this|that|please|give|me|us|short|brief|quick|what|whats|is|was|are|does|did|"
    rf"say|says|about|in|nutshell|could|can|you|would|provide|{_DOC_WORDS[3:-1]}s?)\b", re.IGNORECASE)


@dataclass
class Route:
    kind: str  # one of KINDS
    why: str  # for --explain: which wording decided it
    name: str = ""  # the article named (summary), or "" when it must come from the conversation
    sides: list[str] = field(default_factory=list)  # comparison


def route(question: str) -> Route:
    """Which kind of question this is, from its wording alone (cheap: runs on every question)."""
    q = question.strip()
    if COMPARE.search(q) and (sides := comparison_sides(q)):
        return Route("comparison", f"asks to compare: {' / '.join(sides)}", sides=sides)
    if DIGEST.search(q):
        return Route("digest", "asks which articles cover a topic")
    if SUMMARY_WORDS.search(q):
        return Route("summary", "asks for a summary or key points", name=article_name(q))
    if (m := ABOUT.match(q)) or (m := SAYS.match(q)):
        return Route("summary", "asks what an article says as a whole", name=m.group("name"))
    return Route("answer", "a question of fact")


def article_name(question: str) -> str:
    """What is left of a summary request once its asking words are gone: the article's name, or ""."""
    quoted = re.search(r"[\"“”‘’']([^\"“”‘’']{4,})[\"“”‘’']", question)
    if quoted:
        return quoted.group(1)
    rest = _ROUTE_WORDS.sub(" ", re.sub(r"[?!.,:;]", " ", question))
    return " ".join(rest.split())


_SIDES = [
    re.compile(r"\bbetween (?P<a>.+?) and (?P<b>.+?)(?:\?|$| in | on | regarding | about )", re.IGNORECASE),
    re.compile(r"\bcompare (?:how )?(?P<a>.+?) (?:with|to|and|against|versus|vs\.?) (?P<b>.+?)(?:\?|$| on | in terms of | regarding )",
               re.IGNORECASE),
    re.compile(r"\bhow (?:do|does|did) (?P<a>.+?) and (?P<b>.+?) (?:differ|compare|contrast)", re.IGNORECASE),
    re.compile(r"\bwhat do (?P<a>.+?) and (?P<b>.+?) each\b", re.IGNORECASE),
    re.compile(r"^(?P<a>.+?) (?:versus|vs\.?) (?P<b>.+?)(?:\?|$)", re.IGNORECASE),
    re.compile(r"\bhow (?:does|do|did) (?P<a>.+?) differ from (?P<b>.+?)(?:\?|$| on | in )", re.IGNORECASE),
]


def comparison_sides(question: str) -> list[str]:
    """The two things compared ("how do A and B differ" → [A, B]); [] when there are not two."""
    for pattern in _SIDES:
        if m := pattern.search(question):
            a, b = (" ".join(re.sub(r"[?!]", " ", m.group(g)).split()).rstrip(" .") for g in ("a", "b"))
            a = re.sub(r"^(?:how |what )?(?:the )?", "", a, flags=re.IGNORECASE)
            if a and b and a.lower() != b.lower():
                # "how the directive treats X and Y": the shared frame stays with both sides
                frame = re.match(r"(?P<frame>.+\b(?:treats?|handles?|regulates?|describes?|says about|views?))\s+(?P<a>.+)", a)
                if frame:
                    return [frame.group("a"), b]
                return [a, b]
    return []


# --- which article is meant ----------------------------------------------------------------------

def _normal_id(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class Resolved:
    doc_ids: list[str]  # one: found; several: say which ones and offer them; none: say so
    closest: list[str] = field(default_factory=list)  # doc ids to offer when none or several
    how: str = ""


class Catalog:
    """The indexed articles (doc_id → title, date, source), re-read when the index changes."""

    def __init__(self, list_articles: Callable[[], list[dict]], generation: Callable[[], object]) -> None:
        self._list, self._generation = list_articles, generation
        self._cached: tuple[object, dict[str, dict]] | None = None
        self._lock = threading.Lock()

    def articles(self) -> dict[str, dict]:
        generation = self._generation()
        with self._lock:
            if self._cached is None or self._cached[0] != generation:
                self._cached = (generation, {row["doc_id"]: row for row in self._list()})
            return self._cached[1]


def resolve(name: str, catalog: dict[str, dict], about: tuple[str, ...], search: Callable[[str], list[Passage]],
            min_score: float) -> Resolved:
    """The article(s) ``name`` means: by number, by title, by the conversation, by meaning."""
    if not catalog:
        return Resolved([], how="nothing is indexed")
    if ids := IDENTIFIER.findall(name):
        found = [d for d, row in catalog.items()
                 if all(_normal_id(i) in _normal_id(f"{d} {row['title']} {row.get('source', '')}") for i in ids)]
        if found:
            return Resolved(found[:1] if len(found) == 1 else [], closest=found[:5], how=f"its number {ids[0]}")
    terms = content_terms(name)
    if terms:
        scored = []
        for doc_id, row in catalog.items():
            title_terms = content_terms(f"{row['title']} {doc_id.replace('-', ' ')}")
            shared = len(terms & title_terms)
            if shared:
                scored.append((shared / len(terms), shared / max(1, len(title_terms)), doc_id))
        scored.sort(reverse=True)
        if scored and scored[0][0] >= 0.75:
            best = [s for s in scored if s[0] >= scored[0][0] - 1e-9 and s[1] >= scored[0][1] - 0.1]
            if len(best) == 1:
                return Resolved([best[0][2]], how="its title")
            return Resolved([], closest=[s[2] for s in best[:5]], how="several titles match")
    if not terms or THAT_ONE.search(name) and len(terms) <= 1:
        if len(about) == 1:
            return Resolved(list(about), how="the article the conversation is about")
        if len(catalog) == 1:
            return Resolved(list(catalog), how="the only article indexed")
        if not terms:
            return Resolved([], closest=list(about)[:5] or sorted(catalog, key=lambda d: catalog[d].get("date") or "",
                                                                      reverse=True)[:5], how="no article named")
    # By meaning: the articles whose passages are closest to the name.
    passages = search(name)
    best: dict[str, float] = {}
    for p in passages:
        best[p.doc_id] = max(best.get(p.doc_id, 0.0), p.dense_score or 0.0)
    ranked = sorted(best, key=best.get, reverse=True)
    if not ranked or best[ranked[0]] < min_score:
        return Resolved([], closest=ranked[:5], how="no article matches")
    if len(ranked) > 1 and best[ranked[1]] >= best[ranked[0]] - 0.03:
        return Resolved([], closest=ranked[:5], how="several articles are close")
    return Resolved(ranked[:1], how="the article closest in meaning")


# --- answers -----------------------------------------------------------------------------------------

def _title_line(row: dict) -> str:
    date = readable_date(row["date"]) if row.get("date") else ""
    return f"{row['title']}" + (f" ({date})" if date else "")


class Overview:
    """Answers summary, comparison and digest questions (see module docstring)."""

    def __init__(self, retriever: HybridRetriever, summaries: SummaryStore | None, catalog: Catalog,
                 vectors: SentenceVectors, min_score: float,
                 on_missing_summary: Callable[[str], None] = lambda doc_id: None) -> None:
        self.retriever, self.summaries, self.catalog = retriever, summaries, catalog
        self.vectors, self.min_score = vectors, min_score
        self.on_missing_summary = on_missing_summary  # the app prepares it in the background

    def answer(self, question: str, kind: Route, filters: Filters, about: tuple[str, ...] = (),
               page: int = 0) -> Answer | None:
        """The answer for a routed question, or None to hand it to the fact pipeline. ``page``: which
        page of a long digest ("show more" asks for the next)."""
        started = time.perf_counter()
        if kind.kind == "summary":
            result = self.summary_answer(question, kind, filters, about)
        elif kind.kind == "comparison":
            result = self.comparison_answer(question, kind, filters)
        elif kind.kind == "digest":
            result = self.digest_answer(question, filters, page)
        else:
            return None
        if result is not None:
            elapsed = (time.perf_counter() - started) * 1000
            result.timings = {"retrieve_ms": elapsed, "first_token_ms": elapsed, "total_ms": elapsed}
            result.route = {"kind": kind.kind, "why": kind.why}
        return result

    def _search(self, text: str, filters: Filters, k: int = 30) -> list[Passage]:
        return [to_passage(d) for d in self.retriever.invoke(text, filters=filters, k=k)]

    # summaries --------------------------------------------------------------------------------
    def summary_of(self, doc_id: str) -> tuple[list[KeyPoint], bool]:
        """(points, prepared?): the stored summary, or the article's central sentences at once."""
        stored = self.summaries.get(doc_id) if self.summaries else None
        if stored and stored.points:
            return stored.points, True
        self.on_missing_summary(doc_id)
        return extractive_points(article_passages(self.retriever.live.store(), doc_id), self.vectors), False

    def summary_answer(self, question: str, kind: Route, filters: Filters, about: tuple[str, ...]) -> Answer | None:
        catalog = self.catalog.articles()
        if filters.doc_ids:  # the reader chose articles: only those can be meant
            catalog = {d: row for d, row in catalog.items() if d in filters.doc_ids}
        found = resolve(kind.name, catalog, about, lambda text: self._search(text, filters), self.min_score)
        if len(found.doc_ids) != 1:
            return self.which_article(question, found, catalog)
        doc_id = found.doc_ids[0]
        row = catalog[doc_id]
        points, prepared = self.summary_of(doc_id)
        if not points:
            return None  # nothing summarisable (a table of numbers): the fact pipeline tries
        lines, passages, citations, shown = [_title_line(row)], [], [], []
        for point in points:
            n = _cite(point, row, doc_id, passages, citations)
            lines.append(f"- {point.text} [{n}]")
            shown.append({"label": "", "text": point.text, "cites": [n]})
        if not prepared:
            lines.append("(Quick summary from the article's most central sentences; a fuller one is being prepared.)")
        return Answer(question=question, answer="\n".join(lines), refused=False, citations=citations,
                      contexts=passages, timings={}, llm="summary (prepared)" if prepared else "summary (extractive)",
                      kind="summary", points=shown)

    def which_article(self, question: str, found: Resolved, catalog: dict[str, dict]) -> Answer:
        """Not one article: say which could be meant (a choice, not a refusal), or that none matches."""
        rows = [catalog[d] for d in found.closest if d in catalog]
        if found.how in ("several titles match", "several articles are close", "no article named") or (
                len(found.closest) > 1 and found.how.startswith("its number")):
            head = "Several articles could be meant. Which one should I summarise?"
        else:
            head = "No indexed article matches that name." + (" The closest titles:" if rows else "")
        lines = [head] + [f"- {_title_line(r)}" for r in rows]
        return Answer(question=question, answer="\n".join(lines), refused=False, citations=[], contexts=[],
                      timings={}, llm="summary", kind="summary", choices=[r["doc_id"] for r in rows])

    # comparisons ------------------------------------------------------------------------------
    def comparison_answer(self, question: str, kind: Route, filters: Filters) -> Answer | None:
        catalog = self.catalog.articles()
        focus = _focus(question, kind.sides)
        passages: list[Passage] = []
        citations: list[Citation] = []
        lines, shown = [], []
        for side in kind.sides:
            others = set().union(*(content_terms(o) for o in kind.sides if o != side)) - content_terms(side)
            found = resolve(side, catalog, (), lambda text: [], self.min_score)  # by number or title only
            if len(found.doc_ids) == 1:  # the side is an article: its sentences on the question's focus
                doc_id = found.doc_ids[0]
                side_filters = replace(filters, doc_ids=(doc_id,))
                label = catalog[doc_id]["title"]
                query = f"{focus} {label}".strip()
            else:  # a topic within the articles
                side_filters, label, query = filters, side, f"{side} {focus}".strip()
            candidates = self._search(query, side_filters, k=12)
            chosen = self._best_sentences(query, side, candidates, limit=2, others=others)
            if not chosen:
                lines.append(f"- {label}: the articles say nothing about this.")
                continue
            said = []
            for sentence, passage in chosen:
                row = catalog.get(passage.doc_id, {"title": passage.title, "date": passage.date})
                point = KeyPoint(sentence, passage.chunk_id, passage.start, passage.end, passage.text)
                n = _cite(point, row, passage.doc_id, passages, citations)
                said.append(f"{sentence} [{n}]")
                shown.append({"label": label, "text": sentence, "cites": [n]})
            lines.append(f"- {label}: " + " ".join(said))
        if not citations:
            return None  # neither side found: the fact pipeline refuses with the closest passages
        return Answer(question=question, answer="\n".join(["Compared:", *lines]), refused=False, citations=citations,
                      contexts=passages, timings={}, llm="comparison (extractive)", kind="comparison", points=shown)

    def _best_sentences(self, query: str, side: str, candidates: list[Passage], limit: int,
                        others: set[str] = frozenset()) -> list[tuple[str, Passage]]:
        """The sentences of the candidates closest to the query that name the side (a word of it);
        a sentence that names the other side too ranks after those that speak of this one alone."""
        side_terms = content_terms(side)
        pool = []
        for passage in candidates:
            if (passage.dense_score or 0.0) < self.min_score and passage.dense_score is not None:
                continue
            for sentence in passage_sentences(passage.text):
                words = len(sentence.split())
                if 5 <= words <= 70 and (not side_terms or side_terms & content_terms(f"{sentence} {passage.title}")):
                    pool.append((sentence, passage))
        if not pool:
            return []
        query_vector = self.vectors.query(query)
        vectors = self.vectors.sentences([s for s, _ in pool])
        ranked = sorted(zip(pool, vectors, strict=True), key=lambda item: (
            not (others & content_terms(item[0][0])), cosine(query_vector, item[1])), reverse=True)
        chosen: list[tuple[str, Passage]] = []
        for (sentence, passage), vector in ranked:
            if cosine(query_vector, vector) < self.min_score:
                break
            if all(sentence != s for s, _ in chosen):
                chosen.append((" ".join(sentence.split()), passage))
            if len(chosen) >= limit:
                break
        return chosen

    # digests ------------------------------------------------------------------------------------
    def digest_answer(self, question: str, filters: Filters, page: int = 0) -> Answer | None:
        timeframe = timeframe_of(question)
        if timeframe.has_period and not (filters.date_from or filters.date_to):
            filters = replace(filters, date_from=timeframe.date_from, date_to=timeframe.date_to)
        topic = _digest_topic(question)
        catalog = self.catalog.articles()
        if topic:
            by_article = self._relevant_articles(topic, filters)
        else:  # "what was published in March 2026": every article of the period
            by_article = {d: None for d, row in catalog.items()
                          if (not filters.date_from or (row.get("date") or "") >= filters.date_from)
                          and (not filters.date_to or "" < (row.get("date") or "") <= filters.date_to)
                          and (not filters.doc_ids or d in filters.doc_ids)}
        if not by_article:
            return None
        ordered = sorted(by_article, key=lambda d: catalog.get(d, {}).get("date") or "", reverse=True)
        passages: list[Passage] = []
        citations: list[Citation] = []
        shown = []
        period = f" ({timeframe.label[0].lower()}{timeframe.label[1:]})" if timeframe.has_period else ""
        first = max(0, page) * DIGEST_PAGE
        listed = ordered[first:first + DIGEST_PAGE]
        lines = [f"{len(ordered)} article{'s' if len(ordered) != 1 else ''}" + (f" on {topic}" if topic else "")
                 + f"{period}, newest first" + (f" ({first + 1}–{first + len(listed)}):" if first else ":")]
        for doc_id in listed:
            row = catalog.get(doc_id) or {"title": by_article[doc_id].title, "date": by_article[doc_id].date}
            point = self._gist(doc_id, topic, by_article[doc_id])
            if point is None:
                lines.append(f"- {_title_line(row)}")
                continue
            n = _cite(point, row, doc_id, passages, citations)
            lines.append(f"- {_title_line(row)}: {point.text} [{n}]")
            shown.append({"label": _title_line(row), "text": point.text, "cites": [n]})
        remaining = len(ordered) - first - len(listed)
        if remaining > 0:
            lines.append(f"({remaining} more: ask “show more”.)")
        answer = Answer(question=question, answer="\n".join(lines), refused=False, citations=citations,
                        contexts=passages, timings={}, llm="digest", kind="digest", points=shown,
                        timeframe={**timeframe.to_json(), "applied": True} if timeframe.has_period else None)
        answer.more = max(0, remaining)
        return answer

    def _relevant_articles(self, topic: str, filters: Filters) -> dict[str, Passage]:
        """Articles about ``topic``, each by its best passage: retrieval grouped by article (one
        article's ten passages count once), kept when the best passage's similarity is within
        DIGEST_BAND of the best article's and above DIGEST_FLOOR. Passages found by keywords alone
        are scored by meaning here too, so a word in passing does not list an article."""
        passages = self._search(topic, filters, k=60)
        unscored = [p for p in passages if p.dense_score is None]
        if unscored:
            query = self.vectors.query(topic)
            for passage, vector in zip(unscored, self.vectors.sentences([p.text for p in unscored]), strict=True):
                passage.dense_score = cosine(query, vector)
        best: dict[str, Passage] = {}
        for passage in passages:
            if passage.doc_id not in best or passage.dense_score > best[passage.doc_id].dense_score:
                best[passage.doc_id] = passage
        if not best:
            return {}
        top = max(p.dense_score for p in best.values())
        floor = max(DIGEST_FLOOR, self.min_score, top - DIGEST_BAND)
        return {d: p for d, p in best.items() if p.dense_score >= floor}

    def _gist(self, doc_id: str, topic: str, passage: Passage | None) -> KeyPoint | None:
        """The article's one sentence on the topic: the summary point closest to it, else its best
        passage's closest sentence."""
        stored = self.summaries.get(doc_id) if self.summaries else None
        points = stored.points if stored and stored.points else []
        if points and topic:
            query = self.vectors.query(topic)
            vectors = self.vectors.sentences([p.text for p in points])
            return max(zip(points, vectors, strict=True), key=lambda item: cosine(query, item[1]))[0]
        if points:
            return points[0]
        if passage is None:  # listed by date alone: the article's opening passage
            passage = next(iter(article_passages(self.retriever.live.store(), doc_id)), None)
        if passage is None:
            return None
        sentences = [s for s in passage_sentences(passage.text) if len(s.split()) >= 5] or [passage.text]
        if topic:
            query = self.vectors.query(topic)
            sentence = max(zip(sentences, self.vectors.sentences(sentences), strict=True),
                           key=lambda item: cosine(query, item[1]))[0]
        else:
            sentence = sentences[0]
        return KeyPoint(" ".join(sentence.split()), passage.chunk_id, passage.start, passage.end, passage.text)


def _cite(point: KeyPoint, row: dict, doc_id: str, passages: list[Passage], citations: list[Citation]) -> int:
    """The citation number of ``point``'s passage (one number per passage, added on first use)."""
    for n, passage in enumerate(passages, 1):
        if passage.chunk_id == point.chunk_id:
            return n
    passage = Passage(chunk_id=point.chunk_id, doc_id=doc_id, title=row.get("title", ""), text=point.passage,
                      date=row.get("date", ""), source=row.get("source", ""), start=point.start, end=point.end)
    passages.append(passage)
    citations.append(Citation(n=len(passages), doc_id=doc_id, title=passage.title, chunk_id=point.chunk_id,
                              text=point.passage, start=point.start, end=point.end))
    return len(passages)


_FOCUS_WORDS = re.compile(r"\b(?:how|do|does|did|what|compare|comparison|contrast|differ|differs|difference|differences|"
                          r"between|and|with|versus|vs|each|the|to|against|in terms of)\b", re.IGNORECASE)


def _focus(question: str, sides: list[str]) -> str:
    """What the comparison is about, the sides taken out ("… differ on funding" → "funding")."""
    rest = question
    for side in sides:
        rest = re.sub(re.escape(side), " ", rest, flags=re.IGNORECASE)
    rest = _FOCUS_WORDS.sub(" ", re.sub(r"[?!.,:;]", " ", rest))
    return " ".join(rest.split())


_DIGEST_WORDS = re.compile(
    r"\b(?:which|what|any|list|show|me|all|the|articles?|reports?|documents?|pieces?|stories|story|publications?|posts?|"
    r"audits?|papers?|was|were|has|have|been|got|published|written|reported|released|announced|did|say|said|says|"
    r"discuss|discussed|discusses|cover|covers|covered|mention|mentions|about|on|regarding|concerning|there|are|is)\b",
    re.IGNORECASE)


def _digest_topic(question: str) -> str:
    """The digest's topic: the question less its asking words and its period."""
    from rag.answer.timeframe import strip_period

    rest = _DIGEST_WORDS.sub(" ", re.sub(r"[?!.,:;]", " ", strip_period(question)))
    rest = re.sub(r"\b(?:in|from|during|since|after|before|between|until|of)\s*$", " ", " ".join(rest.split()))
    return " ".join(rest.split())
