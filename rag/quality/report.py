"""Self-contained HTML reports for evaluation runs and comparisons (plots inlined; opens offline)."""

from __future__ import annotations

import base64
import html
import io

QUALITY_METRICS = ["hit@1", "hit@3", "hit@5", "mrr", "answered_precision", "correct", "refused_unanswerable",
                   "citation_precision", "citation_coverage", "trust_score"]

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#1f2937}
h1{font-size:1.5em}table{border-collapse:collapse;width:100%;font-size:.9em}td,th{border-bottom:1px solid #e5e7eb;
padding:6px;text-align:left;vertical-align:top}.ok{color:#047857}.bad{color:#b91c1c}.muted{color:#6b7280}
img{max-width:100%}details{margin-top:4px}@media (prefers-color-scheme:dark){body{background:#111827;color:#e5e7eb}
td,th{border-color:#374151}}"""


def _figure_png(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _metric_bars(summaries: list[tuple[str, dict]]) -> str:
    def draw(ax):
        width = 0.8 / len(summaries)
        for i, (label, summary) in enumerate(summaries):
            values = [summary.get(m) or 0 for m in QUALITY_METRICS]
            ax.bar([x + i * width for x in range(len(QUALITY_METRICS))], values, width, label=label)
        ax.set_xticks([x + width * (len(summaries) - 1) / 2 for x in range(len(QUALITY_METRICS))])
        ax.set_xticklabels(QUALITY_METRICS, rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title("Answer quality (higher is better)")
        ax.legend(fontsize=8)

    return _figure_png(draw)


def _latency_histogram(runs: list[tuple[str, list[dict]]]) -> str:
    def draw(ax):
        for label, results in runs:
            values = [r["timings"].get("first_token_ms", 0) / 1000 for r in results if r.get("timings")]
            ax.hist(values, bins=15, alpha=0.6, label=label)
        ax.set_xlabel("time to first token (s)")
        ax.set_ylabel("questions")
        ax.set_title("Latency distribution")
        ax.legend(fontsize=8)

    return _figure_png(draw)


def _outcome(result: dict) -> str:
    from rag.quality.runs import is_good, outcome

    state = outcome(result)
    return f"<span class='{'ok' if is_good(result) else 'bad'}'>{state}</span>"


def _result_row(result: dict) -> str:
    citations = "".join(
        f"<details><summary>[{c['n']}] {html.escape(c['title'][:80])}</summary>{html.escape(c['text'])}</details>"
        for c in result.get("citations", []))
    coverage = "" if result.get("key_point_coverage") is None else \
        f"<br><span class='muted'>key points {result['key_point_coverage']}</span>"
    unchecked = [v["point"] for v in result.get("point_verdicts", []) if not v["supported"]]
    if unchecked:
        coverage += "<br><span class='bad'>not supported: " + html.escape(" | ".join(unchecked))[:400] + "</span>"
    return (f"<tr><td>{html.escape(result['id'])}</td><td>{html.escape(result['question'])}</td>"
            f"<td>{_outcome(result)}<br><span class='muted'>{html.escape(result.get('failure') or '')}</span>{coverage}</td>"
            f"<td>{result.get('evidence_rank') or '–'}</td>"
            f"<td>{html.escape(result.get('error') or result['answer'])}{citations}</td></tr>")


def run_report(run: dict, results: list[dict]) -> str:
    summary_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                           for k, v in run["summary"].items() if k != "by_kind")
    rows = "".join(_result_row(r) for r in results)
    label = f"run {run['id']}"
    failures = _failure_table(run["summary"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation {label}</title>
<style>{STYLE}</style></head><body>
<h1>Evaluation {label}: {html.escape(run['question_set'])}</h1>
<p class="muted">{run['created_at']} · code {html.escape(run['code_version'])} · {html.escape(str(run['summary'].get('llm', '')))}</p>
<img alt="metric bars" src="{_metric_bars([(label, run['summary'])])}">
<img alt="latency histogram" src="{_latency_histogram([(label, results)])}">
<h2>What went wrong</h2>{failures}
{_kind_table(run["summary"])}
<h2>Summary</h2><table>{summary_rows}</table>
<h2>Questions</h2><table><tr><th>id</th><th>question</th><th>outcome</th><th>evidence rank</th><th>answer and citations</th></tr>
{rows}</table>
<h2>Settings</h2><pre>{html.escape(_settings_text(run['settings']))}</pre></body></html>"""


def comparison_report(comparison: dict, results_a: list[dict], results_b: list[dict]) -> str:
    a, b = comparison["a"], comparison["b"]
    label_a, label_b = f"run {a['id']}", f"run {b['id']}"
    metric_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['a']}</td><td>{v['b']}</td></tr>"
                          for k, v in comparison["metrics"].items())
    settings_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v['a']))}</td>"
                            f"<td>{html.escape(str(v['b']))}</td></tr>" for k, v in comparison["settings_diff"].items())
    question_rows = "".join(
        f"<tr><td>{html.escape(q['id'])}</td><td class='{'ok' if q['direction'] == 'better' else 'bad' if q['direction'] == 'worse' else ''}'>"
        f"{q['direction']}</td><td>{html.escape(q['question'])}</td>"
        f"<td>{q['a']['outcome']} (rank {q['a']['rank']})<br><span class='muted'>{html.escape(q['a']['answer'])}</span>"
        f"<br><small>{html.escape(q['a'].get('why') or '')}</small></td>"
        f"<td>{q['b']['outcome']} (rank {q['b']['rank']})<br><span class='muted'>{html.escape(q['b']['answer'])}</span>"
        f"<br><small>{html.escape(q['b'].get('why') or '')}</small></td></tr>"
        for q in comparison["questions"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{label_a} vs {label_b}</title>
<style>{STYLE}</style></head><body><h1>{label_a} vs {label_b}</h1>
<img alt="metric bars" src="{_metric_bars([(label_a, a['summary']), (label_b, b['summary'])])}">
<img alt="latency histograms" src="{_latency_histogram([(label_a, results_a), (label_b, results_b)])}">
<h2>Metrics</h2><table><tr><th>metric</th><th>{label_a}</th><th>{label_b}</th></tr>{metric_rows}</table>
<h2>Settings that differ</h2><table><tr><th>setting</th><th>{label_a}</th><th>{label_b}</th></tr>{settings_rows}</table>
<h2>Questions that changed</h2><table><tr><th>id</th><th></th><th>question</th><th>{label_a}</th><th>{label_b}</th></tr>
{question_rows}</table></body></html>"""


def _kind_table(summary: dict) -> str:
    """Whole-article questions, per kind: key-point coverage, sources cited, refusals, checked points."""
    kinds = summary.get("by_kind") or {}
    if not kinds:
        return ""
    columns = ["questions", "key_point_coverage", "sources_cited", "refused", "points_checked_ok", "first_token_ms_p50",
               "routed_as"]
    rows = "".join(f"<tr><td>{html.escape(kind)}</td>" + "".join(
        f"<td>{html.escape(_value(scores.get(c)))}</td>" for c in columns) + "</tr>" for kind, scores in kinds.items())
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns)
    return (f"<h2>By kind of question</h2><p class='muted'>key-point coverage: points of the set found in the answer "
            f"(a refusal scores 0); sources cited: the share of the set's sources the answer cites; points checked "
            f"ok: shown points the checker supports against the passage they cite</p>"
            f"<table><tr><th>kind</th>{head}</tr>{rows}</table>")


def _failure_table(summary: dict) -> str:
    """Counts of each failure kind, with what it means and the trust score beside them."""
    from rag.quality.evaluate import FAILURE_KINDS

    rows = "".join(f"<tr><td>{kind}</td><td>{summary.get(kind, '–')}</td><td class='muted'>{html.escape(meaning)}</td></tr>"
                   for kind, meaning in FAILURE_KINDS.items())
    trust = summary.get("trust_score")
    from rag.quality.evaluate import WRONG_SHOWN_KINDS

    wrong = ", ".join(f"{summary.get(kind, 0)} {kind}" for kind in WRONG_SHOWN_KINDS)
    return (f"<p>answered precision <b>{_value(summary.get('answered_precision'))}</b>: of "
            f"{summary.get('answers_shown', '–')} answers shown, {summary.get('wrong_shown', '–')} wrong ({wrong}); "
            f"correct {_value(summary.get('correct'))}, unanswerable refused {_value(summary.get('refused_unanswerable'))}"
            f"</p><p>trust score <b>{_value(trust)}</b> (answer F1 {summary.get('answer_f1')}, "
            f"refusal F1 {summary.get('refusal_f1')})</p><table><tr><th>failure kind</th><th>questions</th>"
            f"<th>meaning</th></tr>{rows}</table>")


def _value(value) -> str:
    return "–" if value is None else str(value)


def _settings_text(settings: dict) -> str:
    return "\n".join(f"{k} = {v}" for k, v in sorted(settings.items()))
