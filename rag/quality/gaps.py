"""What readers asked that the articles could not answer, grouped by meaning: the product's failure
log and the newsroom's list of articles to write (``python -m rag gaps``, the Evaluate tab).

The kept questions (``rag.web.feedback.UnansweredLog`` rows) are embedded with the index's own
embedding model and grouped by scikit-learn's agglomerative clustering on cosine distance (average
linkage, a distance threshold instead of a number of groups): differently worded questions about
one missing topic land together. Each group gives its count, a representative question (the one
nearest the group's centre), when it was first and last asked, the closest article and why its
questions were refused.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime

from langchain_core.embeddings import Embeddings

# Cosine distance under which questions join a group (average linkage), measured on all-MiniLM-L6-v2:
# rewordings of one question sat at 0.03-0.38, different questions about one article at 0.55 and beyond.
DISTANCE_THRESHOLD = 0.5


@dataclass
class Gap:
    count: int
    representative: str
    representative_id: int  # the id staff dismiss the group by
    first_seen: str
    last_seen: str
    closest_article: str
    refusal_kinds: dict[str, int]
    questions: list[dict] = field(default_factory=list)  # {"id", "question", "asked_at"}, oldest first


def group_questions(rows: list[dict], embeddings: Embeddings, threshold: float = DISTANCE_THRESHOLD) -> list[Gap]:
    """Group ``rows`` (id, question, asked_at, kind, closest_doc, closest_title) by meaning; largest
    group first, then the most recently asked."""
    if not rows:
        return []
    import numpy as np

    # Vectors stored when each question was logged; only older rows (logged before) are embedded now.
    missing = [i for i, r in enumerate(rows) if not r.get("embedding")]
    fresh = dict(zip(missing, embeddings.embed_documents([rows[i]["question"] for i in missing]), strict=True)) \
        if missing else {}
    vectors = np.array([fresh[i] if i in fresh else json.loads(r["embedding"]) for i, r in enumerate(rows)], dtype=float)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    if len(rows) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=threshold).fit_predict(vectors)
    gaps = []
    for label in sorted(set(labels.tolist())):
        members = [i for i, own in enumerate(labels) if own == label]
        centre = vectors[members].mean(axis=0)
        nearest = max(members, key=lambda i: float(vectors[i] @ centre))
        group = [rows[i] for i in members]
        articles = Counter(r["closest_title"] or r["closest_doc"] for r in group if r["closest_doc"])
        gaps.append(Gap(count=len(group), representative=rows[nearest]["question"],
                        representative_id=int(rows[nearest]["id"]),
                        first_seen=min(r["asked_at"] for r in group), last_seen=max(r["asked_at"] for r in group),
                        closest_article=articles.most_common(1)[0][0] if articles else "",
                        refusal_kinds=dict(Counter(r["kind"] for r in group)),
                        questions=[{"id": int(r["id"]), "question": r["question"], "asked_at": r["asked_at"]}
                                   for r in group]))
    gaps.sort(key=lambda g: g.last_seen, reverse=True)
    return sorted(gaps, key=lambda g: g.count, reverse=True)  # stable: the most recent first among equals


def gaps_json(gaps: list[Gap]) -> str:
    return json.dumps({"groups": [asdict(g) for g in gaps]}, ensure_ascii=False)


def as_question_set(gaps: list[Gap]) -> str:
    """The grouped questions as an evaluation set (JSONL, ``answerable: false``): each stays a
    question the articles do not answer until staff write the article and edit the line."""
    lines = []
    for number, gap in enumerate(gaps, 1):
        for n, question in enumerate(gap.questions, 1):
            lines.append(json.dumps({"id": f"gap-{number}-{n}", "question": question["question"], "answerable": False,
                                     "group": number, "asked_at": question["asked_at"]}, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")


def weekly_counts(gaps: list[Gap]) -> list[tuple[str, int]]:
    """(ISO week "2026-W48", questions kept) for every week with a kept question, in order."""
    weeks: Counter[str] = Counter()
    for gap in gaps:
        for question in gap.questions:
            year, week, _ = datetime.fromisoformat(question["asked_at"]).isocalendar()
            weeks[f"{year}-W{week:02d}"] += 1
    return sorted(weeks.items())


def weekly_plot_png(gaps: list[Gap]) -> bytes:
    """A bar chart of ``weekly_counts`` (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weeks = weekly_counts(gaps)
    figure, axes = plt.subplots(figsize=(7, 2.6), dpi=100)
    axes.bar([w for w, _ in weeks], [n for _, n in weeks], color="#d97706")
    axes.set_ylabel("questions not answered")
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
