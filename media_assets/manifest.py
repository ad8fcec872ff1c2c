"""The URL manifest: JSON Lines or CSV in, validated entries and per-line problems out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from partitions.keys import InvalidURLError, normalize_url, partition_key

Kind = Literal["web", "video"]
KINDS: tuple[Kind, ...] = ("web", "video")
MEDIA_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".webm",
        ".mkv",
        ".avi",
        ".mp3",
        ".m4a",
        ".wav",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".aac",
        ".m3u8",
        ".mpd",
    }
)


@dataclass(frozen=True)
class ManifestEntry:
    url: str
    normalized_url: str
    key: str
    kind: Kind
    line: int
    tags: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        return {
            "url": self.url,
            "normalized_url": self.normalized_url,
            "key": self.key,
            "kind": self.kind,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class ManifestProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    problems: list[ManifestProblem]

    def by_kind(self, kind: Kind) -> list[ManifestEntry]:
        return [e for e in self.entries if e.kind == kind]


@cache
def _video_extractors() -> tuple[tuple[Any, str], ...]:
    """yt-dlp's site extractors with their URL patterns, without the generic one (it accepts
    any URL) and those for news articles (mostly text around an occasional clip)."""
    from yt_dlp.extractor import gen_extractor_classes

    found = []
    for ie in gen_extractor_classes():
        pattern = getattr(ie, "_VALID_URL", None)
        patterns = pattern if isinstance(pattern, list | tuple) else [pattern]
        text = " ".join(p for p in patterns if isinstance(p, str)).lower()
        if text and ie.ie_key() != "Generic" and "Article" not in ie.ie_key():
            found.append((ie, text))
    return tuple(found)


@cache
def _extractors_naming(label: str) -> tuple[Any, ...]:
    return tuple(ie for ie, pattern in _video_extractors() if label in pattern)


def is_platform_video(url: str) -> bool:
    """True when a yt-dlp site extractor claims the URL by its pattern (no request is made).

    Only extractors whose pattern names a label of the URL's host are tried ("youtube" for
    www.youtube.com): trying all 1,700 costs ~13 ms a URL, which a 10k-line manifest feels.
    """
    host = (urlsplit(url).hostname or "").lower()
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return False  # an IP address is nobody's platform
    labels = [label for label in host.split(".")[:-1] if label not in ("www", "m")]
    return any(ie.suitable(url) for label in labels for ie in _extractors_naming(label))


def detect_kind(url: str) -> Kind:
    """Kind of a URL given without one: a media file extension, or a URL one of yt-dlp's site
    extractors recognises (YouTube, Vimeo, …), makes it a video."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return "video" if suffix in MEDIA_EXTENSIONS or is_platform_video(url) else "web"


def _rows_jsonl(text: str) -> Iterable[tuple[int, dict[str, object] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            row = json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield number, row if isinstance(row, dict) else "expected a JSON object with a 'url' field"


def _rows_csv(text: str) -> Iterable[tuple[int, dict[str, object] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "url" not in [f.strip() for f in reader.fieldnames]:
        yield 1, "CSV manifest needs a header row with a 'url' column"
        return
    for row in reader:
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        tags = {k[len("tag_") :]: v for k, v in clean.items() if k.startswith("tag_") and v}
        yield (
            reader.line_num,
            {"url": clean.get("url", ""), "kind": clean.get("kind") or None, "tags": tags},
        )


def parse_manifest(text: str, fmt: Literal["jsonl", "csv"]) -> Manifest:
    """Parse a manifest; bad lines become problems with their line numbers, the rest proceed."""
    rows = _rows_jsonl(text) if fmt == "jsonl" else _rows_csv(text)
    entries: list[ManifestEntry] = []
    problems: list[ManifestProblem] = []
    first_line_of: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, str):
            problems.append(ManifestProblem(number, row))
            continue
        url = row.get("url")
        kind = row.get("kind")
        tags = row.get("tags") or {}
        if not isinstance(url, str) or not url.strip():
            problems.append(ManifestProblem(number, "missing 'url'"))
            continue
        if kind is not None and kind not in KINDS:
            problems.append(ManifestProblem(number, f"kind {kind!r} is not one of {list(KINDS)}"))
            continue
        if not isinstance(tags, dict):
            problems.append(ManifestProblem(number, "'tags' must be an object"))
            continue
        try:
            normalized = normalize_url(url)
        except InvalidURLError as exc:
            problems.append(ManifestProblem(number, str(exc)))
            continue
        key = partition_key(normalized)
        if key in first_line_of:
            problems.append(
                ManifestProblem(
                    number,
                    f"duplicate of line {first_line_of[key]} after normalization ({normalized})",
                )
            )
            continue
        first_line_of[key] = number
        entries.append(
            ManifestEntry(
                url=url.strip(),
                normalized_url=normalized,
                key=key,
                kind=kind or detect_kind(normalized),
                line=number,
                tags={str(k): str(v) for k, v in tags.items()},
            )
        )
    return Manifest(entries, problems)


def manifest_format(name: str) -> Literal["jsonl", "csv"]:
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(
        f"manifest {name!r}: name it .jsonl (JSON Lines) or .csv (with a 'url' column)"
    )
