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
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from media_assets.enrich import entity_key
from media_assets.video.chunk import deep_link
from media_assets.video.moments import CARD_FIELDS, SPAN_TYPES
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
# The columns a bucket is first judged by, for each condition. The rest of what a query reads of
# a bucket, its ``card`` (where it lies, what is said and shown there, the spans of the other
# conditions), is read only for the buckets that may hold every condition and for the moments
# that may be returned: at 1M rows, reading a column of rows scattered over the table costs a
# search a few milliseconds, and reading is most of a query. (The vector search's candidates
# come with their cosine: their vectors are not read.)
SCORED_BY: dict[str, tuple[str, ...]] = {
    "said": ("said_terms", "vector"),
    "on_screen": ("on_screen",),
    "speaker": ("speaker_names",),
    "entity": ("entity_terms",),
}
CARD = ("card",)


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
    ref: Any = None  # the index's handle on the row, to read the rest of it

    @property
    def bucket(self) -> int:
        return int(self.row["bucket"])

    @property
    def key(self) -> Key:
        return self.row["source_key"], self.bucket


Key = tuple[str, int]  # (source_key, bucket)
Extent = tuple[float, float] | None  # where a condition's evidence lies in a bucket


def _by_type(annotations: str, kinds: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """Nested annotations (``{model: [annotation, ...]}``) of ``kinds``, by type."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for by_model in json.loads(annotations).values():
        for a in by_model:
            if a["type"] in kinds:
                grouped[a["type"]].append(a)
    return dict(grouped)


def _spans(row: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """A bucket's annotations of ``kind``, one of ``SPAN_TYPES`` (none before its card is
    read)."""
    return row.get("spans", {}).get(kind, [])


def _completed(
    index: MomentsIndex, found: Sequence[Candidate], columns: Sequence[str]
) -> list[Candidate]:
    """``found`` with ``columns`` read too."""
    return _carded(index, index.complete(found, columns), columns)


def _carded(
    index: MomentsIndex, found: Sequence[Candidate], columns: Sequence[str]
) -> list[Candidate]:
    """``found`` (read with ``columns``), each row with its card's fields and ``spans`` when
    ``card`` is among them. The rows of an index written before that column read them from their
    own columns. A row whose card cannot be read (deleted since, by a backend that does not
    read one version throughout a query) is left out: it can show no moment."""
    if "card" not in columns:
        return list(found)
    legacy = [c for c in found if not isinstance(c.row.get("card"), str) and "spans" not in c.row]
    old = {c.key: c for c in index.complete(legacy, [*CARD_FIELDS, "annotations"])}
    out = []
    for c in found:
        if "spans" in c.row:
            out.append(c)
        elif isinstance(c.row.get("card"), str):
            out.append(replace(c, row={**json.loads(c.row["card"]), **c.row}))
        elif c.key in old and "start_s" in old[c.key].row:
            row = old[c.key].row
            spans = _by_type(row.get("annotations") or "{}", SPAN_TYPES)
            out.append(replace(c, row={**row, "card": None, "spans": spans}))
    return out


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
    def __init__(
        self,
        query: MomentQuery,
        vector: np.ndarray | None,
        said_floor: float,
        cosines: dict[Key, float],
    ):
        self.query = query
        self.said_floor = said_floor
        self.conditions = query.conditions
        self.vector = None if vector is None else vector / (float(np.linalg.norm(vector)) or 1.0)
        self.cosines = cosines  # of the vector search's candidates, found without their vectors
        self.said_terms = terms(query.said or "")
        self._shown: dict[str, float] = {}  # on-screen text -> similarity, once per text
        self._lexical: dict[str, float] = {}  # a sentence's term coverage, once per sentence
        self._said: dict[Key, tuple[float, bool]] = {}

    def _cosine(self, match: Candidate) -> float:
        if match.vector is None:
            return self.cosines.get(match.key, 0.0)
        norm = float(np.linalg.norm(match.vector))
        return (
            float(np.dot(match.vector, self.vector)) / norm
            if norm and self.vector is not None
            else 0.0
        )

    def said(self, match: Candidate) -> tuple[float, bool]:
        # A bucket is judged before its card is read and again after.
        if match.key not in self._said:
            self._said[match.key] = self._said_score(match)
        return self._said[match.key]

    def _said_score(self, match: Candidate) -> tuple[float, bool]:
        sentence = match.row.get("said_terms") or ""
        if not sentence:  # nothing said here (or nothing but symbols)
            return 0.0, False
        if sentence not in self._lexical:  # a sentence spans several buckets
            self._lexical[sentence] = term_coverage(self.said_terms, terms(sentence))
        lexical = self._lexical[sentence]
        # A convex combination: 0..1, rising with either (cosine clipped at 0).
        score = (
            SAID_SEMANTIC_WEIGHT * max(self._cosine(match), 0.0)
            + (1 - SAID_SEMANTIC_WEIGHT) * lexical
        )
        return score, score >= self.said_floor

    def _similarity(self, text: str) -> float:
        if text not in self._shown:
            self._shown[text] = on_screen_similarity(self.query.on_screen or "", text)
        return self._shown[text]

    def may_show(self, row: dict[str, Any]) -> bool:
        """Whether a text the row's ``on_screen`` column joins may match (all when it joins too
        many to try)."""
        texts = _joined(row.get("on_screen"))
        return texts is None or any(self._similarity(t) >= ON_SCREEN_FLOOR for t in texts)

    def on_screen(self, row: dict[str, Any]) -> tuple[float, bool, Extent]:
        best, holds, extent = 0.0, False, None
        for shown in _spans(row, "on_screen"):
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

    def speaker(self, row: dict[str, Any]) -> tuple[float, bool]:
        named = any(self._named(t["text"]) for t in _spans(row, "speaker"))
        return float(named), named

    def _wanted_entity(self) -> str:
        return f" {entity_key(self.query.entity or '')} "

    def entity(self, row: dict[str, Any]) -> tuple[float, bool]:
        wanted = self._wanted_entity()
        named = bool(wanted.strip()) and wanted in (row.get("entity_terms") or "")
        return float(named), named

    def extent(self, row: dict[str, Any], lead: str) -> Extent:
        """Where the leading condition's evidence lies in a bucket read in full: the sentence
        spoken, the text on screen that matches best, the speaker's turns, the name's sentence
        or text."""
        if lead == "said":
            start, end = row.get("context_start_s"), row.get("context_end_s")
            return None if start is None or end is None else (start, end)
        if lead == "on_screen":
            return self.on_screen(row)[2]
        if lead == "speaker":
            found = [t for t in _spans(row, "speaker") if self._named(t["text"])]
        else:
            wanted = self._wanted_entity()
            found = [a for a in _spans(row, "entity") if wanted in f" {entity_key(a['text'])} "]
        if not found:
            return None
        return min(a["start_s"] for a in found), max(a["end_s"] for a in found)

    def may_hold(self, match: Candidate) -> bool:
        """Whether ``match`` may hold every condition, judged without its spans: a bucket this
        rejects, ``score`` rejects (a speaker's turns are named in ``speaker_names``, the
        entities in ``entity_terms``, the texts on screen in ``on_screen``)."""
        row = match.row
        return all(
            (c != "said" or self.said(match)[1])
            and (c != "speaker" or self._named(row.get("speaker_names") or ""))
            and (c != "entity" or self.entity(row)[1])
            and (c != "on_screen" or self.may_show(row))
            for c in self.conditions
        )

    def score(self, match: Candidate) -> _Scored:
        scores, holds = {}, True
        for i, condition in enumerate(self.conditions):
            if condition == "said":
                score, ok = self.said(match)
            elif condition == "on_screen":
                score, ok, _ = self.on_screen(match.row)
            elif condition == "entity":
                score, ok = self.entity(match.row)
            else:
                score, ok = self.speaker(match.row)
            scores[condition] = score
            holds = holds and ok
            if not holds:  # a bucket that fails one condition is not scored on the rest
                scores.update({c: 0.0 for c in self.conditions[i + 1 :]})
                break
        return _Scored(match.row, scores, holds, match.ref)


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
        window = index.windows(wanted, columns, refs) if wanted else []
        for found in _carded(index, window, columns):
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
        for a in _spans(s.row, kind)
        if min(a["end_s"], end) - max(a["start_s"], start) >= least
    ]
    sure = [a for a in found if (a.get("confidence") or 1.0) >= 1.0] if kind == "on_screen" else []
    return list(dict.fromkeys(a["text"] for a in sure or found))


def _score(piece: Sequence[_Scored], conditions: Sequence[str]) -> float:
    """A moment's score: the mean of its conditions' best scores."""
    return round(sum(max(s.scores[c] for s in piece) for c in conditions) / len(conditions), 4)


def _contenders(
    pieces: Iterable[list[_Scored]], conditions: Sequence[str], k: int
) -> list[list[_Scored]]:
    """The pieces that may be among the ``k`` best moments: moments rank by score first, so
    those scoring below the ``k``-th best cannot (ties are kept: they rank by length, which
    their rows tell)."""
    scored = sorted(((_score(p, conditions), p) for p in pieces), key=lambda sp: -sp[0])
    cut = scored[k - 1][0] if len(scored) >= k else 0.0
    return [p for score, p in scored if score >= cut]


@dataclass(frozen=True)
class _Span:
    """A moment from its buckets read in full: where it lies and how it scores."""

    piece: list[_Scored]
    start: float  # the evidence's time, inside the buckets that matched
    end: float
    best: dict[str, float]  # each condition's best score

    @classmethod
    def of(cls, piece: list[_Scored], conditions: Sequence[str], scorer: _Scorer) -> _Span:
        lo, hi = float(piece[0].row["start_s"]), float(piece[-1].row["end_s"])
        extents = [e for s in piece if (e := scorer.extent(s.row, conditions[0]))]
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


def _moment(span: _Span, relaxed: bool) -> Moment:
    piece = span.piece
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
    # every condition, and for the moments that may be returned.
    columns = list(dict.fromkeys(c for n in conditions for c in SCORED_BY[n]))
    carded = conditions != ["said"]  # the other conditions are judged on the card's spans
    full = [*columns, *CARD] if carded else columns
    said = query.said

    def nearest() -> tuple[np.ndarray, list[Candidate]]:
        vector = embedder.embed_query(said or "")
        unread = [c for c in columns if c != "vector"]  # their cosine is the search's score
        return vector, index.vector_matches(vector, limit=POOL, columns=unread)

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
    cosines = {m.key: m.score for m in matched}
    # In the order they were always merged: words said, nearest, the other conditions.
    candidates = [c for part in [*lists[:1], matched, *lists[1:]] for c in part]
    lead = conditions[0]
    unique: dict[Key, Candidate] = {}
    for match in candidates:
        unique.setdefault(match.key, match)
    for said_floor in (SAID_FLOOR, 0.0):
        # When nothing said clears the floor where the other conditions hold (a phrase the
        # recogniser mangled, a loose paraphrase), the closest sentences there are the answer.
        scorer = _Scorer(query, vector, said_floor, cosines)
        if carded:
            maybe = [m for m in unique.values() if scorer.may_hold(m)]
            unique |= {m.key: m for m in _completed(index, maybe, CARD)}
        known = {key: scorer.score(match) for key, match in unique.items()}
        runs = _runs(known.values())
        if runs or not query.said:
            break
    # The most promising runs are completed and cut into moments; enough of them for ``k``.
    runs = sorted(runs, key=lambda r: -_peak(r, lead))[: max(3 * k, 10)]

    def cards(scored: Iterable[_Scored]) -> dict[Key, dict[str, Any]]:
        found = [Candidate(s.row, None, 0.0, s.ref) for s in scored]
        return {c.key: c.row for c in _completed(index, found, CARD)}

    # The cards of the likeliest moments' buckets are read while the runs are completed; those
    # of any other bucket a moment may hold, after.
    likeliest = pool.submit(copy_context().run, cards, [s for run in runs[:k] for s in run])
    pieces = {
        piece[0].key: piece  # completed runs may meet
        for run in _complete(runs, index, scorer, known, full)
        for piece in _pieces(run, lead)
    }
    contenders = _contenders(pieces.values(), conditions, k)
    rows = likeliest.result()
    rows |= cards(s for piece in contenders for s in piece if s.key not in rows)
    spans = [
        _Span.of([replace(s, row=rows[s.key]) for s in piece], conditions, scorer)
        for piece in contenders
        if all(s.key in rows for s in piece)
    ]
    best = sorted(spans, key=_Span.rank)[:k]
    return [_moment(span, said_floor < SAID_FLOOR) for span in best]


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
