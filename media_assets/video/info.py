"""Video metadata from yt-dlp, without downloading any media.

One ``YoutubeDL`` serves a whole batch: its first extraction compiles every extractor's URL
pattern (seconds), later ones take tens of milliseconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NotRequired

from media_assets.chunks import sha256_text
from media_assets.egress import Session
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.retry import classify_http
from media_assets.video.media import media_duration


@dataclass
class VideoInfo:
    url: str
    status: str  # "ok" or "failed"
    title: str | None = None
    uploader: str | None = None
    duration_s: float | None = None  # the generic extractors never know it; ffprobe does
    extractor: str | None = None
    media_url: str | None = None
    chapters: list[dict[str, Any]] = field(default_factory=list)
    subtitles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    automatic_captions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str | None = None
    error_class: str | None = None


def _tracks(offers: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    return {
        lang: [{"ext": t.get("ext"), "url": t.get("url")} for t in formats if t.get("url")]
        for lang, formats in (offers or {}).items()
    }


def _title(info: dict[str, Any]) -> str | None:
    """The title; yt-dlp's html5 extractor numbers a page's media "Title (1)", even when alone."""
    title = info.get("title")
    if title and info.get("extractor") == "html5":
        return re.sub(r" \(\d+\)$", "", title)
    return title


def extract_infos(
    urls: Sequence[str],
    extractors: Sequence[str] | None = None,
    egress: Session | None = None,
) -> list[VideoInfo]:
    """Metadata for each URL; a URL yt-dlp cannot read fails alone with the reason.

    ``extractors`` limits which yt-dlp extractors are tried (e.g. ``["generic", "html5"]`` for
    plain pages and direct media links), which also makes the first extraction fast. Every
    request goes through ``egress`` (the fetch policy's proxy) when given — yt-dlp follows
    redirects and reads pages itself, so only the proxy sees every address it connects to.
    """
    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "noplaylist": True,
        "socket_timeout": 30,
        "retries": 1,
        "extractor_retries": 0,
    }
    if extractors:
        options["allowed_extractors"] = list(extractors)
    if egress is not None:
        options["proxy"] = egress.url
    # yt-dlp loads here: a quarter of a second that web-only processes need not pay.
    import yt_dlp

    results = []
    with yt_dlp.YoutubeDL(options) as ydl:
        for url in urls:
            since = time.monotonic()
            try:
                info = ydl.sanitize_info(ydl.extract_info(url, download=False))
            except Exception as exc:  # one URL's failure, whatever it is, is that URL's alone
                error, error_class = explain_fetch_error(exc, egress, since)
                results.append(
                    VideoInfo(url=url, status="failed", error=error, error_class=error_class)
                )
                continue
            results.append(
                VideoInfo(
                    url=url,
                    status="ok",
                    title=_title(info),
                    uploader=info.get("uploader"),
                    duration_s=info.get("duration"),
                    extractor=info.get("extractor"),
                    media_url=info.get("url"),
                    chapters=list(info.get("chapters") or []),
                    subtitles=_tracks(info.get("subtitles")),
                    automatic_captions=_tracks(info.get("automatic_captions")),
                )
            )
    return results


def explain_fetch_error(
    exc: BaseException, egress: Session | None, since: float
) -> tuple[str, str]:
    """A fetch failure as (message, error class): what the egress proxy refused or cut says it
    best; then the HTTP status yt-dlp quotes; an unsupported page is ``no_video``."""
    message = str(exc).removeprefix("ERROR: ").strip() or type(exc).__name__
    event = egress.first(since=since) if egress is not None else None
    if event is not None:
        return event.message, event.error_class
    if "Unsupported URL" in message:
        return "no video found at this URL", "no_video"
    if status := re.search(r"HTTP Error (\d{3})", message):
        return message, classify_http(int(status.group(1)))
    if isinstance(exc, UnicodeError | ValueError):
        return f"invalid URL: {message}", "invalid"
    if "timed out" in message.lower():
        return message, "timeout"
    if type(exc).__name__ in ("DownloadError", "ExtractorError") or isinstance(exc, OSError):
        return message, "network"
    return f"{type(exc).__name__}: {message}", "exception"


class VideoInfoRecord(StageRecord):
    """The ``video_info`` artifact (schemas/video_info.json): ``VideoInfo``'s fields, the URL as
    ``source_url``, and where the duration came from when ffprobe had to tell."""

    title: str | None
    uploader: str | None
    duration_s: float | None
    duration_from: NotRequired[str]
    extractor: str | None
    media_url: str | None
    chapters: list[dict[str, Any]]
    subtitles: dict[str, list[dict[str, Any]]]
    automatic_captions: dict[str, list[dict[str, Any]]]


def info_record(
    info: VideoInfo, allow_hosts: Sequence[str], probe_timeout_s: float = 60
) -> VideoInfoRecord:
    """The ``video_info`` record; a duration the extractor lacks comes from ffprobe (reading only
    the headers) — but only when no caption track is on offer, since on the captions path the
    media is never requested."""
    record = asdict(info)
    url = record.pop("url")
    has_tracks = bool(info.subtitles or info.automatic_captions)
    if info.status == Status.OK and info.duration_s is None and info.media_url and not has_tracks:
        duration = media_duration(info.media_url, allow_hosts, probe_timeout_s)
        if duration is not None:
            record["duration_s"], record["duration_from"] = duration, "ffprobe"
    return {**record, "source_url": url, "input_sha256": sha256_text(url)}  # type: ignore[typeddict-item]


def refused_record(url: str, error: str, dns_failure: bool) -> VideoInfoRecord:
    """The record of a URL whose address the policy refused (or could not resolve): no request
    was made. A refusal is permanent; a failed lookup may pass next time."""
    return {  # type: ignore[typeddict-item]
        "status": Status.FAILED if dns_failure else Status.REFUSED,
        "source_url": url,
        "error": error,
        "error_class": "dns" if dns_failure else "refused",
    }
