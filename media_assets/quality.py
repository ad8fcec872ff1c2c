"""Quality scores used by the benchmarks: shingle F1 for extracted text (as in the
article-extraction benchmark)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

TOKEN = re.compile(r"\w+")
SHINGLE = 4


def shingles(text: str, size: int = SHINGLE) -> Counter[tuple[str, ...]]:
    tokens = TOKEN.findall(text)
    return Counter(tuple(tokens[i : i + size]) for i in range(max(len(tokens) - size + 1, 1)))


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def page_scores(predicted: str, reference: str) -> tuple[float, float]:
    """Per-page precision and recall of 4-token shingles (with counts)."""
    pred, ref = shingles(predicted), shingles(reference)
    tp = sum((pred & ref).values())
    fp = sum(pred.values()) - tp
    fn = sum(ref.values()) - tp
    precision = tp / (tp + fp) if tp + fp else (1.0 if not ref else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def shingle_f1(pairs: Iterable[tuple[str, str]]) -> PRF:
    """Precision and recall averaged over pages; F1 from the two averages."""
    scores = [page_scores(pred, ref) for pred, ref in pairs]
    if not scores:
        return PRF(0.0, 0.0)
    return PRF(sum(p for p, _ in scores) / len(scores), sum(r for _, r in scores) / len(scores))
