"""Why an answer came out as it did: the whole trace of one question, for staff.

``trace(answer)`` gathers what each stage did — the candidates with their dense and BM25 ranks
and scores in fused order, what the model was shown (and its token count), the model's raw reply,
the checker's decision for every sentence (kept, with its passage and support; or dropped, and
why), the answer-level checks and the timings — from the ``Answer`` alone: the checker is
deterministic, so it is re-run on the stored reply rather than instrumented. `rag ask --explain`
prints it, evaluation runs store it per question (so ``--compare`` can say why a question
flipped), and the Evaluate tab shows it.
"""

from __future__ import annotations

from dataclasses import asdict

from rag.answer.citations import answers_kind, check_answer, expected_kinds, holds_question_years, is_refusal
from rag.answer.context import estimate_tokens
from rag.answer.prompt import format_passages
from rag.schema import Answer, page_label


def trace(answer: Answer) -> dict:
    passages, question, output = answer.contexts, answer.question, answer.model_output or ""
    checked = check_answer(output, passages, question) if output else []
    kept = [s for s in checked if s.supported and not is_refusal(s.text)]
    kinds = expected_kinds(question)
    kept_text = " ".join(s.text for s in kept)
    missing_kinds = [kind for kind in kinds if not answers_kind(kind, kept_text, question)] if kept else []
    cited = [passages[n - 1] for s in kept for n in s.cites if n <= len(passages)]
    years_held = holds_question_years(question, passages, cited) if kept else True
    prompt = format_passages(passages) if passages else ""
    return {
        "question": question,
        "route": answer.route or {"kind": answer.kind, "why": ""},
        "searched_for": answer.rewritten_question or "",
        "timeframe": answer.timeframe,
        "decision": _decision(answer, output, checked, kept, missing_kinds, years_held),
        "ranking": answer.ranking or [],
        "prompt": prompt,
        "prompt_tokens": answer.prompt_tokens or estimate_tokens(prompt),
        "prompt_tokens_counted_by": "model" if answer.prompt_tokens else "estimate",
        "model_output": output,
        "sentences": [asdict(s) for s in checked],
        "expected_kinds": sorted(kinds),
        "missing_kinds": missing_kinds,
        "years_held": years_held,
        "refusal_probability": answer.refusal_probability,
        "timings": {k: round(v, 1) for k, v in answer.timings.items()},
        "llm": answer.llm,
    }


def _decision(answer: Answer, output: str, checked, kept, missing_kinds, years_held) -> str:
    if answer.kind != "answer":
        return (f"{answer.kind}: {len(answer.citations)} passages cited, from {answer.llm} "
                "(no model call while answering)")
    if not answer.refused:
        return f"answered: {len(kept)} of {len(checked)} sentences kept"
    if not output:
        return "refused before asking the model: no passage was similar enough to the question"
    if checked and is_refusal(checked[0].text):
        return "refused by the model: it said the passages do not answer the question"
    if not kept:
        return "refused: no sentence of the model's reply is supported by a passage"
    if missing_kinds:
        return f"refused: the question asks for a {' and a '.join(missing_kinds)} and the kept sentences give none"
    if not years_held:
        return "refused: the year the question names is not in the passages the answer cites"
    p = answer.refusal_probability
    return (f"refused: the model nearly withheld the answer (P(refuse) = {p:.2f})" if p is not None
            else "refused")


def format_trace(t: dict) -> str:
    """The trace as text for a terminal (`rag ask --explain`) or a <pre> block."""
    route = t.get("route") or {}
    lines = [f"ROUTE  {route.get('kind', 'answer')}: {route.get('why') or '-'}", f"DECISION  {t['decision']}"]
    if t.get("searched_for"):
        lines.append(f"searched for: {t['searched_for']}")
    if t.get("timeframe"):
        tf = t["timeframe"]
        lines.append(f"period: {tf.get('label')} ({'applied' if tf.get('applied') else tf.get('note', 'dropped')})")
    lines += ["", "RETRIEVAL  fused order (dense rank / cosine, BM25 rank / score)"]
    for n, c in enumerate(t["ranking"], 1):
        dense = f"{c['dense_rank']:>3} / {c['dense_score']:.3f}" if c.get("dense_rank") else "  - /   -  "
        bm25 = f"{c['bm25_rank']:>3} / {c['bm25_score']:.2f}" if c.get("bm25_rank") else "  - / -"
        pages = f" ({page_label(c['page'], c.get('page_end') or 0)})" if c.get("page") else ""
        lines.append(f"  {n:>2}. fused {c['fused'] or 0:.4f}  dense {dense}  bm25 {bm25}  {c['doc_id']}{pages}: "
                     f"{c['title'][:50]}")
    lines += ["", f"PROMPT  {t['prompt_tokens']} tokens ({t['prompt_tokens_counted_by']})", t["prompt"] or "  (no passages)",
              "", "MODEL OUTPUT", f"  {t['model_output']!r}" if t["model_output"] else "  (the model was not asked)",
              "", "CHECKER"]
    for s in t["sentences"]:
        verdict = f"kept, cites {s['cites']} (support {s['support']:.2f})" if s["supported"] else f"dropped: {s['reason']}"
        lines.append(f"  - {s['text'][:120]!r}\n      {verdict}")
    if t["expected_kinds"]:
        missing = f"; missing: {', '.join(t['missing_kinds'])}" if t["missing_kinds"] else ""
        lines.append(f"  question asks for: {', '.join(t['expected_kinds'])}{missing}")
    if not t["years_held"]:
        lines.append("  the question's year is not in the cited passages")
    if t.get("refusal_probability") is not None:
        lines.append(f"  P(refuse) at the first token: {t['refusal_probability']:.2f}")
    lines += ["", "TIMINGS  " + "  ".join(f"{k} {v:g}" for k, v in t["timings"].items()) + f"  ({t['llm']})"]
    return "\n".join(lines)
