"""Periods named in a question become the date filter; "latest" ranks newer articles first.

"What did the White House announce on chips in January 2025?" → articles from January 2025;
"since the 2023 executive order" → from 2023 on; "between March 2024 and June 2024", "before
2020", "after May 5, 2024". Only a period introduced by a word of time (in, during, since, after,
before, until, between … and, from … to) counts: in "What does the 2023 executive order say?" the
year names the order, not the articles. The period itself is read by dateparser, which also tells
whether it is a day, a month or a year. "Latest", "most recent" and "newest" ask for newer articles
first among the relevant ones.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from rag.schema import Passage

RELEVANT_BAND = 0.1  # "latest": passages within this cosine similarity of the best are "relevant ones"

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
# A day, a month or a year, as people write them: "14 January 2025", "January 14, 2025",
# "Jan 2025", "2025-01-14", "2025-01", "2025".
_WHEN = (rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\s+\d{{4}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
         rf"|{_MONTH}\s+(?:of\s+)?\d{{4}}|\d{{4}}-\d{{2}}(?:-\d{{2}})?|(?:19|20)\d{{2}})")
_THE = r"(?:the\s+(?:year\s+|month\s+of\s+)?)?"
BETWEEN = re.compile(rf"\b(?:between|from)\s+{_THE}(?P<a>{_WHEN})\s+(?:and|to|until|through)\s+{_THE}(?P<b>{_WHEN})\b",
                     re.IGNORECASE)
SINCE = re.compile(rf"\b(?P<word>since|after|from|starting|beginning)\s+(?:in\s+)?{_THE}(?P<a>{_WHEN})\b", re.IGNORECASE)
BEFORE = re.compile(rf"\b(?P<word>before|until|till|prior\s+to|up\s+to|by)\s+{_THE}(?P<a>{_WHEN})\b", re.IGNORECASE)
DURING = re.compile(rf"\b(?:in|during|on|throughout|of)\s+{_THE}(?P<a>{_WHEN})\b", re.IGNORECASE)
NEWEST = re.compile(r"\b(?:latest|most\s+recent(?:ly)?|newest|recent(?:ly)?|current)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Timeframe:
    date_from: str = ""  # ISO dates, inclusive; "" = open
    date_to: str = ""
    newest_first: bool = False
    label: str = ""  # how the period reads to the reader: "Articles from January 2025"

    def __bool__(self) -> bool:
        return bool(self.date_from or self.date_to or self.newest_first)

    @property
    def has_period(self) -> bool:
        return bool(self.date_from or self.date_to)

    def without_period(self) -> Timeframe:
        """Only "newest first", if asked for (dates set by the reader, or nothing in the period answered)."""
        return Timeframe(newest_first=True, label="Newest articles first") if self.newest_first else Timeframe()

    def to_json(self) -> dict:
        return {"date_from": self.date_from, "date_to": self.date_to, "newest_first": self.newest_first,
                "label": self.label}


@cache
def _parser():
    from dateparser.date import DateDataParser

    return DateDataParser(languages=["en"], settings={"PREFER_DAY_OF_MONTH": "first", "RETURN_AS_TIMEZONE_AWARE": False})


def period(text: str) -> tuple[date, date, str] | None:
    """(first day, last day, how to say it) of a day, month or year, read by dateparser."""
    data = _parser().get_date_data(text)
    if data.date_obj is None:
        return None
    day = data.date_obj.date()
    if re.fullmatch(r"(?:19|20)\d{2}", text.strip()):  # a bare year: dateparser fills in this month
        return date(int(text), 1, 1), date(int(text), 12, 31), text.strip()
    if data.period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31), str(day.year)
    if data.period == "month":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.replace(day=1), day.replace(day=last), day.strftime("%B %Y")
    return day, day, f"{day.day} {day.strftime('%B %Y')}"


def timeframe_of(question: str) -> Timeframe:
    """The period a question asks about (``Timeframe()`` when it names none)."""
    newest = bool(NEWEST.search(question))
    if match := BETWEEN.search(question):
        first, last = period(match["a"]), period(match["b"])
        if first and last and first[0] <= last[1]:
            return Timeframe(first[0].isoformat(), last[1].isoformat(), newest,
                             f"Articles from {first[2]} to {last[2]}")
    if (match := SINCE.search(question)) and (found := period(match["a"])):
        start = found[1] + timedelta(days=1) if match["word"].lower() == "after" else found[0]
        word = "after" if match["word"].lower() == "after" else "since"
        return Timeframe(start.isoformat(), "", newest, f"Articles {word} {found[2]}")
    if (match := BEFORE.search(question)) and (found := period(match["a"])):
        word = match["word"].lower()
        end = found[0] - timedelta(days=1) if word in ("before", "prior to") else found[1]
        return Timeframe("", end.isoformat(), newest,
                         f"Articles {'before' if word in ('before', 'prior to') else 'up to'} {found[2]}")
    if (match := DURING.search(question)) and (found := period(match["a"])):
        return Timeframe(found[0].isoformat(), found[1].isoformat(), newest, f"Articles from {found[2]}")
    return Timeframe(newest_first=newest).without_period()


def newest_first(passages: list[Passage], band: float = RELEVANT_BAND) -> list[Passage]:
    """Newer articles first among the relevant passages (those whose similarity is within ``band``
    of the best); the rest keep their rank after them. Undated passages count as oldest."""
    dense = [p.dense_score for p in passages if p.dense_score is not None]
    if not dense:
        return list(passages)
    floor = max(dense) - band
    relevant = [p for p in passages if p.dense_score is not None and p.dense_score >= floor]
    rest = [p for p in passages if p not in relevant]
    return sorted(relevant, key=lambda p: p.date or "", reverse=True) + rest


def strip_period(question: str) -> str:
    """The question without the period it names ("… on AI in March 2026" → "… on AI")."""
    for pattern in (BETWEEN, SINCE, BEFORE, DURING):
        question = pattern.sub(" ", question)
    return " ".join(question.split())
