"""Moments: every model's output for a video as timed annotations of one shape, fused into fixed
time buckets that a query can intersect.

The bucket rule (half-open): with buckets of ``s`` seconds, bucket ``b`` is ``[b*s, (b+1)*s)``.
An annotation ``[start, end)`` covers the buckets from ``floor(start/s)`` to ``ceil(end/s) - 1``;
a zero-length one (a key frame) covers ``floor(t/s)``. With 1 s buckets ``[2.0, 3.0)`` covers
bucket 2 only, ``[2.5, 3.2)`` covers 2 and 3: an annotation ending exactly on a boundary does not
reach into the next bucket, so adjacent annotations never share a bucket they do not share time.

Each bucket holds the annotations that cover it, nested by model, so re-running one model (a new
OCR version) replaces that model's annotations in the buckets they touch and nothing else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from media_assets import enrich, pii
from media_assets.enrich import entity_terms
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.chunk import deep_link
from media_assets.video.frames import FrameSettings
from media_assets.video.terms import normalize

AnnotationType = Literal[
    "speech", "speaker", "on_screen", "scene", "chapter", "frame", "entity", "keyword"
]
BUCKET_S = 1.0
# An on-screen text seen on frames, but whose first (or last) moment lies between two frames:
# it may already (or still) be on screen there, or not.
MAYBE = 0.5
# Rounding before floor/ceil: times are kept to the millisecond, and 0.3 / 0.1 is 2.999….
_DIGITS = 9


@dataclass(frozen=True)
class ModelId:
    """Which model made an annotation: its name (the key annotations are nested by) and version."""

    name: str
    version: str

    @classmethod
    def parse(cls, engine_id: str) -> ModelId:
        """``"tesseract:eng"`` -> ``tesseract`` version ``eng``; an id without a version is
        version ``"-"``."""
        name, _, version = engine_id.partition(":")
        return cls(name, version or "-")

    def annotation(
        self,
        source_key: str,
        kind: AnnotationType,
        start_s: float,
        end_s: float,
        text: str,
        confidence: float | None = None,
    ) -> Annotation:
        return Annotation(
            source_key, self.name, self.version, kind, start_s, end_s, text, confidence
        )


@dataclass(frozen=True)
class Annotation:
    """One model's statement about a stretch of one video. ``text`` is what it says there: the
    words (``speech``), the speaker's name (``speaker``), the text read on screen
    (``on_screen``), the scene's number (``scene``), the chapter's title (``chapter``), the key
    frame's image key in object storage (``frame``), a name in a sentence said or a text shown
    (``entity``, over that sentence or text), a keyword of a sentence (``keyword``).
    ``confidence`` is the model's own, when it
    gives one (a word's probability), or how sure the timing is (``MAYBE``)."""

    source_key: str
    model: str
    model_version: str
    type: AnnotationType
    start_s: float
    end_s: float
    text: str
    confidence: float | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


def bucket_range(start_s: float, end_s: float, bucket_s: float = BUCKET_S) -> range:
    """The buckets an annotation ``[start_s, end_s)`` covers, by the half-open rule above."""
    first = math.floor(round(start_s / bucket_s, _DIGITS))
    last = math.ceil(round(end_s / bucket_s, _DIGITS)) - 1
    return range(max(first, 0), max(first, last) + 1)


def bucket_count(duration_s: float, bucket_s: float = BUCKET_S) -> int:
    return max(1, math.ceil(round(duration_s / bucket_s, _DIGITS)))


@dataclass(frozen=True)
class Bucket:
    """One (source_key, bucket): the annotations that cover it, by model, and what they say."""

    source_key: str
    bucket: int
    start_s: float
    end_s: float
    annotations: Mapping[str, tuple[Annotation, ...]] = field(default_factory=dict)

    def of_type(self, kind: AnnotationType) -> list[Annotation]:
        found = [a for by_model in self.annotations.values() for a in by_model if a.type == kind]
        return sorted(found, key=lambda a: (a.start_s, a.end_s))

    @property
    def said(self) -> str:
        return " ".join(a.text for a in self.of_type("speech"))

    @property
    def on_screen(self) -> list[str]:
        # Texts read here first, those that may only be on screen after them.
        ranked = sorted(self.of_type("on_screen"), key=lambda a: -(a.confidence or 1.0))
        return list(dict.fromkeys(a.text for a in ranked))

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(a.text for a in self.of_type("speaker")))

    @property
    def scene(self) -> int | None:
        scenes = self.of_type("scene")
        return int(scenes[0].text) if scenes else None

    @property
    def chapter(self) -> str | None:
        chapters = self.of_type("chapter")
        return chapters[0].text if chapters else None

    def nested(self) -> dict[str, list[dict[str, Any]]]:
        """The annotations as records, by model."""
        return {m: [a.record() for a in by] for m, by in self.annotations.items()}

    def record(self) -> dict[str, Any]:
        return {
            "source_key": self.source_key,
            "bucket": self.bucket,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "said": self.said,
            "on_screen": self.on_screen,
            "speakers": self.speakers,
            "scene": self.scene,
            "chapter": self.chapter,
            "annotations": self.nested(),
        }


@dataclass(frozen=True)
class Moments:
    """A video's annotations and its buckets, one per ``bucket_s`` seconds of ``duration_s``."""

    source_key: str
    duration_s: float
    bucket_s: float
    annotations: tuple[Annotation, ...]
    buckets: tuple[Bucket, ...]

    @property
    def models(self) -> dict[str, str]:
        return {a.model: a.model_version for a in self.annotations}

    def record(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.annotations:
            counts[a.type] = counts.get(a.type, 0) + 1
        return {
            "source_key": self.source_key,
            "duration_s": self.duration_s,
            "bucket_s": self.bucket_s,
            "models": self.models,
            "counts": counts,
            "annotations": [a.record() for a in self.annotations],
            "buckets": [b.record() for b in self.buckets],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Moments:
        """The fusion from its artifact (the buckets are placed again from the annotations)."""
        return fuse(
            record["source_key"],
            [Annotation(**a) for a in record["annotations"]],
            record["duration_s"],
            record["bucket_s"],
        )


def _ordered(annotations: Iterable[Annotation]) -> tuple[Annotation, ...]:
    return tuple(sorted(annotations, key=lambda a: (a.start_s, a.end_s, a.model, a.type, a.text)))


def _place(
    buckets: list[Bucket], annotations: Sequence[Annotation], bucket_s: float, drop: str | None
) -> list[Bucket]:
    """``buckets`` with ``drop``'s annotations taken out and ``annotations`` put in; buckets
    neither touches are returned as they were (the same objects)."""
    adding: dict[int, dict[str, list[Annotation]]] = {}
    for annotation in annotations:
        for b in bucket_range(annotation.start_s, annotation.end_s, bucket_s):
            if b < len(buckets):  # past the end of the video: clipped
                adding.setdefault(b, {}).setdefault(annotation.model, []).append(annotation)
    touched = set(adding) | {
        b.bucket for b in buckets if drop is not None and drop in b.annotations
    }
    out = list(buckets)
    for b in touched:
        kept = {m: list(v) for m, v in buckets[b].annotations.items() if m != drop}
        for model, new in adding.get(b, {}).items():
            kept.setdefault(model, []).extend(new)
        out[b] = replace(
            buckets[b], annotations={m: _ordered(v) for m, v in sorted(kept.items()) if v}
        )
    return out


def fuse(
    source_key: str,
    annotations: Sequence[Annotation],
    duration_s: float,
    bucket_s: float = BUCKET_S,
) -> Moments:
    """Place every annotation in the buckets it covers: one bucket per ``bucket_s`` seconds."""
    count = bucket_count(duration_s, bucket_s)
    # The last bucket ends with the video (the rule places nothing past it anyway).
    ends = [(b + 1) * bucket_s for b in range(count - 1)] + [
        max(duration_s, (count - 1) * bucket_s)
    ]
    empty = [
        Bucket(source_key, b, round(b * bucket_s, 3), round(end, 3)) for b, end in enumerate(ends)
    ]
    ordered = _ordered(annotations)
    return Moments(
        source_key, duration_s, bucket_s, ordered, tuple(_place(empty, ordered, bucket_s, None))
    )


def replace_model(moments: Moments, model: str, annotations: Sequence[Annotation]) -> Moments:
    """``moments`` with ``model``'s annotations replaced by ``annotations`` (all of that model):
    only the buckets the old or the new ones cover change; every other bucket, and every other
    model's annotations, stay as they were."""
    if strangers := sorted({a.model for a in annotations} - {model}):
        raise ValueError(f"annotations of {strangers} given to replace those of {model!r}")
    kept = [a for a in moments.annotations if a.model != model]
    return replace(
        moments,
        annotations=_ordered([*kept, *annotations]),
        buckets=tuple(_place(list(moments.buckets), annotations, moments.bucket_s, model)),
    )


# --- annotations from the video chain's artifacts ---------------------------------------------


def speech_annotations(
    source_key: str, words: Sequence[Mapping[str, Any]], model: ModelId
) -> list[Annotation]:
    """Each word (ASR words, or caption cues spread over their words) with its probability."""
    return [
        model.annotation(
            source_key, "speech", w["start_s"], w["end_s"], w["text"], w.get("probability")
        )
        for w in words
    ]


def speaker_annotations(
    source_key: str, turns: Sequence[Mapping[str, Any]], model: ModelId
) -> list[Annotation]:
    return [
        model.annotation(source_key, "speaker", t["start_s"], t["end_s"], t["speaker"])
        for t in turns
    ]


def on_screen_annotations(
    source_key: str,
    spans: Sequence[Mapping[str, Any]],
    cuts: Sequence[float],
    clock_s: float,
    duration_s: float,
    model: ModelId,
) -> list[Annotation]:
    """Each span of text read on the key frames, its edges moved to where the text most likely
    changed, and the uncertain stretch beside each edge as a ``MAYBE`` annotation.

    Frames are taken at scene cuts and by the clock, every ``clock_s`` (``extract_key_frames``),
    and ``frame_text`` starts a span at the first frame that shows it and ends it at the first
    that does not. A text that appears between two clock frames was therefore not on the frame
    before: it appeared up to ``clock_s`` before its span starts (and left up to ``clock_s``
    before it ends). The middle of that gap is the estimate; the gap is "maybe". An edge on a
    scene cut, at 0 or at the end of the video is exact.
    """

    def exact(t: float) -> bool:
        return t <= 0 or t >= duration_s or any(abs(t - c) < 1e-3 for c in cuts)

    out = []
    for span in spans:
        start, end, text = float(span["start_s"]), float(span["end_s"]), span["text"]
        since = start if exact(start) else max(0.0, start - clock_s)
        early = start if exact(start) else max(0.0, start - clock_s / 2)
        late = end if exact(end) else max(early, end - clock_s / 2)
        pieces = [(since, early, MAYBE), (early, late, 1.0), (late, end, MAYBE)]
        out += [
            model.annotation(source_key, "on_screen", round(a, 3), round(b, 3), text, confidence)
            for a, b, confidence in pieces
            if b > a
        ]
    return out


def scene_annotations(
    source_key: str, frames: Sequence[Mapping[str, Any]], duration_s: float, model: ModelId
) -> list[Annotation]:
    """Scenes between the detected cuts, numbered from 0, each as sure as its cut's score."""
    cuts = [(float(f["time_s"]), f.get("scene_score")) for f in frames if f["scene_cut"]]
    starts = [(0.0, None), *[(t, score) for t, score in cuts if t > 0]]
    ends = [t for t, _ in starts[1:]] + [duration_s]
    return [
        model.annotation(source_key, "scene", start, end, str(i), score)
        for i, ((start, score), end) in enumerate(zip(starts, ends, strict=True))
    ]


def frame_annotations(
    source_key: str, frames: Sequence[Mapping[str, Any]], model: ModelId
) -> list[Annotation]:
    """Each key frame, at its instant, naming its image in object storage."""
    return [
        model.annotation(source_key, "frame", f["time_s"], f["time_s"], f["key"]) for f in frames
    ]


def chapter_annotations(
    source_key: str, chapters: Sequence[Mapping[str, Any]], model: ModelId
) -> list[Annotation]:
    return [
        model.annotation(source_key, "chapter", c["start_s"], c["end_s"], c["title"])
        for c in chapters
    ]


@dataclass(frozen=True)
class Engines:
    """What the chain's artifacts do not name themselves: the speech engine that made the
    transcript (its record names only the family), the key-frame sampler's settings, and the
    engine that finds chapters where the platform has none."""

    speech: str  # e.g. "faster-whisper:tiny.en:int8"
    key_frames: FrameSettings
    chapter_detector: ModelId

    @property
    def sampler(self) -> ModelId:
        f = self.key_frames
        return ModelId(
            "ffmpeg", f"scene>{f.scene_threshold},every {f.interval_s}s,max {f.max_frames}"
        )

    def clock_s(self, duration_s: float) -> float:
        """Seconds between clock-sampled key frames of a video this long: the interval, spread
        so the frame cap still covers the whole video (as ``extract_key_frames`` does)."""
        f = self.key_frames
        return max(f.interval_s, duration_s / max(f.max_frames, 1))


def annotations_from_artifacts(
    source_key: str, records: Mapping[str, Mapping[str, Any]], engines: Engines
) -> list[Annotation]:
    """Every annotation of one video, read from its ``captions``, ``transcript``,
    ``speaker_turns``, ``key_frames``, ``frame_text`` and ``chapters`` records."""
    transcript, turns = records["transcript"], records["speaker_turns"]
    frames, text, chapters = records["key_frames"], records["frame_text"], records["chapters"]
    if transcript["source"] == "captions":
        track = records["captions"].get("track") or {}
        speech = ModelId("captions", f"{track.get('source', '-')}:{track.get('language', '-')}")
    else:
        speech = ModelId.parse(engines.speech)
    # On the captions path the speakers come from the captions' voice tags.
    speaker = speech if turns["engine"] == "caption voice tags" else ModelId.parse(turns["engine"])
    platform = any(c.get("source") == "platform" for c in chapters["chapters"])
    duration = float(chapters["duration_s"])
    cuts = [float(f["time_s"]) for f in frames["frames"] if f["scene_cut"]]
    shown = ModelId.parse(text["engine"])
    return [
        *speech_annotations(source_key, turns["words"], speech),
        *speaker_annotations(source_key, turns["turns"], speaker),
        *on_screen_annotations(
            source_key, text["spans"], cuts, engines.clock_s(duration), duration, shown
        ),
        # Scenes only where frames were sampled (not on the captions path, nor for audio).
        *(
            scene_annotations(source_key, frames["frames"], duration, engines.sampler)
            if frames.get("path") == "sampled"
            else []
        ),
        *frame_annotations(source_key, frames["frames"], engines.sampler),
        *chapter_annotations(
            source_key,
            chapters["chapters"],
            ModelId("platform", "yt-dlp") if platform else engines.chapter_detector,
        ),
    ]


# --- rows for the moments index ---------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class UtteranceSettings:
    # A gap this long between words ends a sentence even without punctuation (captions, or a
    # recogniser that leaves it out); shorter pauses happen inside sentences.
    pause_s: float = 1.0
    # A longer sentence is cut at its longest pause: a phrase matched in it should not make a
    # moment of a minute.
    max_s: float = 15.0


_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


def utterances(
    words: Sequence[Annotation], settings: UtteranceSettings | None = None
) -> list[Utterance]:
    """The speech as sentences: a phrase someone remembers hearing is found in its sentence, and
    the moment it gives is that sentence's time."""
    return [
        Utterance(group[0].start_s, group[-1].end_s, " ".join(w.text for w in group))
        for group in sentence_words(words, settings)
    ]


def sentence_words(
    words: Sequence[Annotation], settings: UtteranceSettings | None = None
) -> list[list[Annotation]]:
    """The words of each sentence (``utterances``), in time order."""
    settings = settings or UtteranceSettings()
    groups: list[list[Annotation]] = []
    for word in sorted(words, key=lambda w: w.start_s):
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and word.start_s - previous.end_s < settings.pause_s
            and not _SENTENCE_END.search(previous.text)
        ):
            groups[-1].append(word)
        else:
            groups.append([word])
    return [part for g in groups for part in _split_long(g, settings.max_s)]


def _split_long(group: list[Annotation], max_s: float) -> list[list[Annotation]]:
    if len(group) > 1 and group[-1].end_s - group[0].start_s > max_s:
        gaps = [group[i + 1].start_s - group[i].end_s for i in range(len(group) - 1)]
        # the longest pause, and among equal ones the one nearest the middle
        cut = max(range(len(gaps)), key=lambda i: (gaps[i], -abs(i - len(gaps) / 2))) + 1
        return _split_long(group[:cut], max_s) + _split_long(group[cut:], max_s)
    return [group]


# --- entities, keywords and the PII gate over what is said and shown ---------------------------


@dataclass
class TextGate:
    """The annotations after the PII gate, with entity and keyword annotations added, and what
    the gate found (per type) and took out (sentences and screen texts, under ``drop``)."""

    annotations: list[Annotation]
    pii_found: dict[str, int]
    pii_dropped: int


def _words_redacted(words: list[Annotation], spans: Sequence[pii.PiiSpan]) -> list[Annotation]:
    """A sentence's words with each span's words replaced by one word, its placeholder (on the
    first word's time, ending with the last's): the sentence reads as its redacted text does."""
    out: list[Annotation] = []
    at = 0
    offsets = []
    for word in words:
        offsets.append((at, at + len(word.text)))
        at += len(word.text) + 1
    spans = sorted(spans, key=lambda s: s.start)
    used: set[int] = set()
    for word, (start, end) in zip(words, offsets, strict=True):
        hit = next((i for i, s in enumerate(spans) if start < s.end and s.start < end), None)
        if hit is None:
            out.append(word)
        elif hit not in used:
            used.add(hit)
            last = max(
                (w for w, (a, b) in zip(words, offsets, strict=True) if a < spans[hit].end),
                key=lambda w: w.end_s,
            )
            out.append(replace(word, text=pii.PLACEHOLDERS[spans[hit].type], end_s=last.end_s))
    return out


def text_annotations(
    source_key: str, annotations: Sequence[Annotation], policy: pii.PiiPolicy
) -> TextGate:
    """The PII gate over the speech (sentence by sentence) and the text on screen, then entities
    (spaCy) over each sentence and each screen text, and keywords (YAKE) over each sentence, as
    annotations over the sentence's or text's time; chapter titles pass the gate too. ``redact``
    replaces personal data in the words and texts; ``drop`` leaves out the sentences and texts
    that hold any; ``flag`` counts. Speaker names (a caption's voice, a diarizer's label) are
    left as they are: ``--speaker`` finds them."""
    words = [a for a in annotations if a.type == "speech"]
    # Texts read as they are: on screen, and chapter titles (a detected chapter's title is its
    # first words).
    shown = [a for a in annotations if a.type in ("on_screen", "chapter")]
    others = [a for a in annotations if a.type not in ("speech", "on_screen", "chapter")]
    sentences = sentence_words(words)
    said = [" ".join(w.text for w in group) for group in sentences]
    findings = enrich.analyse([*said, *(a.text for a in shown)], policy)
    entity_model = ModelId("spacy", enrich.model_version())
    keyword_model = ModelId("yake", "top-" + str(enrich.MAX_KEYWORDS))
    kept: list[Annotation] = list(others)
    found: dict[str, int] = {}
    dropped = 0
    for group, finding in zip(sentences, findings[: len(sentences)], strict=True):
        found = pii.add_counts(found, finding.pii_counts)
        if finding.pii and policy == "drop":
            dropped += 1
            continue
        if finding.pii and policy == "redact":
            group = _words_redacted(group, finding.pii)
        kept.extend(group)
        start, end = group[0].start_s, max(w.end_s for w in group)
        kept.extend(
            entity_model.annotation(source_key, "entity", start, end, e["text"])
            for e in finding.entities
        )
        kept.extend(
            keyword_model.annotation(source_key, "keyword", start, end, k) for k in finding.keywords
        )
    for text, finding in zip(shown, findings[len(sentences) :], strict=True):
        found = pii.add_counts(found, finding.pii_counts)
        if finding.pii and policy == "drop":
            dropped += 1
            continue
        kept.append(replace(text, text=finding.text) if policy == "redact" else text)
        if text.type == "on_screen":
            kept.extend(
                entity_model.annotation(source_key, "entity", text.start_s, text.end_s, e["text"])
                for e in finding.entities
            )
    return TextGate(kept, found, dropped)


@dataclass(frozen=True)
class MomentRow:
    """One row of the moments index: a bucket, what is said (and the sentence around it, which
    ``said`` queries match), what is on screen, who speaks, and its annotations by model."""

    source_key: str
    bucket: int
    source_url: str
    title: str | None
    extractor: str | None
    deep_link: str
    start_s: float
    end_s: float
    said: str
    context: str  # the sentence spoken over most of the bucket
    context_start_s: float | None
    context_end_s: float | None
    said_terms: str  # ``context`` normalised (numbers as digits) for the word index
    on_screen: str
    on_screen_terms: str  # normalised for the character n-gram index
    speakers: list[str]
    speaker_names: str
    scene: int | None
    chapter: str | None
    entities: list[str]  # names said (in the sentence) or shown in the bucket
    entity_terms: str  # ``entities`` as filters read them (media_assets/enrich.entity_terms)
    keywords: list[str]  # of the sentences said in the bucket
    models: list[str]
    annotations: str  # JSON: {model: [annotation, ...]}
    card: str  # JSON: what a moment query reads of the bucket beyond its search columns

    def record(self) -> dict[str, Any]:
        return asdict(self)


# What ``MomentRow.card`` holds: the row's fields a moment shows and places itself by, and its
# annotations of ``SPAN_TYPES`` by type (``spans``), which queries judge beside the sentence.
# One column, because at 1M rows reading a few buckets scattered over the table costs about the
# same per column whatever its size (~1 ms for a dozen rows here), and without the spoken words
# that are most of ``annotations``' bytes (media_assets/moments.py).
CARD_FIELDS = (
    "start_s",
    "end_s",
    "context",
    "context_start_s",
    "context_end_s",
    "source_url",
    "title",
    "extractor",
)
SPAN_TYPES: tuple[AnnotationType, ...] = ("on_screen", "speaker", "entity")
_SPAN_FIELDS = ("model", "start_s", "end_s", "text", "confidence")


def bucket_card(bucket: Bucket, fields: Mapping[str, Any]) -> str:
    """``MomentRow.card``: ``CARD_FIELDS`` of the row's ``fields``, and the bucket's spans."""
    spans = {
        kind: [{f: getattr(a, f) for f in _SPAN_FIELDS} for a in found]
        for kind in SPAN_TYPES
        if (found := bucket.of_type(kind))
    }
    return json.dumps({**{f: fields[f] for f in CARD_FIELDS}, "spans": spans}, sort_keys=True)


def _bucket_utterance(bucket: Bucket, spoken: Sequence[Utterance]) -> Utterance | None:
    """The sentence that covers most of the bucket (the first of equals), if any does."""
    best, most = None, 0.0
    for u in spoken:
        overlap = min(u.end_s, bucket.end_s) - max(u.start_s, bucket.start_s)
        touches = overlap > 0 or (u.start_s == u.end_s and bucket.start_s <= u.start_s)
        if touches and (best is None or overlap > most):
            best, most = u, overlap
    return best


def moment_rows(
    moments: Moments, *, source_url: str, title: str | None, extractor: str | None
) -> list[MomentRow]:
    """The index rows of a video: one per bucket, in bucket order."""
    spoken = utterances([a for a in moments.annotations if a.type == "speech"])
    rows = []
    start = 0
    for bucket in moments.buckets:
        # Sentences are in time order: skip those that ended before this bucket.
        while start < len(spoken) and spoken[start].end_s < bucket.start_s:
            start += 1
        stop = start
        while stop < len(spoken) and spoken[stop].start_s < bucket.end_s:
            stop += 1
        sentence = _bucket_utterance(bucket, spoken[start:stop])
        shown = bucket.on_screen
        fields = {
            "source_key": moments.source_key,
            "bucket": bucket.bucket,
            "source_url": source_url,
            "title": title,
            "extractor": extractor,
            "deep_link": deep_link(source_url, bucket.start_s, extractor),
            "start_s": bucket.start_s,
            "end_s": bucket.end_s,
            "said": bucket.said,
            "context": sentence.text if sentence else "",
            "context_start_s": sentence.start_s if sentence else None,
            "context_end_s": sentence.end_s if sentence else None,
            "said_terms": normalize(sentence.text) if sentence else "",
            "on_screen": " | ".join(shown),
            "on_screen_terms": normalize(" ".join(shown)),
            "speakers": bucket.speakers,
            "speaker_names": " ".join(bucket.speakers),
            "scene": bucket.scene,
            "chapter": bucket.chapter,
            "entities": (names := list(dict.fromkeys(a.text for a in bucket.of_type("entity")))),
            "entity_terms": entity_terms(names),
            "keywords": list(dict.fromkeys(a.text for a in bucket.of_type("keyword"))),
            "models": sorted(bucket.annotations),
            "annotations": json.dumps(bucket.nested(), sort_keys=True),
        }
        rows.append(MomentRow(**fields, card=bucket_card(bucket, fields)))
    return rows


class VideoMomentsRecord(StageRecord):
    """The ``video_moments`` artifact (schemas/video_moments.json): ``Moments.record()`` and what
    the PII gate found and dropped under the policy in force."""

    source_key: str
    duration_s: float
    bucket_s: float
    models: dict[str, str]
    counts: dict[str, int]
    annotations: list[dict[str, Any]]
    buckets: list[dict[str, Any]]
    pii_policy: str
    pii_found: dict[str, int]
    pii_dropped: int


class MomentsIndexRecord(StageRecord):
    """A video's record in the moments index stage: its rows (one a second), the sentences
    embedded for them, what the upsert wrote and deleted, and the model of the vectors."""

    rows: int
    sentences: int
    upserted: int
    deleted: int
    embedding_model: str


def moments_record(
    key: str,
    source: Mapping[str, Any],
    engines: Engines,
    bucket_s: float = BUCKET_S,
    policy: pii.PiiPolicy = "off",
) -> VideoMomentsRecord:
    """The video's annotations through the PII gate, with entities and keywords added, fused."""
    gate = text_annotations(key, annotations_from_artifacts(key, source, engines), policy)
    moments = fuse(key, gate.annotations, float(source["chapters"]["duration_s"]), bucket_s)
    return {  # type: ignore[typeddict-item]
        "status": Status.OK,
        "source_url": source["source_url"],
        **moments.record(),
        "pii_policy": policy,
        "pii_found": gate.pii_found,
        "pii_dropped": gate.pii_dropped,
    }
