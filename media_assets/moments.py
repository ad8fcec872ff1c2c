"""Moment search: the stretches of video where everything a query asks holds in the same bucket —
something said, something on screen, someone speaking — ranked, with their range and a ``#t=``
link.

How a query is answered:

1. Candidates: the index's best buckets for each condition (words of the spoken sentence and
   nearest sentence vectors for ``said``, character n-grams for ``on_screen``, names for
   ``speaker``).
2. Every candidate is scored on every condition here, the same way whatever the backend:
   ``said`` by meaning and words (numbers as digits, light stems, near forms of misheard words)
   over the sentence spoken in the bucket; ``on_screen`` by fuzzy alignment with each text read
   there, worth less where the text may not yet (or no longer) be on screen; ``speaker`` by name.
   A bucket matches when every condition given holds in it (intersection).
3. Adjacent matching buckets form a run; a run is completed from the index where its edge
   buckets still match, then cut to the buckets near its best one on the leading condition
   (``said`` when given, else ``on_screen``, else ``speaker``), so two sentences side by side
   that both mention a word do not blur into one moment unless both match about as well.
4. A moment's range is where its leading condition's evidence lies (the spoken sentence, the
   time the text was on screen, the speaker's turn), inside its buckets; its score is the mean
   of its conditions' best scores.
5. When no bucket holds ``said`` above its floor together with the other conditions, ``said``
   only ranks the buckets where the others hold, and the moments say ``relaxed``.

``entity`` holds in a bucket where a name said (in its sentence) or shown there, found by spaCy
(``media_assets/enrich.py``), holds the query's words in a row: "curie" finds "Marie Curie".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import numpy as np

from media_assets.enrich import entity_key
from media_assets.video.chunk import deep_link
from media_assets.video.terms import normalize, on_screen_similarity, term_coverage, terms
from resources.embedder import Embedder
from resources.moments_index import Candidate, MomentsIndex, TextField

# Weight of meaning against words for ``said``: a paraphrase shares few words, a recognition
# error breaks a word but not the sentence's meaning.
SAID_SEMANTIC_WEIGHT = 0.5
# ``said`` holds in a bucket whose sentence scores at least this (MiniLM cosine of a short phrase
# with an unrelated sentence of the same talk is ~0.1-0.3; a phrase found word for word scores
# 0.5 + half its cosine).
SAID_FLOOR = 0.3
# ``on_screen`` holds where a text read there aligns with the query this well (rapidfuzz, 0..1):
# one or two misread letters in a short phrase still pass.
ON_SCREEN_FLOOR = 0.8
# Within a run of matching buckets, a moment keeps the buckets whose leading score is at least this
# share of the run's best.
PEAK_SHARE = 0.8
# What overlaps a moment by less than this is not shown as on screen or speaking in it.
GLIMPSE_S = 0.5
# Candidates each retrieval brings, and how many buckets a run is completed by per fetch.
POOL = 300
GROW = 30
NEAR = 5  # the first fetch beside each run: most end within a few buckets of the candidates
MAX_GROW = 1800  # half an hour of 1 s buckets on either side
# The columns a bucket is first judged by, for each condition. A row's annotations (every model's
# output, most of its bytes) are read only for the buckets that may hold every condition, and the
# rest of it (its links) for the moments returned: at 1M rows, reading is most of a query.
SCORED_BY: dict[str, tuple[str, ...]] = {
    "said": ("context", "said_terms", "context_start_s", "context_end_s", "vector"),
    "on_screen": ("on_screen",),
    "speaker": ("speaker_names",),
    "entity": ("entity_terms",),
}
SHOWN = ("source_url", "title", "extractor", "context", "annotations")


@dataclass(frozen=True)
class MomentQuery:
    said: str | None = None
    on_screen: str | None = None
    speaker: str | None = None
    entity: str | None = None

    @property
    def conditions(self) -> list[str]:
        """The conditions that are applied, leading one first."""
        given = {
            "said": self.said,
            "on_screen": self.on_screen,
            "speaker": self.speaker,
            "entity": self.entity,
        }
        return [name for name, value in given.items() if value and value.strip()]


@dataclass(frozen=True)
class Moment:
    source_url: str
    source_key: str
    title: str | None
    start_s: float
    end_s: float
    deep_link: str
    score: float  # mean of the conditions' best scores in the moment, 0..1
    said: str  # the sentences spoken in it
    on_screen: list[str]
    speakers: list[str]
    first_bucket: int
    last_bucket: int
    scores: dict[str, float] = field(default_factory=dict)  # per condition
    # True when nothing said cleared SAID_FLOOR where the other conditions hold, and this is the
    # closest there is.
    relaxed: bool = False

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Scored:
    """A candidate bucket, scored on every condition of the query."""

    row: dict[str, Any]
    scores: dict[str, float]
    holds: bool
    extent: tuple[float, float] | None  # where the leading condition's evidence lies
    ref: Any = None  # the index's handle on the row, to read the rest of it

    @property
    def bucket(self) -> int:
        return int(self.row["bucket"])

    @property
    def key(self) -> Key:
        return self.row["source_key"], self.bucket


Key = tuple[str, int]  # (source_key, bucket)


def _annotations(row: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return _by_type(row.get("annotations") or "{}").get(kind, [])


def _by_type(annotations: str) -> dict[str, list[dict[str, Any]]]:
    """A row's nested annotations by type."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for by_model in json.loads(annotations).values():
        for a in by_model:
            grouped[a["type"]].append(a)
    return dict(grouped)


def _joined(column: Any, most: int = 8) -> list[str] | None:
    """Every text a row's ``on_screen`` column may join, or None past ``most`` pieces.

    The column joins the bucket's texts with " | ". A text that holds " | " itself is a run of
    the pieces, give or take a pipe and spaces at its ends (which ``normalize`` drops, so its
    similarity is the run's): every run of pieces is tried."""
    if not isinstance(column, str):
        return None
    pieces = column.split(" | ")
    if len(pieces) > most:
        return None
    n = len(pieces)
    return [" | ".join(pieces[i:j]) for i in range(n) for j in range(i + 1, n + 1)]


class _Scorer:
    def __init__(self, query: MomentQuery, vector: np.ndarray | None, said_floor: float):
        self.query = query
        self.said_floor = said_floor
        self.conditions = query.conditions
        self.vector = None if vector is None else vector / (float(np.linalg.norm(vector)) or 1.0)
        self.said_terms = terms(query.said or "")
        self._shown: dict[str, float] = {}  # on-screen text -> similarity, once per text
        self._lexical: dict[str, float] = {}  # a sentence's term coverage, once per sentence
        # A row's annotations parsed once per query (a bucket is judged on several conditions);
        # not across queries: thousands of parsed rows kept alive make every full GC slow.
        self._parsed: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def annotations(self, row: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        raw = row.get("annotations") or "{}"
        if raw not in self._parsed:
            self._parsed[raw] = _by_type(raw)
        return self._parsed[raw].get(kind, [])

    def said(self, row: dict[str, Any], vector: np.ndarray) -> tuple[float, bool, Any]:
        if not row.get("context"):
            return 0.0, False, None
        sentence = row.get("said_terms") or ""
        if sentence not in self._lexical:  # a sentence spans several buckets
            self._lexical[sentence] = term_coverage(self.said_terms, terms(sentence))
        lexical = self._lexical[sentence]
        norm = float(np.linalg.norm(vector))
        cosine = (
            float(np.dot(vector, self.vector)) / norm if norm and self.vector is not None else 0
        )
        # A convex combination: 0..1, rising with either (cosine clipped at 0).
        score = SAID_SEMANTIC_WEIGHT * max(cosine, 0.0) + (1 - SAID_SEMANTIC_WEIGHT) * lexical
        extent = (row.get("context_start_s"), row.get("context_end_s"))
        return score, score >= self.said_floor, extent if None not in extent else None

    def _similarity(self, text: str) -> float:
        if text not in self._shown:
            self._shown[text] = on_screen_similarity(self.query.on_screen or "", text)
        return self._shown[text]

    def may_show(self, row: dict[str, Any]) -> bool:
        """Whether a text the row's ``on_screen`` column joins may match (all when it joins too
        many to try)."""
        texts = _joined(row.get("on_screen"))
        return texts is None or any(self._similarity(t) >= ON_SCREEN_FLOOR for t in texts)

    def on_screen(self, row: dict[str, Any]) -> tuple[float, bool, Any]:
        best, holds, extent = 0.0, False, None
        for shown in self.annotations(row, "on_screen"):
            text = shown["text"]
            similarity = self._similarity(text)
            holds = holds or similarity >= ON_SCREEN_FLOOR
            weighted = similarity * (shown.get("confidence") or 1.0)
            if weighted > best:
                best, extent = weighted, (shown["start_s"], shown["end_s"])
        return best, holds, extent

    def _named(self, name: str) -> bool:  # "Mira" finds "Mira Okonkwo"
        wanted = set((self.query.speaker or "").lower().split())
        return bool(wanted) and wanted <= set(name.lower().split())

    def speaker(self, row: dict[str, Any]) -> tuple[float, bool, Any]:
        turns = [t for t in self.annotations(row, "speaker") if self._named(t["text"])]
        if not turns:
            return 0.0, False, None
        return 1.0, True, (min(t["start_s"] for t in turns), max(t["end_s"] for t in turns))

    def entity(self, row: dict[str, Any]) -> tuple[float, bool, Any]:
        wanted = f" {entity_key(self.query.entity or '')} "
        if not wanted.strip() or wanted not in (row.get("entity_terms") or ""):
            return 0.0, False, None
        named = [
            a for a in self.annotations(row, "entity") if wanted in f" {entity_key(a['text'])} "
        ]
        if not named:
            return 1.0, True, None
        return 1.0, True, (min(a["start_s"] for a in named), max(a["end_s"] for a in named))

    def may_hold(self, match: Candidate) -> bool:
        """Whether ``match`` may hold every condition, judged without its annotations: a bucket
        this rejects, ``score`` rejects (a speaker's turns are named in ``speaker_names``, the
        entities in ``entity_terms``, the texts on screen in ``on_screen``)."""
        row = match.row
        return all(
            (c != "said" or self.said(row, match.vector)[1])
            and (c != "speaker" or self._named(row.get("speaker_names") or ""))
            and (c != "entity" or self.entity(row)[1])
            and (c != "on_screen" or self.may_show(row))
            for c in self.conditions
        )

    def score(self, match: Candidate) -> _Scored:
        scores, holds, extent = {}, True, None
        for i, condition in enumerate(self.conditions):
            if condition == "said":
                score, ok, where = self.said(match.row, match.vector)
            elif condition == "on_screen":
                score, ok, where = self.on_screen(match.row)
            elif condition == "entity":
                score, ok, where = self.entity(match.row)
            else:
                score, ok, where = self.speaker(match.row)
            scores[condition] = score
            holds = holds and ok
            if i == 0:
                extent = where
            if not holds:  # a bucket that fails one condition is not scored on the rest
                scores.update({c: 0.0 for c in self.conditions[i + 1 :]})
                break
        return _Scored(match.row, scores, holds, extent, match.ref)


def _runs(scored: Iterable[_Scored]) -> list[list[_Scored]]:
    """Matching buckets grouped into runs of adjacent buckets of one video."""
    by_source: dict[str, list[_Scored]] = defaultdict(list)
    for s in scored:
        if s.holds:
            by_source[s.row["source_key"]].append(s)
    runs: list[list[_Scored]] = []
    for buckets in by_source.values():
        buckets.sort(key=lambda s: s.bucket)
        for s in buckets:
            previous = runs[-1][-1] if runs else None
            if (
                previous is not None
                and previous.row["source_key"] == s.row["source_key"]
                and previous.bucket == s.bucket - 1
            ):
                runs[-1].append(s)
            else:
                runs.append([s])
    return runs


def _peak(run: Sequence[_Scored], lead: str) -> float:
    return max(s.scores[lead] for s in run)


def _complete(
    runs: Sequence[list[_Scored]],
    index: MomentsIndex,
    scorer: _Scorer,
    known: dict[Key, _Scored],
    columns: Sequence[str],
) -> list[list[_Scored]]:
    """Each run extended over neighbouring buckets that match too, fetched from the index where
    the candidates did not bring them (a long sentence or slide, a large index).

    The runs grow together, in rounds: each round asks the index, in one query, for the buckets
    past every edge still growing (``NEAR`` of them at first, as most runs end there, then
    ``GROW``), and a fetched bucket is scored when an edge reaches it.
    """
    fetched: dict[Key, Candidate] = {}
    # (run, step) -> the edge's bucket, and the farthest bucket asked for past it
    edges = {
        (i, step): run[0 if step < 0 else -1].bucket
        for i, run in enumerate(runs)
        for step in (-1, 1)
    }
    asked = dict(edges)
    growing = set(edges)
    size = NEAR
    while growing:
        wanted = []
        for i, step in sorted(growing):
            source, start = runs[i][0].row["source_key"], runs[i][0 if step < 0 else -1].bucket
            edge = edges[(i, step)]
            while True:
                nxt = edge + step
                if (source, nxt) not in known and (source, nxt) in fetched:
                    known[(source, nxt)] = scorer.score(fetched[(source, nxt)])
                found = known.get((source, nxt))
                if found is not None and found.holds and abs(nxt - start) <= MAX_GROW:
                    edge = nxt
                    continue
                if found is None and nxt >= 0 and (nxt - asked[(i, step)]) * step > 0:
                    far = nxt + step * (size - 1)
                    wanted.append((source, min(nxt, far), max(nxt, far)))
                    asked[(i, step)] = far
                else:  # no match there, or no such bucket (asked for, not found)
                    growing.discard((i, step))
                break
            edges[(i, step)] = edge
        # Each window's rows lie next to its run's edge.
        anchors = {(runs[i][0].row["source_key"], edges[(i, step)]) for i, step in growing}
        refs = {key: known[key].ref for key in anchors}
        for found in index.windows(wanted, columns, refs) if wanted else []:
            fetched.setdefault(found.key, found)
        size = GROW
    return [
        [known[(run[0].row["source_key"], b)] for b in range(edges[(i, -1)], edges[(i, 1)] + 1)]
        for i, run in enumerate(runs)
    ]


def _pieces(run: list[_Scored], lead: str) -> list[list[_Scored]]:
    """The moments of one completed run: its buckets near its best on the leading condition."""
    cut = PEAK_SHARE * _peak(run, lead)
    pieces: list[list[_Scored]] = []
    for s in run:
        if s.scores[lead] < cut:
            continue
        if pieces and pieces[-1][-1].bucket == s.bucket - 1:
            pieces[-1].append(s)
        else:
            pieces.append([s])
    return pieces


def _during(piece: Sequence[_Scored], kind: str, start: float, end: float) -> list[str]:
    """What the buckets' annotations of ``kind`` say within ``[start, end]``, first seen first:
    the texts surely on screen then (those that only may be, when none is), the speakers."""
    # A blip at an edge (a slide's estimated change, a diarizer's 0.3 s turn) is not "during".
    least = min(GLIMPSE_S, (end - start) / 2)
    found = [
        a
        for s in piece
        for a in _annotations(s.row, kind)
        if min(a["end_s"], end) - max(a["start_s"], start) >= least
    ]
    sure = [a for a in found if (a.get("confidence") or 1.0) >= 1.0] if kind == "on_screen" else []
    return list(dict.fromkeys(a["text"] for a in sure or found))


@dataclass(frozen=True)
class _Span:
    """A moment before its rows are read in full: where it lies and how it scores."""

    piece: list[_Scored]
    start: float  # the evidence's time, inside the buckets that matched
    end: float
    best: dict[str, float]  # each condition's best score

    @classmethod
    def of(cls, piece: list[_Scored], conditions: Sequence[str]) -> _Span:
        lo, hi = float(piece[0].row["start_s"]), float(piece[-1].row["end_s"])
        extents = [s.extent for s in piece if s.extent]
        start = max(lo, min(float(a) for a, _ in extents)) if extents else lo
        end = min(hi, max(float(b) for _, b in extents)) if extents else hi
        if end <= start:
            start, end = lo, hi
        return cls(piece, start, end, {c: max(s.scores[c] for s in piece) for c in conditions})

    @property
    def score(self) -> float:
        return round(sum(self.best.values()) / len(self.best), 4)

    def rank(self) -> tuple[float, float, str, float]:
        # Equal scores (a speaker's turns): the longer moment first.
        start, end = round(self.start, 3), round(self.end, 3)
        return -self.score, start - end, self.piece[0].row["source_key"], start


def _moment(span: _Span, rows: dict[Key, dict[str, Any]], relaxed: bool) -> Moment:
    """The moment of ``span``, its buckets' ``rows`` read in full."""
    piece = [_Scored(rows.get(s.key, s.row), s.scores, s.holds, s.extent) for s in span.piece]
    first, last = piece[0].row, piece[-1].row
    start, end = span.start, span.end
    return Moment(
        source_url=first["source_url"],
        source_key=first["source_key"],
        title=first.get("title"),
        start_s=round(start, 3),
        end_s=round(end, 3),
        deep_link=deep_link(first["source_url"], start, first.get("extractor")),
        score=span.score,
        said=" ".join(dict.fromkeys(s.row["context"] for s in piece if s.row.get("context"))),
        on_screen=_during(piece, "on_screen", start, end),
        speakers=_during(piece, "speaker", start, end),
        first_bucket=int(first["bucket"]),
        last_bucket=int(last["bucket"]),
        scores={c: round(v, 4) for c, v in span.best.items()},
        relaxed=relaxed,
    )


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="moments")


def find_moments(
    query: MomentQuery, index: MomentsIndex, embedder: Embedder, *, k: int = 5
) -> list[Moment]:
    """The ``k`` best moments where every condition of ``query`` holds at once, best first."""
    conditions = query.conditions
    if not conditions:
        raise ValueError("a moment query needs --said, --on-screen, --speaker or --entity")
    with index.reading():
        return _find(query, index, embedder, k)


def _find(query: MomentQuery, index: MomentsIndex, embedder: Embedder, k: int) -> list[Moment]:
    conditions = query.conditions
    # Found with only what they are judged by; the rest is read for the buckets that may hold
    # every condition, and for the moments returned.
    columns = list(
        dict.fromkeys(["start_s", "end_s", *(c for n in conditions for c in SCORED_BY[n])])
    )
    annotated = conditions != ["said"]  # the other conditions are scored on annotations
    full = [*columns, "annotations"] if annotated else columns
    said = query.said

    def nearest() -> tuple[np.ndarray, list[Candidate]]:
        vector = embedder.embed_query(said or "")
        return vector, index.vector_matches(vector, limit=POOL, columns=columns)

    def text(field: TextField, words: str) -> Callable[[], list[Candidate]]:
        return lambda: index.text_matches(field, words, limit=POOL, columns=columns)

    searches = [
        *([text("said", normalize(said))] if said else []),
        *([text("on_screen", normalize(query.on_screen))] if query.on_screen else []),
        *([text("speaker", query.speaker)] if query.speaker else []),
        *([text("entity", entity_key(query.entity))] if query.entity else []),
    ]
    # The searches run at once (the engines release the GIL): a query waits for the slowest,
    # not for their sum.
    pool = _pool()
    near = pool.submit(copy_context().run, nearest) if said else None
    found = [pool.submit(copy_context().run, search) for search in searches]
    vector, matched = near.result() if near else (None, [])
    lists = [f.result() for f in found]
    # In the order they were always merged: words said, nearest, the other conditions.
    candidates = [c for part in [*lists[:1], matched, *lists[1:]] for c in part]
    lead = conditions[0]
    unique: dict[Key, Candidate] = {}
    for match in candidates:
        unique.setdefault(match.key, match)
    for said_floor in (SAID_FLOOR, 0.0):
        # When nothing said clears the floor where the other conditions hold (a phrase the
        # recogniser mangled, a loose paraphrase), the closest sentences there are the answer.
        scorer = _Scorer(query, vector, said_floor)
        if annotated:
            maybe = [m for m in unique.values() if scorer.may_hold(m)]
            unique |= {m.key: m for m in index.complete(maybe, ["annotations"])}
        known = {key: scorer.score(match) for key, match in unique.items()}
        runs = _runs(known.values())
        if runs or not query.said:
            break
    # The most promising runs are completed and cut into moments; enough of them for ``k``.
    runs = sorted(runs, key=lambda r: -_peak(r, lead))[: max(3 * k, 10)]
    spans = {
        piece[0].key: _Span.of(piece, conditions)  # completed runs may meet
        for run in _complete(runs, index, scorer, known, full)
        for piece in _pieces(run, lead)
    }
    best = sorted(spans.values(), key=_Span.rank)[:k]
    shown = index.complete(
        [Candidate(s.row, None, 0.0, s.ref) for span in best for s in span.piece], SHOWN
    )
    rows = {c.key: c.row for c in shown}
    return [_moment(span, rows, said_floor < SAID_FLOOR) for span in best]


def format_moment(rank: int, moment: Moment) -> str:
    where = f"{moment.start_s:.1f}s-{moment.end_s:.1f}s"
    if moment.speakers:
        where += f" · {', '.join(moment.speakers)}"
    lines = [f"{rank}. [{moment.score:.3f}] {moment.title or moment.source_url} — {where}"]
    if moment.said:
        lines.append(f"   said: {moment.said[:200]}")
    if moment.on_screen:
        lines.append(f"   on screen: {' | '.join(moment.on_screen)[:200]}")
    lines.append(f"   {moment.deep_link}")
    return "\n".join(lines)
