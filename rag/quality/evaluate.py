"""Evaluation: run a question set through the pipeline and score it.

Question-set format: ``../shared/eval/README.md`` (README "Measuring answer quality"). Metrics:

- evidence hit@1/3/5 and MRR — over ``contexts``, i.e. what the model was shown of each; a context hits
  when it contains one of the ``evidence`` strings (compared after collapsing whitespace and
  dropping HTML tags, ``*`` and backticks on both sides, case-insensitively);
- correct — answerable questions answered (not refused) with every ``answer_must_include`` group;
- refused — unanswerable questions refused; false refusals — answerable questions refused;
- citation precision — of the (sentence, cited passage) pairs in an answer, the share whose
  passage contains the evidence or supports the sentence (at least half of the sentence's content
  words, question words aside, appear in the passage: the same judge-free test the answer step
  uses); citation coverage — the share of answer sentences that carry a citation;
- latency p50/p95 of retrieve, first token and total;
- failure kinds (``failure_kind``): what went wrong with each question that went wrong, so a
  retrieval miss is never mistaken for an answering fault and vice versa;
- answered precision — of the answers a reader was shown (not refused, unanswerable questions
  included), the share that were right: what the product is judged by ("every answer shown is
  right"); ``wrong_shown`` counts the others, by failure kind;
- trust score — the mean of the F1 of answering correctly and the F1 of refusing correctly (as in
  Trust-Score, Song et al. 2024): a system that refuses everything, or answers everything, scores low.
  The answering F1's precision is the answered precision.
- whole-article questions (rows with ``kind``: summary, comparison, digest) — key-point coverage:
  the share of ``key_points`` (each a list of alternatives) found in the answer, 0 for a refusal;
  sources cited: the share of ``sources`` the answer cites (digests); the checker's verdict on
  every point the answer shows, re-checked here against the passage it cites; all reported per kind.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.answer.pipeline import Pipeline
from rag.schema import Answer


class QuestionSetError(ValueError):
    pass


def load_question_set(path: Path) -> list[dict]:
    """Read a JSONL question set; every line needs ``id`` and ``question``; other keys are kept."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionSetError(f"cannot read question set {path}: {exc}") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionSetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or "question" not in row or "id" not in row:
            raise QuestionSetError(f"{path}:{number}: each line needs at least \"id\" and \"question\"")
        rows.append(row)
    return rows


_TAGS = re.compile(r"<[^>]+>")


def normalise(text: str) -> str:
    text = _TAGS.sub("", text).replace("*", "").replace("`", "")
    return " ".join(text.split()).lower()


def evidence_rank(contexts: list[str], evidence: list[str]) -> int | None:
    """1-based rank of the first context containing any evidence string; None if none does."""
    wanted = [normalise(e) for e in evidence if normalise(e)]
    for rank, context in enumerate(contexts, 1):
        text = normalise(context)
        if any(e in text for e in wanted):
            return rank
    return None


def contains_required(answer: str, groups: list[list[str]]) -> bool:
    text = answer.lower()
    return all(any(alt.lower() in text for alt in group) for group in groups)


FAILURE_KINDS = {
    "off_target": "answered but wrong, with the evidence among the passages",
    "wrong_unretrieved": "answered but wrong; the evidence was not retrieved",
    "refused_with_evidence": "refused, with the evidence among the passages",
    "refused_unretrieved": "refused; the evidence was not retrieved",
    "unanswerable_answered": "answered a question the articles do not answer",
}


def failure_kind(answerable: bool | None, refused: bool, correct: bool | None, evidence_rank: int | None,
                 error: str = "") -> str | None:
    """Which of ``FAILURE_KINDS`` a question's outcome is (None: it went right, or cannot be told)."""
    if error:
        return None
    if answerable is False:
        return None if refused else "unanswerable_answered"
    if not answerable:
        return None
    retrieved = evidence_rank is not None
    if refused:
        return "refused_with_evidence" if retrieved else "refused_unretrieved"
    if correct is False:
        return "off_target" if retrieved else "wrong_unretrieved"
    return None


@dataclass
class QuestionResult:
    id: str
    question: str
    answerable: bool | None
    answer: str
    refused: bool
    evidence_rank: int | None
    correct: bool | None  # None when the set gives no required groups
    citations: list[dict] = field(default_factory=list)
    contexts: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    llm: str = ""
    error: str = ""
    citation_precision: float | None = None
    citation_coverage: float | None = None
    failure: str | None = None  # a key of FAILURE_KINDS
    model_output: str = ""  # the model's raw reply, before the checker
    prompt_tokens: int | None = None
    refusal_probability: float | None = None
    trace: dict | None = None  # rag.answer.explain.trace: why it answered or refused
    kind: str = "fact"  # the question set's kind (summary, comparison, digest, fact)
    answer_kind: str = "answer"  # the route the answer took (Answer.kind)
    key_point_coverage: float | None = None
    sources_cited: float | None = None
    point_verdicts: list[dict] = field(default_factory=list)  # each shown point: checker-supported?


def score(row: dict, answer: Answer) -> QuestionResult:
    from rag.answer.explain import trace

    answerable = row.get("answerable")
    evidence = row.get("evidence") or []
    rank = evidence_rank([c.shown or c.text for c in answer.contexts], evidence) if evidence else None
    groups = row.get("answer_must_include")
    correct = None
    if answerable and groups:
        correct = not answer.refused and contains_required(answer.answer, groups)
    data = answer.to_json()
    precision, coverage = citation_quality(answer, evidence) if not answer.refused else (None, None)
    overview = overview_scores(row, answer)
    return QuestionResult(**overview, id=str(row["id"]), question=row["question"], answerable=answerable, answer=answer.answer,
                          refused=answer.refused, evidence_rank=rank, correct=correct, citations=data["citations"],
                          contexts=data["contexts"], timings=data["timings"], llm=answer.llm,
                          citation_precision=precision, citation_coverage=coverage,
                          failure=failure_kind(answerable, answer.refused, correct, rank),
                          model_output=answer.model_output or "", prompt_tokens=answer.prompt_tokens,
                          refusal_probability=answer.refusal_probability, trace=trace(answer))


def overview_scores(row: dict, answer: Answer) -> dict:
    """Key-point coverage, sources cited and per-point verdicts (see the module docstring)."""
    from rag.answer.citations import check_answer

    scores: dict = {"kind": row.get("kind") or "fact", "answer_kind": answer.kind}
    points = row.get("key_points") or []
    if points:
        text = "" if answer.refused else normalise(answer.answer)
        found = sum(1 for alternatives in points if any(normalise(a) in text for a in alternatives))
        scores["key_point_coverage"] = round(found / len(points), 3)
    wanted = row.get("sources") or []
    if wanted:
        cited = {c.doc_id for c in answer.citations}
        hit = sum(1 for s in wanted if any(d == s or d.startswith(f"{s}_") for d in cited))
        scores["sources_cited"] = round(hit / len(wanted), 3)
    if answer.kind != "answer" and not answer.refused:
        from rag.schema import Passage

        # Every passage the answer cites, numbered as the answer numbers them; each point checked alone.
        passages = [Passage(chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, text=c.text)
                    for c in sorted(answer.citations, key=lambda c: c.n)]
        verdicts = []
        for point in answer.points or []:
            marked = point["text"] + "".join(f" [{n}]" for n in point["cites"])
            checked = check_answer(marked, passages, "")
            verdicts.append({"point": point["text"][:300],
                             "supported": bool(checked) and all(c.supported for c in checked),
                             "support": min((c.support for c in checked), default=0.0)})
        scores["point_verdicts"] = verdicts
    return scores


def citation_quality(answer: Answer, evidence: list[str]) -> tuple[float | None, float | None]:
    """(precision, coverage) of an answer's citations; see the module docstring."""
    from rag.answer.citations import MARKER, content_terms, split_sentences, support

    by_n = {c.n: c for c in answer.citations}
    question_terms = content_terms(answer.question)
    wanted = [normalise(e) for e in evidence if normalise(e)]
    pairs = good = cited_sentences = 0
    sentences = split_sentences(answer.answer)
    for sentence in sentences:
        numbers = [int(n) for group in MARKER.findall(sentence) for n in re.findall(r"\d+", group)]
        if numbers:
            cited_sentences += 1
        terms = content_terms(MARKER.sub("", sentence)) - question_terms
        for n in numbers:
            citation = by_n.get(n)
            pairs += 1
            if citation and (any(e in normalise(citation.text) for e in wanted)
                             or support(terms, content_terms(citation.text)) >= 0.5):
                good += 1
    precision = round(good / pairs, 3) if pairs else None
    coverage = round(cited_sentences / len(sentences), 3) if sentences else None
    return precision, coverage


def run(pipeline: Pipeline, rows: list[dict],
        progress: Callable[[Iterable[dict]], Iterable[dict]] | None = None) -> list[QuestionResult]:
    results = []
    for row in progress(rows) if progress else rows:
        try:
            results.append(score(row, pipeline.ask(row["question"], id=str(row["id"]))))
        except Exception as exc:  # one broken question must not sink the run; it is reported
            results.append(QuestionResult(id=str(row["id"]), question=str(row.get("question")),
                                          answerable=row.get("answerable"), answer="", refused=False,
                                          evidence_rank=None, correct=False if row.get("answerable") else None,
                                          error=f"{type(exc).__name__}: {exc}"))
    return results


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(results: list[QuestionResult]) -> dict:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if r.answerable is False]
    with_evidence = [r for r in answerable if r.evidence_rank is not None or r.contexts]
    judged = [r for r in answerable if r.correct is not None]

    def share(items: list, predicate) -> float | None:
        return round(sum(1 for i in items if predicate(i)) / len(items), 3) if items else None

    summary = {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "errors": sum(1 for r in results if r.error),
        **{f"hit@{k}": share(with_evidence, lambda r, k=k: r.evidence_rank is not None and r.evidence_rank <= k)
           for k in (1, 3, 5)},
        "mrr": round(sum(1 / r.evidence_rank for r in with_evidence if r.evidence_rank) / len(with_evidence), 3)
        if with_evidence else None,
        "correct": share(judged, lambda r: r.correct),
        **answered_precision(results),
        "refused_unanswerable": share(unanswerable, lambda r: r.refused),
        "false_refusals": sum(1 for r in answerable if r.refused),
        "citation_precision": _mean([r.citation_precision for r in results]),
        "citation_coverage": _mean([r.citation_coverage for r in results]),
        **trust_scores(results),
        **{kind: sum(1 for r in results if r.failure == kind) for kind in FAILURE_KINDS},
    }
    for key in ("retrieve_ms", "first_token_ms", "total_ms"):
        values = [r.timings[key] for r in results if key in r.timings]
        summary[f"{key}_p50"] = _round(percentile(values, 50))
        summary[f"{key}_p95"] = _round(percentile(values, 95))
    prompt_tokens = [r.prompt_tokens for r in results if r.prompt_tokens]
    summary["prompt_tokens_p50"] = _round(percentile(prompt_tokens, 50))
    if by_kind := kind_scores(results):
        summary["by_kind"] = by_kind
    return summary


def kind_scores(results: list[QuestionResult]) -> dict:
    """Per question kind, when the set has whole-article questions: how many, key-point coverage,
    sources cited, refused, points shown that pass the checker, first-token p50."""
    kinds = sorted({r.kind for r in results})
    if kinds == ["fact"]:
        return {}
    table = {}
    for kind in kinds:
        rows = [r for r in results if r.kind == kind]
        verdicts = [v for r in rows for v in r.point_verdicts]
        table[kind] = {
            "questions": len(rows),
            "key_point_coverage": _mean([r.key_point_coverage for r in rows]),
            "sources_cited": _mean([r.sources_cited for r in rows]),
            "refused": round(sum(1 for r in rows if r.refused) / len(rows), 3),
            "routed_as": {k: sum(1 for r in rows if r.answer_kind == k) for k in sorted({r.answer_kind for r in rows})},
            "points_checked_ok": round(sum(v["supported"] for v in verdicts) / len(verdicts), 3) if verdicts else None,
            "first_token_ms_p50": _round(percentile([r.timings["first_token_ms"] for r in rows
                                                     if "first_token_ms" in r.timings], 50)),
        }
    return table


WRONG_SHOWN_KINDS = ("off_target", "wrong_unretrieved", "unanswerable_answered")


def answered_precision(results: list[QuestionResult]) -> dict:
    """Of the answers shown (not refused, no error; answerable questions without required groups
    left out, as they cannot be judged), the share that were right, and the wrong ones by kind."""
    shown = [r for r in results if not r.error and not r.refused and not (r.answerable and r.correct is None)]
    right = sum(1 for r in shown if r.answerable and r.correct)
    return {"answered_precision": round(right / len(shown), 3) if shown else None, "answers_shown": len(shown),
            "wrong_shown": len(shown) - right}


def trust_scores(results: list[QuestionResult]) -> dict:
    """F1 of answering correctly, F1 of refusing correctly, and their mean (the trust score).

    Answering: precision = correct answers / questions answered, recall = correct answers /
    answerable questions. Refusing: precision = unanswerable questions refused / questions refused,
    recall = unanswerable questions refused / unanswerable questions. Questions that errored count
    as neither answered nor refused; answerable questions with no required groups are left out."""
    usable = [r for r in results if not r.error and not (r.answerable and r.correct is None)]
    answered = [r for r in usable if not r.refused]
    refused = [r for r in usable if r.refused]
    correct = sum(1 for r in answered if r.answerable and r.correct)
    refused_right = sum(1 for r in refused if r.answerable is False)
    answerable = sum(1 for r in results if r.answerable and r.correct is not None)
    unanswerable = sum(1 for r in results if r.answerable is False)
    answer_f1 = _f1(correct, len(answered), answerable)
    refusal_f1 = _f1(refused_right, len(refused), unanswerable)
    present = [f for f in (answer_f1, refusal_f1) if f is not None]
    return {"answer_f1": answer_f1, "refusal_f1": refusal_f1,
            "trust_score": round(sum(present) / len(present), 3) if present else None}


def _f1(hits: int, predicted: int, actual: int) -> float | None:
    if not actual:
        return None
    precision = hits / predicted if predicted else 0.0
    recall = hits / actual
    return round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 3) if present else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def format_report(summary: dict, results: list[QuestionResult]) -> str:
    lines = [f"{'id':<12} {'ans?':<5} {'rank':<5} {'ok':<5} {'refused':<8} {'failure':<22} answer"]
    for r in results:
        ok = "-" if r.correct is None else ("yes" if r.correct else "NO")
        answer = (r.error or r.answer).replace("\n", " ")
        lines.append(f"{r.id:<12} {str(r.answerable):<5} {str(r.evidence_rank or '-'):<5} {ok:<5} "
                     f"{str(r.refused):<8} {r.failure or '':<22} {answer[:100]}")
    lines.append("")
    for key, value in summary.items():
        if key != "by_kind":
            lines.append(f"{key:<22} {value}")
    for kind, scores in summary.get("by_kind", {}).items():
        lines.append(f"{'kind ' + kind:<22} " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    return "\n".join(lines)


def results_json(summary: dict, results: list[QuestionResult]) -> dict:
    return {"summary": summary, "results": [asdict(r) for r in results]}


JUDGE_PROMPTS = {
    "faithfulness": "Passages:\n{passages}\n\nAnswer: {answer}\n\nIs every claim in the answer supported by the "
                    "passages? Reply with one word: YES or NO.",
    "relevancy": "Question: {question}\n\nAnswer: {answer}\n\nDoes the answer address the question? Reply with one "
                 "word: YES or NO.",
}


def judge(results: list[QuestionResult], chat_model) -> dict:
    """Optional LLM-as-judge scores (model-judged, so labelled as such): share of answered questions
    the judge calls faithful to their passages, and relevant to their question."""
    from langchain_core.output_parsers import StrOutputParser

    chain = chat_model | StrOutputParser()
    votes: dict[str, list[bool]] = {name: [] for name in JUDGE_PROMPTS}
    for result in results:
        if result.refused or result.error:
            continue
        passages = "\n".join(f"[{i}] {c['text']}" for i, c in enumerate(result.contexts, 1))
        for name, template in JUDGE_PROMPTS.items():
            reply = chain.invoke(template.format(passages=passages, answer=result.answer, question=result.question))
            votes[name].append(reply.strip().upper().startswith("YES"))
    return {f"judge_{name} (model-judged)": round(sum(v) / len(v), 3) if v else None for name, v in votes.items()}
