"""The web page (Gradio Blocks): the chat column, the sources panel, filters, shared links,
ratings and the ``/ask`` API; the Admin and Evaluate tabs when their passwords are set."""

from __future__ import annotations

import heapq
import logging

import gradio as gr

from rag.web.admin_tab import build_admin_tab
from rag.web.chat import (
    TITLE,
    ChatService,
    Session,
    answer_from_json,
    base_url_of,
)
from rag.web.evaluate_tab import build_evaluate_tab
from rag.web.limits import LimitExceeded
from rag.web.present import as_text, sources_html
from rag.web.protected import client_of

log = logging.getLogger(__name__)


# Questions let past Gradio's queue at once, all question events together (one concurrency_id): they
# wait their turn at the model in the app's fair gate (``ChatService.model_turns``: RAG_CONCURRENCY_LIMIT
# at a time, round-robin between clients). Shared, so waiting questions hold at most 16 of Gradio's 40
# worker threads and ratings, the Admin tab and /article are never starved by a burst of questions.
QUESTIONS_IN_FLIGHT = 16
# The article filter offers the newest this many articles (and any a shared link names): every choice
# travels in each page's config, ~90 bytes apiece — 22 MB for the 250k articles of a 1M-chunk index.
FILTER_CHOICES = 1000


def filter_choices(rows: list[dict], also: list[str] = ()) -> list[tuple[str, str]]:
    """(label, doc_id) of the newest ``FILTER_CHOICES`` articles, plus the ``also`` ones, newest first."""
    def date(row: dict) -> str:
        return row.get("date") or ""

    # Every page load: nlargest is sorted()[:n] without sorting them all (60 vs 280 ms for 247k).
    newest = heapq.nlargest(FILTER_CHOICES, rows, key=date)
    offered = {r["doc_id"] for r in newest}
    chosen = newest + sorted((r for r in rows if r["doc_id"] in also and r["doc_id"] not in offered), key=date, reverse=True)
    return [(f"{r['title'][:70]} ({r['doc_id']})", r["doc_id"]) for r in chosen]


def filter_label(rows: list[dict]) -> str:
    if len(rows) > FILTER_CHOICES:
        return f"Only these articles (offered: the newest {FILTER_CHOICES:,} of {len(rows):,})"
    return "Only these articles"

TAGLINE = "Ask the article collection. Every claim links to the passage that supports it — or you are told the articles don't say."

CSS = """
.gradio-container { max-width: 1280px !important; margin: auto; font-size: 16px; line-height: 1.55; }
#brand h1 { margin-bottom: 0; } #brand p { margin-top: 4px; opacity: .8; }
a.cite { font-weight: 600; text-decoration: none; padding: 0 2px; border-radius: 4px; cursor: pointer; }
a.cite:hover { background: var(--color-accent-soft); }
.refusal { border-left: 4px solid #d97706; padding: 4px 12px; background: rgba(217,119,6,.08); border-radius: 4px; }
.refusal ul { margin: 4px 0 0 0; } .related-label { margin: 6px 0 0 0; font-size: .9em; opacity: .8; }
.chips { margin-bottom: 6px; } .chip { display: inline-block; font-size: .85em; padding: 1px 10px; border-radius: 999px;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); margin-right: 8px; }
.chip-note { font-size: .85em; opacity: .75; font-style: italic; }
.rewrite { font-size: .8em; opacity: .65; margin-top: 6px; font-style: italic; }
.draft { opacity: .55; } .checking-label { font-size: .8em; font-style: italic; opacity: .8; display: block; margin-bottom: 4px; }
#sources { max-height: 75vh; overflow-y: auto; }
.turn-q { font-weight: 600; margin: 12px 0 6px; opacity: .8; }
.src { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px; margin-bottom: 10px; }
.src.flash { outline: 3px solid var(--color-accent); transition: outline .2s; }
.src-meta { font-size: .85em; opacity: .75; margin: 2px 0 6px; }
.src .badge { text-transform: uppercase; font-size: .75em; letter-spacing: .05em; }
.src.retrieved { opacity: .8; }
.src-text { white-space: pre-wrap; } .src-text .ctx { opacity: .6; } .src-text mark { background: rgba(250, 204, 21, .45); color: inherit; padding: 0 1px; }
.key-points { margin: 4px 0 0 0; } .key-points li { margin-bottom: 4px; } .overview-title { margin: 0 0 4px; }
.overview-note { font-size: .85em; opacity: .75; font-style: italic; margin: 6px 0 0; }
button.summarize { font-size: .8em; margin-left: 6px; padding: 0 8px; border-radius: 6px; border: 1px solid var(--border-color-primary); cursor: pointer; }
.article-text { white-space: pre-wrap; max-height: 360px; overflow-y: auto; font-size: .9em; }
@media (max-width: 768px) { #sources { max-height: none; } .gradio-container { font-size: 15px; } }
"""

# Citation links scroll to their source card and flash it (and open nothing new).
HEAD = """<script>
document.addEventListener('click', (event) => {
  const link = event.target.closest('a.cite');
  if (!link) return;
  event.preventDefault();
  const card = document.getElementById(link.getAttribute('href').slice(1));
  if (!card) return;
  card.scrollIntoView({behavior: 'smooth', block: 'center'});
  card.classList.add('flash');
  setTimeout(() => card.classList.remove('flash'), 2500);
}, true);
// A source card's "Summarize" asks for that article's summary, as if the reader had typed it.
document.addEventListener('click', (event) => {
  const button = event.target.closest('button.summarize');
  if (!button) return;
  event.preventDefault();
  const box = document.querySelector('#question textarea');
  if (!box) return;
  box.value = 'Summarize \u201c' + button.dataset.title + '\u201d';
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => { const send = document.querySelector('#question button.submit-button'); if (send) send.click(); }, 100);
}, true);
// "Read the whole article" loads the text when opened, as plain text (never as markup).
document.addEventListener('toggle', async (event) => {
  const box = event.target;
  if (!box.matches || !box.matches('details.whole') || !box.open) return;
  const body = box.querySelector('.article-text');
  if (!body || body.dataset.loaded) return;
  body.dataset.loaded = '1';
  body.textContent = 'Loading…';
  try {
    const response = await fetch('article/' + encodeURIComponent(box.dataset.doc));
    body.textContent = response.ok ? await response.text() : 'This article is no longer in the collection.';
  } catch (error) { body.textContent = 'The article could not be loaded.'; }
}, true);
</script>"""



def build_app(service: ChatService) -> gr.Blocks:
    articles = service.articles()
    # Uploaded temp files older than an hour are deleted every ten minutes (and all at restart).
    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        session = gr.State(Session())  # deep-copied per reader by Gradio
        with gr.Column(elem_id="brand"):
            gr.Markdown(f"# {TITLE}\n{TAGLINE}")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chatbot = gr.Chatbot(
                    elem_id="chat", height=520, label="Conversation", buttons=["copy"],
                    placeholder="Ask a question about the articles. Sources appear on the right (below on a phone).",
                    examples=[{"text": q} for q in service.example_questions()],
                )
                # The period read from the newest question, removable: "✕ Articles from 2024 — ask over all dates".
                chip = gr.Button("", visible=False, size="sm", elem_id="timeframe-chip", variant="secondary")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about the articles…", show_label=False, scale=5,
                                          elem_id="question", max_lines=4, submit_btn=True, stop_btn=True)
                with gr.Row():
                    new_chat = gr.Button("New conversation", size="sm", elem_id="new-chat")
                    download = gr.DownloadButton("Download conversation (Markdown)", size="sm", elem_id="download",
                                                 interactive=False)
                with gr.Accordion("Filters", open=False):
                    doc_filter = gr.Dropdown(filter_choices(articles), multiselect=True, label=filter_label(articles),
                                             elem_id="doc-filter")
                    with gr.Row():
                        date_from = gr.Textbox(label="From date", placeholder="YYYY-MM-DD", elem_id="date-from")
                        date_to = gr.Textbox(label="To date", placeholder="YYYY-MM-DD", elem_id="date-to")
                with gr.Row():
                    comment = gr.Textbox(label="Comment on the last rated answer (optional)", scale=4,
                                         elem_id="comment")
                    send_comment = gr.Button("Send", size="sm", scale=1, elem_id="send-comment")
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=2, min_width=300):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html([]), elem_id="sources")

        def respond(message: str, history: list, state: Session, docs, start, end, request: gr.Request):
            yield from service.respond(message, history, state, docs, start, end, base_url=base_url_of(request),
                                       client=client_of(request))

        def export(state: Session):
            """After each answer: the conversation as a Markdown file for the download button, and
            the chip of the period the answer searched (hidden when it searched all dates)."""
            timeframe = state.last_timeframe or {}
            chip_update = gr.Button(value=f"✕ {timeframe.get('label', '')} — ask again over all dates", visible=True) \
                if timeframe.get("applied") else gr.Button(visible=False)
            if not state.transcript:
                return gr.DownloadButton(value=None, interactive=False), chip_update
            return gr.DownloadButton(value=service.downloads.write(
                "conversation", ".md", f"# {TITLE}: conversation\n\n" + "\n".join(state.transcript)), interactive=True), chip_update

        def take_question(message: str):
            # The box is emptied the moment a question is sent, not after its answer has streamed:
            # clearing it afterwards wiped whatever the reader had typed in the meantime.
            return "", message

        sent = gr.State("")
        submit = question.submit(take_question, question, [question, sent], queue=False,
                                 api_visibility="private").then(
            respond, [sent, chatbot, session, doc_filter, date_from, date_to],
            [chatbot, sources, session, status], api_visibility="private",
            concurrency_limit=QUESTIONS_IN_FLIGHT, concurrency_id="questions",
        )
        submit.then(export, session, [download, chip], api_visibility="private")
        question.stop(None, None, None, cancels=[submit])

        def ask_all_dates(history: list, state: Session, docs, start, end, request: gr.Request):
            """The chip's ✕: the last question again, without the period it named."""
            last_question = state.history[-1][0] if state.history else ""
            yield from service.respond(last_question, history, state, docs, start, end,
                                       base_url=base_url_of(request), infer_dates=False, client=client_of(request))

        chip.click(lambda: gr.Button(visible=False), None, chip, queue=False, api_visibility="private").then(
            ask_all_dates, [chatbot, session, doc_filter, date_from, date_to], [chatbot, sources, session, status],
            api_visibility="private", concurrency_limit=QUESTIONS_IN_FLIGHT, concurrency_id="questions",
        ).then(export, session, [download, chip], api_visibility="private")

        # A shared link (``/?q=…&docs=…&from=…&to=…``, see rag.web.present.share_query) asks at once.
        # Each page load also offers the articles indexed now (an index re-built while the app serves).
        def read_link(request: gr.Request):
            params = request.query_params if request else {}
            rows = service.articles()
            known_ids = {row["doc_id"] for row in rows}
            docs = [d for d in params.get("docs", "").split(",") if d in known_ids]
            offered = gr.Dropdown(choices=filter_choices(rows, docs), value=docs, label=filter_label(rows))
            return (params.get("q", "")[: service.settings.max_question_chars], params.get("dates") == "all", offered,
                    params.get("from", "")[:20], params.get("to", "")[:20])

        def respond_to_link(message: str, all_dates: bool, history: list, state: Session, docs, start, end,
                            request: gr.Request):
            if not message:
                yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
                return
            yield from service.respond(message, history, state, docs, start, end, base_url=base_url_of(request),
                                       infer_dates=False if all_dates else None, client=client_of(request))

        linked = gr.State("")  # not ``sent``: a question typed meanwhile must not be asked twice
        linked_all_dates = gr.State(False)  # the link was shared after the period chip was removed
        demo.load(read_link, None, [linked, linked_all_dates, doc_filter, date_from, date_to], queue=False,
                  api_visibility="private").then(
            respond_to_link, [linked, linked_all_dates, chatbot, session, doc_filter, date_from, date_to],
            [chatbot, sources, session, status], api_visibility="private",
            concurrency_limit=QUESTIONS_IN_FLIGHT, concurrency_id="questions",
        ).then(export, session, [download, chip], api_visibility="private")
        # The streaming ``/chat`` API takes the question itself (a State is not an API input);
        # the hidden button only carries the endpoint, as gr.ChatInterface does.
        chat_api = gr.Button(visible=False)
        chat_api.click(respond, [question, chatbot, session, doc_filter, date_from, date_to],
                       [chatbot, sources, session, status], api_name="chat",
                       concurrency_limit=QUESTIONS_IN_FLIGHT, concurrency_id="questions")

        def example_selected(example: gr.SelectData, history, state, docs, start, end, request: gr.Request):
            yield from respond(example.value["text"], history, state, docs, start, end, request)

        chatbot.example_select(example_selected, [chatbot, session, doc_filter, date_from, date_to],
                               [chatbot, sources, session, status], api_visibility="private").then(
            export, session, [download, chip], api_visibility="private")

        def reset():
            return ([], sources_html([]), Session(), "", gr.DownloadButton(value=None, interactive=False),
                    gr.Button(visible=False))

        new_chat.click(reset, None, [chatbot, sources, session, status, download, chip], api_visibility="private")

        def rate(data: gr.LikeData, state: Session, request: gr.Request):
            answer = state.answers.get(data.index if isinstance(data.index, int) else data.index[0])
            if answer is None:
                return state, "Only answers can be rated."
            try:
                service.feedback_limit.take(client_of(request))
            except LimitExceeded as exc:
                return state, as_text(str(exc).capitalize()) + "."
            rating = 1 if data.liked else -1
            service.metrics.feedback.labels("up" if rating > 0 else "down").inc()
            state.last_feedback_id = service.feedback.record(  # one row per answer: a new rating replaces it
                answer_from_json(answer), rating=rating, settings=service.settings.public())
            return state, "Thanks — feedback saved." + (" Add a comment below if you like." if rating < 0 else "")

        chatbot.like(rate, [session], [session, status], api_visibility="private")

        def save_comment(text: str, state: Session):
            if not text.strip():
                return "", "Write a comment first."
            if state.last_feedback_id is None:
                return text, "Rate an answer (thumbs up or down) first; the comment attaches to it."
            service.feedback.add_comment(state.last_feedback_id, text.strip())
            return "", "Comment saved."

        send_comment.click(save_comment, [comment, session], [comment, status], api_visibility="private")

        def ask(question: str, request: gr.Request) -> dict:
            """Answer one question; returns the same JSON object as `python -m rag ask --json`."""
            return service.ask_json(question, client=client_of(request))

        gr.api(ask, api_name="ask", concurrency_limit=QUESTIONS_IN_FLIGHT, concurrency_id="questions")
        if service.admin.enabled:
            build_admin_tab(service.admin, service.logins)
        if service.staff.enabled:
            build_evaluate_tab(service.staff, service.logins)
    return demo
