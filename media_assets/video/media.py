"""Media for the fallback path: download with caps, check it decodes, normalise its audio.

Only videos without usable captions (or when configuration says always) come here: this is where
the bytes are paid for. ffprobe is the contract (a decodable audio or video stream, a positive
duration); the loudness pass decodes all of the audio, so a truncated file fails there with
ffmpeg's own reason.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOUDNESS_TARGET = {"I": -23.0, "TP": -2.0, "LRA": 7.0}  # EBU R128


class MediaError(Exception):
    """A media file that cannot be used; ``error_class`` says which kind, all permanent."""

    def __init__(self, message: str, error_class: str):
        super().__init__(message)
        self.error_class = error_class


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 2_000_000_000
    max_duration_s: float = 4 * 3600


@dataclass
class Probe:
    duration_s: float
    format_name: str
    audio_codec: str | None
    video_codec: str | None
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


@dataclass
class NormalizedAudio:
    path_48k: Path
    path_16k: Path
    measured: dict[str, float] = field(default_factory=dict)


def _run(command: Sequence[str], what: str, error_class: str = "corrupt_media") -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MediaError(f"{what} failed: {reason[:300]}", error_class)
    return done.stderr


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, folder: Path, limits: MediaLimits) -> Path:
    """The media behind ``url`` (a platform page, a page with ``<video>`` or a direct link),
    at most ``limits.max_bytes``; yt-dlp picks the best single-file format."""
    folder.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "format": "best",
        "max_filesize": limits.max_bytes,
        "outtmpl": str(folder / "original.%(ext)s"),
        "allowed_extractors": ["default"],
    }
    import yt_dlp  # here: web-only processes need not load it
    from yt_dlp.utils import DownloadError

    with yt_dlp.YoutubeDL(options) as ydl:
        try:
            info = ydl.extract_info(url, download=True)
        except DownloadError as exc:
            raise MediaError(str(exc).removeprefix("ERROR: ").strip(), "download") from exc
    files = [p for p in folder.glob("original.*") if not p.name.endswith(".part")]
    if not files:
        size = (info or {}).get("filesize") or (info or {}).get("filesize_approx")
        raise MediaError(
            f"media larger than the cap of {limits.max_bytes} bytes ({size or 'unknown'} bytes)",
            "too_large",
        )
    return files[0]


def probe(path: Path, limits: MediaLimits) -> Probe:
    """ffprobe's view of ``path``; a file without a decodable stream or duration is refused."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        # ffprobe names the file first; the cause is what matters ("moov atom not found" …).
        lines = [line.replace(f"{path}: ", "") for line in out.stderr.strip().splitlines()]
        reason = "; ".join(dict.fromkeys(lines)) or "unreadable"
        raise MediaError(f"not a readable media file: {reason[:300]}", "corrupt_media")
    data = json.loads(out.stdout or "{}")
    streams = data.get("streams", [])
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video"
            and not s.get("disposition", {}).get("attached_pic")  # cover art is not video
        ),
        None,
    )
    duration = float(data.get("format", {}).get("duration") or 0)
    if audio is None and video is None:
        raise MediaError("no audio or video stream in the file", "corrupt_media")
    if duration <= 0:
        raise MediaError("the file reports no duration", "corrupt_media")
    if duration > limits.max_duration_s:
        raise MediaError(
            f"duration {duration:.0f} s is over the cap of {limits.max_duration_s:.0f} s",
            "too_long",
        )
    return Probe(
        duration_s=duration,
        format_name=str(data.get("format", {}).get("format_name")),
        audio_codec=audio.get("codec_name") if audio else None,
        video_codec=video.get("codec_name") if video else None,
        width=video.get("width") if video else None,
        height=video.get("height") if video else None,
        sample_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
        channels=audio.get("channels") if audio else None,
    )


def _loudnorm_filter(measured: dict[str, Any] | None = None) -> str:
    target = ":".join(f"{k}={v}" for k, v in LOUDNESS_TARGET.items())
    if measured is None:
        return f"loudnorm={target}:print_format=json"
    return (
        f"loudnorm={target}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
        f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
        f":offset={measured['target_offset']}:linear=true:print_format=json"
    )


def normalize_audio(path: Path, folder: Path) -> NormalizedAudio:
    """Two-pass EBU R128 loudness normalisation to 48 kHz / 16-bit PCM, plus a 16 kHz mono copy
    for the speech models. ``-xerror`` turns a decoding error mid-file into a failure."""
    folder.mkdir(parents=True, exist_ok=True)
    common = ["ffmpeg", "-hide_banner", "-nostdin", "-xerror", "-i", str(path), "-vn"]
    stderr = _run([*common, "-af", _loudnorm_filter(), "-f", "null", "-"], "decoding the audio")
    measured = json.loads(stderr[stderr.rindex("{") : stderr.rindex("}") + 1])
    out48, out16 = folder / "audio_48k.wav", folder / "audio_16k.wav"
    _run(
        [
            *common,
            "-af",
            _loudnorm_filter(measured),
            "-ar",
            "48000",  # loudnorm upsamples to 192 kHz internally
            "-c:a",
            "pcm_s16le",
            "-y",
            str(out48),
        ],
        "normalising the audio",
    )
    _run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-i",
            str(out48),
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "pcm_s16le",
            "-y",
            str(out16),
        ],
        "resampling to 16 kHz",
    )
    numbers = {k: float(v) for k, v in measured.items() if k.startswith(("input_", "target_"))}
    return NormalizedAudio(out48, out16, numbers)


def container_tags(path: Path) -> dict[str, str]:
    """Title, artist and the like from the container; mutagen misreports channels and duration,
    so those come from ffprobe."""
    import mutagen

    try:
        tags = mutagen.File(path, easy=True)
    except mutagen.MutagenError:
        return {}
    if tags is None or not tags.tags:
        return {}
    return {
        str(k): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
        for k, v in tags.tags.items()
    }


def media_duration(url_or_path: str) -> float | None:
    """Duration from ffprobe (reads only the headers it needs); the generic extractors never
    know it."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url_or_path],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    try:
        return float(json.loads(out.stdout)["format"]["duration"])
    except (KeyError, ValueError, json.JSONDecodeError):
        return None
