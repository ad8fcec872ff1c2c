"""Quality scores used by the benchmarks and quality tests: shingle F1 for extracted text (as in
the article-extraction benchmark), and passage hits for search results."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class RetrievalScores:
    """Per-query hit rates averaged over queries, as in ../shared/eval/SOURCES.md."""

    queries: int
    page_hit5: float
    passage_hit1: float
    passage_hit5: float
    mrr10: float


def holds_passage(text: str, answer: str, coverage: float = 0.8, run: int = 6) -> bool:
    """Whether ``text`` holds the answer passage: at least ``coverage`` of its words, and ``run``
    of them in order (the whole answer when it is shorter), compared lower-cased."""
    words = [w.lower() for w in TOKEN.findall(answer)]
    if not words:
        return False
    tokens = [t.lower() for t in TOKEN.findall(text)]
    present = set(tokens)
    if sum(w in present for w in words) < coverage * len(words):
        return False
    n = min(run, len(words))
    runs = {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
    return any(tuple(words[i : i + n]) in runs for i in range(len(words) - n + 1))


def retrieval_scores(
    rankings: Iterable[tuple[Sequence[tuple[str, str]], str, str]],
) -> RetrievalScores:
    """Scores of ranked results, one ``(results, page, answer)`` per query; ``results`` are
    ``(page, chunk text)`` best first. A passage hit is a result from ``page`` holding
    ``answer``; MRR@10 counts the first such hit in the top 10."""
    page5 = hit1 = hit5 = rr = 0.0
    count = 0
    for results, page, answer in rankings:
        count += 1
        page5 += any(p == page for p, _ in results[:5])
        rank = next(
            (
                i
                for i, (p, text) in enumerate(results[:10], start=1)
                if p == page and holds_passage(text, answer)
            ),
            None,
        )
        if rank is not None:
            hit1 += rank == 1
            hit5 += rank <= 5
            rr += 1.0 / rank
    n = max(count, 1)
    return RetrievalScores(count, page5 / n, hit1 / n, hit5 / n, rr / n)
