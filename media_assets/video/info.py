"""Video metadata from yt-dlp, without downloading any media.

One ``YoutubeDL`` serves a whole batch: its first extraction compiles every extractor's URL
pattern (seconds), later ones take tens of milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


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
) -> list[VideoInfo]:
    """Metadata for each URL; a URL yt-dlp cannot read fails alone with the reason.

    ``extractors`` limits which yt-dlp extractors are tried (e.g. ``["generic", "html5"]`` for
    plain pages and direct media links), which also makes the first extraction fast.
    """
    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "skip_download": True,
        "noplaylist": True,
    }
    if extractors:
        options["allowed_extractors"] = list(extractors)
    # yt-dlp loads here: a quarter of a second that web-only processes need not pay.
    import yt_dlp
    from yt_dlp.utils import DownloadError

    results = []
    with yt_dlp.YoutubeDL(options) as ydl:
        for url in urls:
            try:
                info = ydl.sanitize_info(ydl.extract_info(url, download=False))
            except DownloadError as exc:
                message = str(exc).removeprefix("ERROR: ").strip()
                unsupported = "Unsupported URL" in message
                results.append(
                    VideoInfo(
                        url=url,
                        status="failed",
                        error="no video found at this URL" if unsupported else message,
                        error_class="no_video" if unsupported else "network",
                    )
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
