"""A video's timeline: chapters, and the fixed time buckets the chunks are cut from.

Chapters are the platform's when it has them. Otherwise boundaries come from four signals — a
silence between words, a change of speaker, a scene cut, a drop in similarity between the words
of neighbouring windows (a topic shift) — each a scored candidate; candidates close together add
up, and the strongest are kept with a minimum chapter length. Chapters never overlap and cover
the video from 0 to its duration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.frames import TextSpan, scene_cuts_of, spans_of
from media_assets.video.speakers import Turn, turns_of
from media_assets.video.speech import Word, words_of

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Chapter:
    start_s: float
    end_s: float
    title: str
    source: str  # "platform" or the signals that made its start boundary

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChapterSettings:
    min_chapter_s: float = 60.0
    max_chapters: int = 30
    silence_s: float = 1.5
    topic_window_s: float = 30.0
    merge_within_s: float = 3.0
    min_score: float = 1.0  # one strong signal (a scene cut) or two weaker ones together
    title_words: int = 8


@dataclass
class Segment:
    start_s: float
    end_s: float
    text: str
    speakers: list[str] = field(default_factory=list)
    on_screen: list[str] = field(default_factory=list)
    scene: int = 0
    chapter: int = 0

    def record(self) -> dict[str, Any]:
        return asdict(self)


def platform_chapters(raw: Sequence[Mapping[str, Any]], duration_s: float) -> list[Chapter]:
    """yt-dlp's chapters, clipped to the video, sorted, with gaps closed so they cover it."""
    items = sorted(
        (float(c.get("start_time") or 0), float(c.get("end_time") or duration_s), c.get("title"))
        for c in raw
    )
    chapters: list[Chapter] = []
    for i, (start, _, title) in enumerate(items):
        end = items[i + 1][0] if i + 1 < len(items) else duration_s
        start = 0.0 if i == 0 else max(0.0, min(start, duration_s))
        if end > start:
            chapters.append(
                Chapter(start, min(end, duration_s), str(title or f"Part {i + 1}"), "platform")
            )
    return chapters


def _candidates(
    words: Sequence[Word],
    turns: Sequence[Turn],
    scene_cuts: Sequence[float],
    embed: Embed | None,
    settings: ChapterSettings,
) -> list[tuple[float, float, str]]:
    found: list[tuple[float, float, str]] = []  # (time, score, signal)
    for before, after in pairwise(words):
        gap = after.start_s - before.end_s
        if gap >= settings.silence_s:
            found.append((after.start_s, min(gap / (2 * settings.silence_s), 1.0), "silence"))
    for before, after in pairwise(turns):
        if before.speaker != after.speaker:
            found.append((after.start_s, 0.5, "speaker"))
    found += [(t, 1.0, "scene") for t in scene_cuts]
    if embed is not None and words:
        width = settings.topic_window_s
        edges = np.arange(0, words[-1].end_s + width, width)
        texts = [" ".join(w.text for w in words if a <= w.start_s < a + width) for a in edges[:-1]]
        texts = [t for t in texts if t]
        if len(texts) >= 3:
            vectors = embed(texts)
            similarity = np.sum(vectors[:-1] * vectors[1:], axis=1)
            low = similarity.mean() - similarity.std()
            found += [
                (float(edges[i + 1]), 1.0, "topic") for i, s in enumerate(similarity) if s < low
            ]
    return found


def detect_chapters(
    duration_s: float,
    words: Sequence[Word],
    turns: Sequence[Turn],
    scene_cuts: Sequence[float],
    on_screen: Sequence[TextSpan],
    embed: Embed | None = None,
    settings: ChapterSettings | None = None,
) -> list[Chapter]:
    settings = settings or ChapterSettings()
    candidates = sorted(_candidates(words, turns, scene_cuts, embed, settings))
    groups: list[list[tuple[float, float, str]]] = []
    for candidate in candidates:
        if groups and candidate[0] - groups[-1][0][0] <= settings.merge_within_s:
            groups[-1].append(candidate)
        else:
            groups.append([candidate])
    scored = sorted(
        ((sum(c[1] for c in g), g[0][0], "+".join(sorted({c[2] for c in g}))) for g in groups),
        reverse=True,
    )
    starts: dict[float, str] = {0.0: "start"}
    for score, time_s, signals in scored:
        if score < settings.min_score or len(starts) >= settings.max_chapters:
            break
        far = all(abs(time_s - s) >= settings.min_chapter_s for s in starts)
        if far and duration_s - time_s >= settings.min_chapter_s:
            starts[time_s] = signals
    bounds = sorted(starts)
    chapters = []
    for i, start in enumerate(bounds):
        end = bounds[i + 1] if i + 1 < len(bounds) else duration_s
        chapters.append(
            Chapter(
                round(start, 3),
                round(end, 3),
                _title(start, end, words, on_screen, settings),
                starts[start],
            )
        )
    return chapters


def _title(
    start: float,
    end: float,
    words: Sequence[Word],
    on_screen: Sequence[TextSpan],
    settings: ChapterSettings,
) -> str:
    """The text on screen when the chapter starts, else its first words."""
    for span in on_screen:
        if span.start_s <= start + 2 and span.end_s > start:
            return span.text[:120]
    spoken = [w.text for w in words if start <= w.start_s < end][: settings.title_words]
    return " ".join(spoken) + ("…" if spoken else "") if spoken else f"{start:.0f} s"


# Length of a video segment (the fusion bucket the chunks are made from), in seconds.
SEGMENT_S = 10.0


def build_segments(
    duration_s: float,
    words: Sequence[Word],
    on_screen: Sequence[TextSpan],
    scene_cuts: Sequence[float],
    chapters: Sequence[Chapter],
    bucket_s: float = SEGMENT_S,
) -> list[Segment]:
    """Fixed buckets, each with the words spoken in it (by their midpoint), their speakers, the
    text on screen during it, and the scene and chapter it starts in."""
    segments = []
    for start in np.arange(0.0, max(duration_s, 1e-3), bucket_s):
        end = min(float(start) + bucket_s, duration_s)
        spoken = [w for w in words if start <= (w.start_s + w.end_s) / 2 < end]
        segments.append(
            Segment(
                start_s=round(float(start), 3),
                end_s=round(end, 3),
                text=" ".join(w.text for w in spoken),
                speakers=list(dict.fromkeys(w.speaker for w in spoken if w.speaker)),
                on_screen=[s.text for s in on_screen if s.start_s < end and s.end_s > start],
                scene=sum(1 for t in scene_cuts if t <= start),
                chapter=next(
                    (i for i, c in enumerate(chapters) if c.start_s <= start < c.end_s),
                    max(len(chapters) - 1, 0),
                ),
            )
        )
    return segments


def chapters_of(record: Mapping[str, Any]) -> list[Chapter]:
    """The ``Chapter``s of a chapters record."""
    return [Chapter(**c) for c in record["chapters"]]


def segments_of(record: Mapping[str, Any]) -> list[Segment]:
    """The ``Segment``s of a video_segments record."""
    return [Segment(**s) for s in record["segments"]]


class ChaptersRecord(StageRecord):
    """The ``chapters`` artifact (schemas/chapters.json): chapters (``Chapter`` fields) covering
    the video without overlap."""

    duration_s: float
    chapters: list[dict[str, Any]]


class SegmentsRecord(StageRecord):
    """The ``video_segments`` artifact (schemas/video_segments.json): fixed time buckets
    (``Segment`` fields)."""

    segments: list[dict[str, Any]]


def chapters_record(source: Mapping[str, Any], embed: Embed | None = None) -> ChaptersRecord:
    """The ``chapters`` record of a video's joined artifacts: the platform's chapters, else
    detected ones (``embed`` gives the topic shifts)."""
    duration = source["media"]["duration_s"]
    raw = source["video_info"].get("chapters") or []
    if raw:
        found = platform_chapters(raw, duration)
    else:
        found = detect_chapters(
            duration,
            words_of(source["speaker_turns"]),
            turns_of(source["speaker_turns"]),
            scene_cuts_of(source["key_frames"]),
            spans_of(source["frame_text"]),
            embed=embed,
        )
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "duration_s": duration,
        "chapters": [c.record() for c in found],
    }


def segments_record(source: Mapping[str, Any], bucket_s: float = SEGMENT_S) -> SegmentsRecord:
    """The ``video_segments`` record of a video's joined artifacts."""
    segments = build_segments(
        source["chapters"]["duration_s"],
        words_of(source["speaker_turns"]),
        spans_of(source["frame_text"]),
        scene_cuts_of(source["key_frames"]),
        chapters_of(source["chapters"]),
        bucket_s,
    )
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "segments": [s.record() for s in segments],
    }
