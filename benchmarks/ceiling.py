"""How well can the answering model do if retrieval were perfect? (a ceiling for `rag eval`'s *correct*)

    RAG_DATA_DIR=<index of the set's corpus> python benchmarks/ceiling.py QUESTIONS.jsonl [--no-baseline]

Asks every answerable question of a set twice, on the same index and model, in this one run:
- **as shipped** (the baseline): the pipeline exactly as `rag ask` runs it;
- **with the evidence guaranteed**: the same pipeline, except that when none of the sentences
  chosen for the prompt holds the question's ``evidence``, the sentence that does is added as one
  more passage (taken from the retrieved candidates, else found with the lexical index).

The second number is about what retrieval that never missed would bring *correct* to, with this
model and prompt. The gap between the two is retrieval's share of the misses; the gap between the
second and 1.0 is the model's reading (how the evidence is presented can still move it a little). Prints both, with how many prompts
already held the evidence and how the model did on those. The same prompt can be answered a little
differently in the two passes (the second reuses llama.cpp's cached prefill, which is not
bit-identical), so compare the passes over a set, not question by question. Unanswerable questions are skipped (there
is no evidence to guarantee). Needs an index built with `python -m rag index` of the set's corpus.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.answer.context import passage_sentences  # noqa: E402
from rag.answer.pipeline import Pipeline  # noqa: E402
from rag.answer.retrieve import to_passage  # noqa: E402
from rag.ingest.progress import progress_over  # noqa: E402
from rag.quality.evaluate import evidence_rank, load_question_set, normalise, run, summarize  # noqa: E402
from rag.schema import Passage  # noqa: E402


class EvidenceGuaranteed(Pipeline):
    """The shipped pipeline, plus the question's evidence sentence when the prompt lacks it."""

    def __init__(self, *args, evidence: dict[str, list[str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.evidence_of = evidence  # question id -> its evidence strings
        self.held: dict[str, bool] = {}  # question id -> did the first prompt already hold the evidence?
        self.current = ""  # the id of the question being asked

    @property
    def evidence(self) -> list[str]:
        return self.evidence_of.get(self.current, [])

    def ask(self, question: str, filters=None, id: str | None = None, infer_dates: bool | None = None):
        self.current = id or ""
        return super().ask(question, filters, id, infer_dates)

    def choose_passages(self, question: str, candidates: list[Passage], parts: list[str] | None = None) -> list[Passage]:
        shown = super().choose_passages(question, candidates, parts)
        held = bool(evidence_rank([p.shown or p.text for p in shown], self.evidence))
        self.held.setdefault(self.current, held)  # a period question's fall-back asks twice: the first counts
        if held:
            return shown
        gold = self.evidence_sentence(candidates)
        if gold is None:
            return shown
        return [*shown[: self.settings.top_k - 1], gold]

    def evidence_sentence(self, candidates: list[Passage]) -> Passage | None:
        wanted = [normalise(e) for e in self.evidence if normalise(e)]
        pool = list(candidates)
        for phrase in self.evidence:  # not retrieved: find the chunk that holds it
            hits = self.retriever.lexical.search(" ".join(phrase.split()[:10]), 10)
            if hits:
                with self.retriever.live.reading() as store:
                    pool += [to_passage(d) for d in store.get_by_ids([chunk_id for chunk_id, _ in hits])]
        for passage in pool:
            for sentence in passage_sentences(passage.text):
                text = normalise(sentence)
                if any(w in text or (len(text) > 30 and text in w) for w in wanted):
                    return replace(passage, shown=sentence)
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--no-baseline", action="store_true", help="skip the as-shipped run")
    args = parser.parse_args()

    from rag.components import Components
    from rag.settings import Settings

    rows = [row for row in load_question_set(args.questions) if row.get("answerable") and row.get("evidence")]
    parts = Components(Settings())
    shipped = parts.pipeline
    guaranteed = EvidenceGuaranteed(shipped.settings, shipped.retriever, shipped.generator, shipped.fallback,
                                    evidence={str(r["id"]): r["evidence"] for r in rows})
    guaranteed.sentence_vectors = shipped.sentence_vectors  # one model, one cache of sentence vectors

    print(f"{args.questions.name}: {len(rows)} answerable questions, {shipped.generator.name}")
    if not args.no_baseline:
        baseline = summarize(run(shipped, rows, progress_over(len(rows), "as shipped", "questions")))
        print(f"  as shipped:            correct {baseline['correct']:.3f}  false refusals "
              f"{baseline['false_refusals']}  first token p50 {baseline['first_token_ms_p50'] / 1000:.1f} s")
    results = run(guaranteed, rows, progress_over(len(rows), "evidence guaranteed", "questions"))
    summary = summarize(results)
    # No first-token time here: llama.cpp's prompt cache still holds most of these prompts from the
    # first pass, so it would measure the cache, not the model.
    print(f"  evidence guaranteed:   correct {summary['correct']:.3f}  false refusals {summary['false_refusals']}")
    had = [r for r in results if guaranteed.held.get(r.id)]
    added = [r for r in results if r.id in guaranteed.held and not guaranteed.held[r.id]]
    print(f"    prompts that already held the evidence: {len(had)} of {len(results)}, answered correctly "
          f"{sum(bool(r.correct) for r in had)}; evidence added to {len(added)}, answered correctly "
          f"{sum(bool(r.correct) for r in added)}")
    tokens = [r.prompt_tokens for r in results if r.prompt_tokens]
    if tokens:
        print(f"    prompt tokens p50 {statistics.median(tokens):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
