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
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NotRequired, Protocol

from media_assets.egress import Limits, Session, egress_session, subprocess_env
from media_assets.names import Status
from media_assets.records import StageRecord

LOUDNESS_TARGET = {"I": -23.0, "TP": -2.0, "LRA": 7.0}  # EBU R128
# The ``path`` a media record took: the file was downloaded, or the captions made it needless.
DOWNLOADED = "downloaded"
NOT_NEEDED = "not needed: captions"


class FileStore(Protocol):
    """Where stages keep binary files (the object store), by key, to and from local paths."""

    def put_file(self, key: str, path: Path) -> str: ...

    def get_file(self, key: str, path: Path) -> Path: ...


# A file name -> its key beside the partition's record (``ArtifactStore.blob_key``, bound).
BlobKey = Callable[[str], str]


def local_copy(store: FileStore, key: str, folder: Path) -> Path:
    """The stored file ``key`` copied into ``folder``, under its own name."""
    return store.get_file(key, folder / Path(key).name)


class MediaRecord(StageRecord):
    """The ``media`` artifact (schemas/media.json): the downloaded file's facts and the keys of
    the original and its normalised audio, or a ``not needed: captions`` record."""

    path: str
    duration_s: float
    bytes: NotRequired[int]
    sha256: NotRequired[str]
    probe: NotRequired[dict[str, Any]]
    tags: NotRequired[dict[str, str]]
    files: NotRequired[dict[str, str]]  # original, audio_48k, audio_16k -> object-store key
    loudness: NotRequired[dict[str, float]]


class MediaError(Exception):
    """A media file that cannot be used; ``error_class`` says which kind, all permanent."""

    def __init__(self, message: str, error_class: str):
        super().__init__(message)
        self.error_class = error_class


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 2_000_000_000
    max_duration_s: float = 4 * 3600
    # A download slower than this on average (after a grace period) is a stalled server.
    # Floats as the environment gives them: recorded as a stage setting, 16384 and 16384.0 would
    # count as different settings and run the media stage again.
    min_bytes_per_s: float = 16_384.0
    download_timeout_s: float = 3600.0
    # ffmpeg and ffprobe on a local file: generous, but not forever.
    tool_timeout_s: float = 3600

    def egress(self) -> Limits:
        return Limits(
            max_bytes=self.max_bytes,
            min_bytes_per_s=self.min_bytes_per_s,
            grace_s=20,
            idle_s=30,
            deadline_s=self.download_timeout_s,
            hints={
                "too_large": "raise MEDIA_ASSETS_VIDEO_MAX_BYTES if this media is wanted",
                "too_slow": "the server is too slow (MEDIA_ASSETS_VIDEO_MIN_RATE); retried later",
                "stalled": "the server stopped sending; retried later",
                "deadline": "raise MEDIA_ASSETS_VIDEO_DOWNLOAD_TIMEOUT_S for very long media",
            },
        )


# ffmpeg reads local files only, so a playlist inside a downloaded file cannot reach out; remote
# reads speak http(s) through the egress proxy and nothing else (no file:, no rtmp:, …).
LOCAL_ONLY = ["-protocol_whitelist", "file,pipe"]
REMOTE_ONLY = ["-protocol_whitelist", "http,https,tcp,tls,crypto,httpproxy"]


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


def run_tool(
    command: Sequence[str],
    what: str,
    timeout_s: float,
    error_class: str = "corrupt_media",
    egress: Session | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ffmpeg/ffprobe/tesseract with a time limit; network access only through ``egress``.
    A failure or a timeout is a :class:`MediaError` with the tool's own last words."""
    env = subprocess_env(egress) if egress is not None else None
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, check=False, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what} did not finish within {timeout_s:.0f} s", "timeout") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MediaError(f"{what} failed: {reason[:300]}", error_class)
    return done


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, folder: Path, limits: MediaLimits, allow_hosts: Sequence[str]) -> Path:
    """The media behind ``url`` (a platform page, a page with ``<video>`` or a direct link),
    at most ``limits.max_bytes``; yt-dlp picks the best single-file format.

    Every connection — redirects, HLS/DASH segments, a player page — goes through the egress
    proxy under the fetch policy, which also counts the bytes as they arrive and stops a
    transfer over the cap, under the minimum rate, or past the time limit.
    """
    folder.mkdir(parents=True, exist_ok=True)
    import yt_dlp  # here: web-only processes need not load it

    with egress_session(allow_hosts, limits.egress()) as egress:
        options: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "noplaylist": True,
            "format": "best",
            "max_filesize": limits.max_bytes,
            "outtmpl": str(folder / "original.%(ext)s"),
            "allowed_extractors": ["default"],
            "proxy": egress.url,
            "socket_timeout": 30,
            "retries": 1,
            "fragment_retries": 1,
            "extractor_retries": 0,
        }
        info: dict[str, Any] | None = None
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(url, download=True)
        except Exception as exc:  # yt-dlp's errors, and whatever a hostile server provokes
            from media_assets.video.info import explain_fetch_error

            message, error_class = explain_fetch_error(exc, egress, egress.started)
            raise MediaError(f"download failed: {message}", error_class) from exc
        # A transfer the proxy cut may look complete to yt-dlp (no declared length).
        if cut := egress.first("too_large", "too_slow", "stalled", "deadline"):
            raise MediaError(f"download stopped: {cut.message}", cut.error_class)
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
    command = [
        "ffprobe",
        "-v",
        "error",
        *LOCAL_ONLY,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        str(path),
    ]
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=limits.tool_timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError("ffprobe did not finish reading the file", "timeout") from exc
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


def normalize_audio(path: Path, folder: Path, timeout_s: float = 3600) -> NormalizedAudio:
    """Two-pass EBU R128 loudness normalisation to 48 kHz / 16-bit PCM, plus a 16 kHz mono copy
    for the speech models. ``-xerror`` turns a decoding error mid-file into a failure."""
    folder.mkdir(parents=True, exist_ok=True)
    common = ["ffmpeg", "-hide_banner", "-nostdin", "-xerror", *LOCAL_ONLY, "-i", str(path), "-vn"]
    stderr = run_tool(
        [*common, "-af", _loudnorm_filter(), "-f", "null", "-"], "decoding the audio", timeout_s
    ).stderr
    measured = json.loads(stderr[stderr.rindex("{") : stderr.rindex("}") + 1])
    out48, out16 = folder / "audio_48k.wav", folder / "audio_16k.wav"
    run_tool(
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
        timeout_s,
    )
    run_tool(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            *LOCAL_ONLY,
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
        timeout_s,
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


def media_duration(url: str, allow_hosts: Sequence[str], timeout_s: float = 60) -> float | None:
    """Duration from ffprobe, which reads only the headers it needs (the generic extractors
    never know it), through the egress proxy; ``None`` when it cannot tell in time."""
    # Headers are all it needs: a few megabytes at most, whatever the file's size.
    limits = Limits(max_bytes=10_000_000, idle_s=timeout_s, deadline_s=timeout_s)
    with egress_session(allow_hosts, limits) as egress:
        try:
            out = run_tool(
                [
                    "ffprobe",
                    "-v",
                    "error",
                    *REMOTE_ONLY,
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "json",
                    url,
                ],
                "reading the duration",
                timeout_s,
                egress=egress,
            )
            return float(json.loads(out.stdout)["format"]["duration"])
        except (MediaError, KeyError, ValueError, TypeError, json.JSONDecodeError):
            return None


def media_record(
    source: Mapping[str, Any],
    limits: MediaLimits,
    allow_hosts: Sequence[str],
    store: FileStore,
    blob_key: BlobKey,
) -> MediaRecord:
    """Download, check, normalise; the files go to ``store`` beside the record."""
    url = source["video_info"]["media_url"] or source["source_url"]
    with tempfile.TemporaryDirectory(prefix="media-") as tmp:
        folder = Path(tmp)
        original = download(url, folder, limits, allow_hosts)
        found = probe(original, limits)
        record: MediaRecord = {
            "status": Status.OK,
            "source_url": source["source_url"],
            "path": DOWNLOADED,
            "bytes": original.stat().st_size,
            "sha256": sha256_file(original),
            "duration_s": found.duration_s,
            "probe": asdict(found),
            "tags": container_tags(original),
            "files": {"original": blob_key(f"original{original.suffix}")},
        }
        files = record["files"]
        if found.has_audio:
            audio = normalize_audio(original, folder, limits.tool_timeout_s)
            record["loudness"] = audio.measured
            files["audio_48k"] = blob_key("audio_48k.wav")
            files["audio_16k"] = blob_key("audio_16k.wav")
            store.put_file(files["audio_48k"], audio.path_48k)
            store.put_file(files["audio_16k"], audio.path_16k)
        store.put_file(files["original"], original)
    return record


def media_stage_record(
    source: Mapping[str, Any],
    limits: MediaLimits,
    allow_hosts: Sequence[str],
    store: FileStore,
    blob_key: BlobKey,
) -> MediaRecord:
    """The ``media`` record of a video whose input says whether to ``download``, with the best
    duration known: ffprobe's, else the platform's, else the end of the last cue (the caption
    path never touches the media, not even its headers)."""
    if source["download"]:
        return media_record(source, limits, allow_hosts, store, blob_key)
    cues = source["captions"].get("cues") or []
    duration = source["video_info"].get("duration_s") or (cues[-1]["end_s"] if cues else 0.0)
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "path": NOT_NEEDED,
        "duration_s": float(duration),
    }
