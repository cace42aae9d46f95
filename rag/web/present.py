"""HTML for the web chat: answers with clickable citations, source cards, refusals.

Everything shown is escaped first (article text is untrusted); only the markup built here is
live. The chat renders Markdown as well as HTML, so text for the chat goes through ``as_text``,
which leaves no character that either could act on: an article's ``<img>``, ``![](…)``,
``[link](…)`` or bare URL shows as the characters it is, never as an image or a link. A citation
``[n]`` in turn ``t`` links to the source card ``#src-t-n``; a small script in ``app.py`` scrolls
to the card and flashes it.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, urlencode

from rag.ingest.chunk import readable_date
from rag.schema import Answer, Passage, page_label

CONTEXT_CHARS = 300

# Every character HTML or Markdown (with GFM autolinks and LaTeX) could act on, as a numeric
# entity: browsers show the character, and neither parser sees syntax in it.
_INERT = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]()#+-.!|~:@$=/"})


def as_text(text: str) -> str:
    """Untrusted text for the chat, shown exactly as written: no markup, no images, no links."""
    return text.translate(_INERT)


def share_query(question: str, doc_ids: tuple[str, ...] = (), date_from: str = "", date_to: str = "",
                all_dates: bool = False) -> str:
    """The link that asks ``question`` again, with its filters: opening ``/?q=…`` asks it directly.
    ``all_dates``: the reader removed the period read from the question (``&dates=all``)."""
    params = {"q": question, "docs": ",".join(doc_ids), "from": date_from, "to": date_to,
              "dates": "all" if all_dates else ""}
    return "?" + urlencode({k: v for k, v in params.items() if v})


def period_said(timeframe: dict) -> str:
    """One line on the period an answer searched: its label, or why all articles were searched."""
    return timeframe.get("label", "") if timeframe.get("applied") else timeframe.get("note", "")


def timeframe_html(timeframe: dict | None) -> str:
    """The period read from the question, shown above the answer as a chip (the web app's
    "✕" button under the chat removes it), or why it was dropped."""
    if not timeframe:
        return ""
    if not timeframe.get("applied"):
        return f"<div class='chip-note'>{as_text(period_said(timeframe))}</div>"
    undated = timeframe.get("undated_articles") or 0
    left_out = (f"<span class='chip-note'>{undated} article{'s' if undated != 1 else ''} without a date "
                f"{'were' if undated != 1 else 'was'} not searched</span>") if undated else ""
    return f"<div class='chips'><span class='chip'>{as_text(period_said(timeframe))}</span>{left_out}</div>"


def draft_html(text: str) -> str:
    """The model's reply while it is written and checked: marked as unchecked, shown as text."""
    return (f"<div class='checking'><span class='checking-label'>Checking against the passages…</span>"
            f"<div class='draft'>{as_text(text)}</div></div>")


def closest_passages(answer: Answer, limit: int = 3) -> list[tuple[int, Passage]]:
    """For a refusal: the closest passage of each of the first ``limit`` articles, with its number
    (``answer.contexts`` are in prompt order, each article's best passage first)."""
    firsts: dict[str, tuple[int, Passage]] = {}
    for n, passage in enumerate(answer.contexts, 1):
        firsts.setdefault(passage.doc_id, (n, passage))
    return list(firsts.values())[:limit]


def opening_words(passage: Passage, words: int = 14) -> str:
    """The start of what the model read of a passage (its best sentences), to recognise it by."""
    text = (passage.shown or passage.text).split()
    return " ".join(text[:words]) + ("…" if len(text) > words else "")


def answer_html(answer: Answer, turn: int, link: str = "") -> str:
    return timeframe_html(answer.timeframe) + _answer_body(answer, turn, link)


def _cited(text: str, turn: int) -> str:
    """Untrusted text with its ``[n]`` markers as links to the source cards (the only links in an answer)."""
    return re.sub(r"&#91;(\d+)&#93;", lambda m: f'<a class="cite" href="#src-{turn}-{m.group(1)}">[{m.group(1)}]</a>',
                  as_text(text))


def _overview_html(text: str, turn: int) -> str:
    """A summary, comparison or digest: its heading line, then its "- " lines as a bulleted list."""
    head, items, tail = [], [], []
    for line in text.split("\n"):
        if line.startswith("- "):
            items.append(f"<li>{_cited(line[2:], turn)}</li>")
        elif items:
            tail.append(f"<p class='overview-note'>{_cited(line, turn)}</p>")
        else:
            head.append(f"<p class='overview-title'><strong>{_cited(line, turn)}</strong></p>")
    return "".join(head) + (f"<ul class='key-points'>{''.join(items)}</ul>" if items else "") + "".join(tail)


def _answer_body(answer: Answer, turn: int, link: str) -> str:
    if answer.refused:
        related = "".join(
            f'<li><a class="cite" href="#src-{turn}-{n}">[{n}]</a> <strong>{as_text(p.title)}</strong> — '
            f'“{as_text(opening_words(p))}”</li>' for n, p in closest_passages(answer))
        extra = f"<p class='related-label'>Closest passages, for further reading:</p><ul>{related}</ul>" if related else ""
        return f"<div class='refusal'><strong>{as_text(answer.answer)}</strong>{extra}</div>"
    body = _cited(answer.answer, turn) if answer.kind == "answer" else _overview_html(answer.answer, turn)
    note = f"<div class='rewrite'>Searched for: {as_text(answer.rewritten_question)}</div>" \
        if answer.rewritten_question else ""
    share = (f"<div class='share'><a href='{html.escape(link, quote=True)}' target='_blank' rel='noopener'>"
             f"Link to this question</a></div>") if link else ""
    return f"<div class='answer'>{body}</div>{note}{share}"


# Markdown that could act in a downloaded file (links, images, HTML, emphasis, tables) and the
# starts of bare links (GFM autolinks "http://", "www."), backslash-escaped as CommonMark allows.
_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]()<>!|~$#])|(?<=http)(:)|(?<=https)(:)|(?<=www)(\.)", re.IGNORECASE)


def md_text(text: str) -> str:
    """Untrusted text for a Markdown file: one line, shown as written, nothing rendered."""
    return _MD_ACTIVE.sub(lambda m: "\\" + m.group(0), " ".join(text.split()))


def autolink_target(url: str) -> str:
    """An (untrusted) URL made safe inside a Markdown autolink ``<…>``: every character that could
    end it or mean something to a renderer (``<``, ``>``, spaces, quotes, backslashes, backticks,
    controls, anything non-ASCII) percent-encoded; the URL's own structure and escapes kept."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def turn_markdown(answer: Answer, turn: int, article_url=None) -> str:
    """One question and its answer as Markdown, each citation a footnote: the article's title and
    date, a link (its source URL, else ``article_url(doc_id)``), and the cited passage's opening."""
    lines = [f"## {md_text(answer.question)}", ""]
    if answer.timeframe:
        lines += [f"*{md_text(period_said(answer.timeframe))}*", ""]
    if answer.refused:
        lines.append(md_text(answer.answer))
        closest = [f"- *{md_text(p.title)}*: “{md_text(opening_words(p))}”" for _n, p in closest_passages(answer)]
        if closest:
            lines += ["", "Closest passages, for further reading:", *closest]
        return "\n".join(lines) + "\n"
    lines.append(re.sub(r"\\\[(\d+)\\\]", lambda m: f"[^{turn}-{m.group(1)}]", md_text(answer.answer)))
    lines.append("")
    for citation in answer.citations:
        passage = answer.contexts[citation.n - 1] if citation.n <= len(answer.contexts) else None
        date = readable_date(passage.date) if passage and passage.date else ""
        source = passage.source if passage and passage.source.startswith(("http://", "https://")) else ""
        url = at_page(source, citation.page) or (article_url(citation.doc_id) if article_url else "")
        words = citation.text.split()
        excerpt = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
        pages = page_label(citation.page, citation.page_end)
        title = f"*{md_text(citation.title)}*" + (f" ({date})" if date else "") + (f", {pages}" if pages else "")
        link = f" <{autolink_target(url)}>" if url else ""
        lines.append(f"[^{turn}-{citation.n}]: {title}{link}: “{md_text(excerpt)}”")
    return "\n".join(lines) + "\n"


def at_page(url: str, page: int) -> str:
    """A PDF's URL opened at ``page`` (browsers' PDF viewers read ``#page=N``); other URLs as they are."""
    if not url or not page or "#" in url or not url.split("?")[0].lower().endswith(".pdf"):
        return url
    return f"{url}#page={page}"


def passage_card(passage: Passage, n: int, turn: int, *, cited: bool, article: str = "") -> str:
    """One source: title, date, section, link, and the passage highlighted inside its context."""
    meta = [readable_date(passage.date)] if passage.date else []
    if passage.section:
        meta.append(html.escape(passage.section))
    if pages := page_label(passage.page, passage.page_end):
        meta.append(pages)
    if passage.ocr:
        meta.append("<span class='ocr-note'>text recognised from a scan — check against the original</span>")
    link = ""
    if passage.source.startswith(("http://", "https://")):
        target = html.escape(at_page(passage.source, passage.page), quote=True)
        link = f' · <a href="{target}" target="_blank" rel="noopener noreferrer">source</a>'
    if article:
        before = article[max(0, passage.start - CONTEXT_CHARS):passage.start]
        after = article[passage.end:passage.end + CONTEXT_CHARS]
        context = (f"<span class='ctx'>…{html.escape(before)}</span><mark>{html.escape(passage.text)}</mark>"
                   f"<span class='ctx'>{html.escape(after)}…</span>")
        # Loaded when opened (app.py's script, from /article/<doc_id>): the page carries passages only.
        whole = (f"<details class='whole' data-doc='{html.escape(passage.doc_id, quote=True)}'>"
                 f"<summary>Read the whole article</summary><div class='article-text'></div></details>")
    else:
        context, whole = f"<mark>{html.escape(passage.text)}</mark>", ""
    badge = "cited" if cited else "retrieved"
    return (f"<div class='src {badge}' id='src-{turn}-{n}'><div class='src-head'><span class='num'>[{n}]</span> "
            f"<strong>{html.escape(passage.title)}</strong></div>"
            f"<div class='src-meta'>{' · '.join(meta)}{link} · <span class='badge'>{badge}</span>"
            f"<button class='summarize' type='button' data-title='{html.escape(' '.join(passage.title.split()), quote=True)}'>"
            f"Summarize</button></div>"
            f"<div class='src-text'>{context}</div>{whole}</div>")


def sources_html(turns: list[tuple[str, list[str]]]) -> str:
    """The sources panel: newest question first, each with its cards."""
    if not turns:
        return "<div class='src-empty'>Sources for each answer appear here as soon as they are found.</div>"
    sections = [f"<section class='turn'><div class='turn-q'>{html.escape(q)}</div>{''.join(cards)}</section>"
                for q, cards in reversed(turns)]
    return "".join(sections)
