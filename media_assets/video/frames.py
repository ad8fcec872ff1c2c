"""Key frames and the text on them.

Frames are picked in one ffmpeg pass: at scene cuts, and by the clock (slides whose text changes
over the same background score ~0.06 as a scene change and would be missed by scene detection
alone). Near-duplicates (the clock picking the same slide again) are dropped by comparing small
grey thumbnails, and the number of frames is capped.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.media import (
    DOWNLOADED,
    LOCAL_ONLY,
    NOT_NEEDED,
    BlobKey,
    FileStore,
    local_copy,
    run_tool,
)

_SHOWINFO = re.compile(r"n:\s*(\d+).*?pts_time:([0-9.]+)")
_SCENE = re.compile(r"lavfi\.scene_score=([0-9.]+)")


@dataclass(frozen=True)
class FrameSettings:
    interval_s: float = 5.0
    scene_threshold: float = 0.3
    max_frames: int = 120
    # Two frames are the same picture when under 0.5 % of a 64x36 grey thumbnail's pixels differ
    # by more than 32 levels; a changed slide title changes 2-3 %.
    duplicate_changed_fraction: float = 0.005
    width: int = 960
    timeout_s: float = 3600


@dataclass
class KeyFrame:
    time_s: float
    path: Path
    scene_cut: bool
    scene_score: float

    def record(self, key: str) -> dict[str, Any]:
        return {**asdict(self), "path": None, "key": key}


@dataclass(frozen=True)
class TextSpan:
    start_s: float
    end_s: float
    text: str


class KeyFramesRecord(StageRecord):
    """The ``key_frames`` artifact (schemas/key_frames.json): each frame's time, whether a scene
    cut chose it, and its image's key; ``path`` says whether frames were ``sampled`` or why not."""

    path: str
    duration_s: float
    frames: list[dict[str, Any]]


class FrameTextRecord(StageRecord):
    """The ``frame_text`` artifact (schemas/frame_text.json): each frame's reading and the spans
    of the same text on consecutive frames (``TextSpan`` fields)."""

    engine: str
    readings: list[dict[str, Any]]
    spans: list[dict[str, Any]]


def spans_of(record: Mapping[str, Any]) -> list[TextSpan]:
    """The ``TextSpan``s of a frame_text record."""
    return [TextSpan(**s) for s in record["spans"]]


def scene_cuts_of(record: Mapping[str, Any]) -> list[float]:
    """The times of a key_frames record's frames that a scene cut chose."""
    return [f["time_s"] for f in record["frames"] if f["scene_cut"]]


def _thumbnail(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L").resize((64, 36)), dtype=np.float32)


def extract_key_frames(
    video: Path, folder: Path, duration_s: float, settings: FrameSettings
) -> list[KeyFrame]:
    """JPEG key frames of ``video`` in ``folder``, in time order."""
    folder.mkdir(parents=True, exist_ok=True)
    # Spread the clock samples so the cap still covers the whole video.
    interval = max(settings.interval_s, duration_s / max(settings.max_frames, 1))
    select = (
        f"select='isnan(prev_selected_t)+gt(scene\\,{settings.scene_threshold})"
        f"+gte(t-prev_selected_t\\,{interval:.3f})'"
    )
    done = run_tool(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            *LOCAL_ONLY,
            "-i",
            str(video),
            "-an",
            "-vf",
            f"{select},metadata=print:key=lavfi.scene_score,showinfo,"
            f"scale='min({settings.width},iw)':-2",
            "-fps_mode",
            "vfr",
            "-q:v",
            "3",
            "-y",
            str(folder / "frame_%05d.jpg"),
        ],
        "extracting key frames",
        settings.timeout_s,
    )
    times, scores, pending = [], [], 0.0
    for line in done.stderr.splitlines():
        if scene := _SCENE.search(line):
            pending = float(scene.group(1))
        elif "Parsed_showinfo" in line and (info := _SHOWINFO.search(line)):
            times.append(float(info.group(2)))
            scores.append(pending)
            pending = 0.0
    frames: list[KeyFrame] = []
    previous: np.ndarray | None = None
    for index, (time_s, score) in enumerate(zip(times, scores, strict=False), start=1):
        path = folder / f"frame_{index:05d}.jpg"
        if not path.exists():
            continue
        thumb = _thumbnail(path)
        if (
            previous is not None
            and (np.abs(thumb - previous) > 32).mean() < settings.duplicate_changed_fraction
        ):
            path.unlink()
            continue
        previous = thumb
        frames.append(KeyFrame(round(time_s, 3), path, score > settings.scene_threshold, score))
    for extra in frames[settings.max_frames :]:
        extra.path.unlink(missing_ok=True)
    return frames[: settings.max_frames]


def ocr_tesseract(image: Path, language: str = "eng") -> str:
    """Text Tesseract reads on ``image``, whitespace folded."""
    done = subprocess.run(
        ["tesseract", str(image), "stdout", "-l", language, "--psm", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tesseract failed on {image.name}: {done.stderr.strip()[:200]}")
    return " ".join(done.stdout.split())


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def merge_spans(readings: Sequence[tuple[float, str]], duration_s: float) -> list[TextSpan]:
    """Consecutive frames that show the same text become one span, which lasts until the next
    frame with different text (or the end of the video)."""
    spans: list[TextSpan] = []
    for i, (time_s, text) in enumerate(readings):
        end = readings[i + 1][0] if i + 1 < len(readings) else duration_s
        if not _normalized(text):
            continue
        if spans and _normalized(spans[-1].text) == _normalized(text) and spans[-1].end_s >= time_s:
            spans[-1] = TextSpan(spans[-1].start_s, end, spans[-1].text)
        else:
            spans.append(TextSpan(time_s, end, text))
    return spans


def key_frames_record(
    media_rec: Mapping[str, Any], settings: FrameSettings, store: FileStore, blob_key: BlobKey
) -> KeyFramesRecord:
    """The ``key_frames`` record of a video's media: frames of a downloaded video stream, their
    images stored beside the record; none on the caption path or without a video stream."""
    base = {
        "status": Status.OK,
        "source_url": media_rec["source_url"],
        "duration_s": media_rec["duration_s"],
        "frames": [],
    }
    if media_rec["path"] != DOWNLOADED or not media_rec["probe"].get("video_codec"):
        reason = NOT_NEEDED if media_rec["path"] != DOWNLOADED else "no video stream"
        return KeyFramesRecord(**base, path=reason)
    with tempfile.TemporaryDirectory(prefix="frames-") as tmp:
        video = local_copy(store, media_rec["files"]["original"], Path(tmp))
        frames = extract_key_frames(video, Path(tmp, "frames"), media_rec["duration_s"], settings)
        records = []
        for frame in frames:
            blob = blob_key(frame.path.name)
            store.put_file(blob, frame.path)
            records.append(frame.record(blob))
    return KeyFramesRecord(**{**base, "path": "sampled", "frames": records})


def frame_text_record(
    frames: Mapping[str, Any], read: Callable[[Path], str], engine_id: str, store: FileStore
) -> FrameTextRecord:
    """The ``frame_text`` record of a video's key frames: ``read`` on each frame's image."""
    readings: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        for frame in frames["frames"]:
            image = local_copy(store, frame["key"], Path(tmp))
            readings.append((frame["time_s"], read(image)))
    spans = merge_spans(readings, frames["duration_s"])
    return {
        "status": Status.OK,
        "source_url": frames["source_url"],
        "engine": engine_id,
        "readings": [{"time_s": t, "text": text} for t, text in readings],
        "spans": [asdict(s) for s in spans],
    }
