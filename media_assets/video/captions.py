"""Platform captions: choosing a track and reading it into timed cues.

The first piece of the video chain (issue 3): a video whose platform already has captions never
needs its media downloaded. Millisecond timestamps are kept (webvtt-py's ``start_in_seconds``
truncates them), and WebVTT ``<v Speaker>`` voice tags become the cue's speaker.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import webvtt

CaptionFormat = Literal["vtt", "srt"]
FORMATS: tuple[CaptionFormat, ...] = ("vtt", "srt")


class CaptionFormatError(ValueError):
    """A caption file that cannot be read; permanent for that URL."""


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class CaptionTrack:
    source: Literal["manual", "automatic"]
    language: str
    ext: CaptionFormat
    url: str


def parse_captions(text: str, fmt: CaptionFormat) -> list[Cue]:
    """Cues in time order, markup removed, whitespace folded, empty cues and exact repeats of
    the previous cue (rolling automatic captions) dropped."""
    try:
        parsed = webvtt.WebVTT.from_buffer(io.StringIO(text), format=fmt)
    except Exception as exc:  # webvtt raises its own hierarchy, not documented as stable
        raise CaptionFormatError(f"unreadable {fmt} captions: {exc}") from exc
    cues: list[Cue] = []
    for caption in parsed:
        words = " ".join(caption.text.split())
        if not words or (cues and cues[-1].text == words):
            continue
        cues.append(
            Cue(
                caption.start_time.in_milliseconds() / 1000,
                caption.end_time.in_milliseconds() / 1000,
                words,
                caption.voice,
            )
        )
    return sorted(cues, key=lambda c: (c.start_s, c.end_s))


def _tracks(
    offers: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    language: str,
) -> list[Mapping[str, Any]]:
    """Formats offered for ``language``, or for a regional variant of it (en -> en-US)."""
    offers = offers or {}
    exact = list(offers.get(language, []))
    if exact:
        return exact
    regional = sorted(k for k in offers if k.split("-")[0] == language)
    return list(offers[regional[0]]) if regional else []


def pick_track(info: Mapping[str, Any], languages: Sequence[str] = ("en",)) -> CaptionTrack | None:
    """The track to use from a yt-dlp info dict: manual subtitles before automatic captions, then
    the first language in ``languages`` that has a readable format (VTT before SRT)."""
    for source, field in (("manual", "subtitles"), ("automatic", "automatic_captions")):
        for language in languages:
            offered = {t.get("ext"): t for t in _tracks(info.get(field), language) if t.get("url")}
            for ext in FORMATS:
                if ext in offered:
                    return CaptionTrack(source, language, ext, str(offered[ext]["url"]))  # type: ignore[arg-type]
    return None
