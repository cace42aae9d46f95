"""HTML for the web chat: answers with clickable citations, source cards, refusals.

Everything shown is escaped first (article text is untrusted); only the markup built here is
live. A citation ``[n]`` in turn ``t`` links to the source card ``#src-t-n``; a small script in
``app.py`` scrolls to the card and flashes it.
"""

from __future__ import annotations

import html
import re

from rag.chunk import readable_date
from rag.schema import Answer, Passage

CONTEXT_CHARS = 300


def answer_html(answer: Answer, turn: int) -> str:
    if answer.refused:
        related = "".join(
            f'<li><a class="cite" href="#src-{turn}-{n}">{html.escape(p.title)}</a></li>'
            for n, p in enumerate(answer.contexts, 1)
        )
        extra = f"<p class='related-label'>Closest passages, for further reading:</p><ul>{related}</ul>" if related else ""
        return f"<div class='refusal'><strong>{html.escape(answer.answer)}</strong>{extra}</div>"
    body = html.escape(answer.answer)
    body = re.sub(r"\[(\d+)\]", lambda m: f'<a class="cite" href="#src-{turn}-{m.group(1)}">[{m.group(1)}]</a>', body)
    note = f"<div class='rewrite'>Searched for: {html.escape(answer.rewritten_question)}</div>" \
        if answer.rewritten_question else ""
    return f"<div class='answer'>{body}</div>{note}"


def passage_card(passage: Passage, n: int, turn: int, *, cited: bool, article: str = "") -> str:
    """One source: title, date, section, link, and the passage highlighted inside its context."""
    meta = [readable_date(passage.date)] if passage.date else []
    if passage.section:
        meta.append(html.escape(passage.section))
    link = ""
    if passage.source.startswith(("http://", "https://")):
        link = f' · <a href="{html.escape(passage.source, quote=True)}" target="_blank" rel="noopener noreferrer">source</a>'
    if article:
        before = article[max(0, passage.start - CONTEXT_CHARS):passage.start]
        after = article[passage.end:passage.end + CONTEXT_CHARS]
        context = (f"<span class='ctx'>…{html.escape(before)}</span><mark>{html.escape(passage.text)}</mark>"
                   f"<span class='ctx'>{html.escape(after)}…</span>")
        whole = (f"<details class='whole'><summary>Read the whole article</summary>"
                 f"<div class='article-text'>{html.escape(article[:60_000])}</div></details>")
    else:
        context, whole = f"<mark>{html.escape(passage.text)}</mark>", ""
    badge = "cited" if cited else "retrieved"
    return (f"<div class='src {badge}' id='src-{turn}-{n}'><div class='src-head'><span class='num'>[{n}]</span> "
            f"<strong>{html.escape(passage.title)}</strong></div>"
            f"<div class='src-meta'>{' · '.join(meta)}{link} · <span class='badge'>{badge}</span></div>"
            f"<div class='src-text'>{context}</div>{whole}</div>")


def sources_html(turns: list[tuple[str, list[str]]]) -> str:
    """The sources panel: newest question first, each with its cards."""
    if not turns:
        return "<div class='src-empty'>Sources for each answer appear here as soon as they are found.</div>"
    sections = [f"<section class='turn'><div class='turn-q'>{html.escape(q)}</div>{''.join(cards)}</section>"
                for q, cards in reversed(turns)]
    return "".join(sections)
