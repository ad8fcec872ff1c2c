"""Platform captions: choosing a track and reading it into timed cues.

The first piece of the video chain (issue 3): a video whose platform already has captions never
needs its media downloaded. Millisecond timestamps are kept (webvtt-py's ``start_in_seconds``
truncates them), and WebVTT ``<v Speaker>`` voice tags become the cue's speaker.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx
import webvtt

from media_assets.egress import EGRESS_HEADER, Limits, egress_session, raise_for_refusal
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.retry import with_retries
from media_assets.video.media import MediaError

CaptionFormat = Literal["vtt", "srt"]
FORMATS: tuple[CaptionFormat, ...] = ("vtt", "srt")
MAX_CAPTION_BYTES = 5_000_000
# The ``path`` a captions record took when its cues are usable.
CAPTIONS = "captions"


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


class CaptionsRecord(StageRecord):
    """The ``captions`` artifact (schemas/captions.json): the track chosen and its cues
    (``Cue`` fields), or why there are none (``no captions``, ``empty captions``)."""

    path: str
    track: dict[str, str] | None
    cues: list[dict[str, Any]]


def cues_of(record: Mapping[str, Any]) -> list[Cue]:
    return [Cue(**c) for c in record["cues"]]


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


@with_retries(max_seconds=30)
def download_captions(url: str, allow_hosts: Sequence[str], user_agent: str) -> str:
    """A caption file through the egress proxy (redirects are the proxy's to check), capped."""
    limits = Limits(max_bytes_per_connection=MAX_CAPTION_BYTES, idle_s=30, deadline_s=60)
    with egress_session(allow_hosts, limits) as egress:
        try:
            response = httpx.get(
                url,
                follow_redirects=True,
                timeout=30,
                headers={"User-Agent": user_agent},
                proxy=egress.url,
                trust_env=False,
            )
        except httpx.ProxyError as exc:
            raise_for_refusal(str(exc))
            raise
        except httpx.TransportError as exc:
            if cut := egress.first("too_large"):
                raise MediaError(f"caption track: {cut.message}", "too_large") from exc
            raise
        raise_for_refusal(response.reason_phrase, response.headers.get(EGRESS_HEADER))
    response.raise_for_status()
    return response.text


def captions_record(
    info: Mapping[str, Any], languages: Sequence[str], allow_hosts: Sequence[str], user_agent: str
) -> CaptionsRecord:
    """The ``captions`` record of a video's metadata: its best track's cues, downloaded."""
    track = pick_track(info, languages)
    base = {"status": Status.OK, "source_url": info["source_url"]}
    if track is None:
        return CaptionsRecord(**base, path="no captions", track=None, cues=[])
    text = download_captions(track.url, allow_hosts, user_agent)
    cues = parse_captions(text, track.ext)
    return CaptionsRecord(
        **base,
        path=CAPTIONS if cues else "empty captions",
        track=asdict(track),
        cues=[asdict(c) for c in cues],
    )
