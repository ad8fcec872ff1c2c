"""Demo videos made on this machine: speech from espeak-ng in two voices over slides with text.

A user's clone has no recorded media, and nothing may be downloaded, so the demo's uncaptioned
videos are generated from the script below at set-up time (``python -m media_assets.demo.media``).
Two slides share a background and differ only in their text: scene detection alone misses that
change, clock-based sampling catches it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from media_assets.video.media import MediaLimits, probe

DEFAULT_DIR = Path("data/demo-media")
VOICES = {"Ada": "en+f3", "Ben": "en"}  # espeak-ng ignores en-gb+f3; en+f3 is clearly female


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str
    slide: str
    background: str


POLLINATION_TALK = (
    Line(
        "Ada",
        "Welcome to our talk about pollination in apple orchards.",
        "Apple orchard pollination",
        "navy",
    ),
    Line(
        "Ben",
        "Thanks Ada. One honey bee colony can visit two million blossoms in a single day.",
        "Two million blossoms a day",
        "darkgreen",
    ),
    Line(
        "Ada",
        "Growers usually place two colonies per hectare "
        "when about five percent of the flowers are open.",
        "Two colonies per hectare",
        "darkgreen",
    ),
    Line(
        "Ben",
        "Bumblebees keep working in cold and windy weather, when honey bees stay at home.",
        "Bumblebees fly in the cold",
        "maroon",
    ),
    Line(
        "Ada",
        "Finally, never spray insecticide while the trees are in bloom.",
        "No spraying during bloom",
        "black",
    ),
)

SWARM_NOTES = (
    Line(
        "Ben",
        "Field note. A swarm left the north hive at noon and settled in the old pear tree.",
        "Swarm in the pear tree",
        "darkslategray",
    ),
    Line(
        "Ada",
        "We collected it in a cardboard box and moved it to an empty hive before sunset.",
        "Hived before sunset",
        "darkslategray",
    ),
)


def _font() -> str:
    found = subprocess.run(
        ["fc-match", "-f", "%{file}", "DejaVu Sans:bold"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


def _quote(text: str) -> str:
    """Text for ffmpeg's drawtext, whose option syntax treats ':' '\\' and quotes specially."""
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\u2019")


def _seconds(path: Path) -> float:
    return probe(path, MediaLimits()).duration_s


def _vtt_time(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"


def make_talk(lines: Sequence[Line], out: Path, audio_only: bool = False) -> str:
    """Render ``lines`` to ``out`` (MP4 with slides, or M4A with ``audio_only``) and return the
    WebVTT captions with ``<v>`` voice tags that match it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    font = _font()
    cues, clock = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, line in enumerate(lines):
            speech = Path(tmp, f"{i}.wav")
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    VOICES[line.speaker],
                    "-s",
                    "150",
                    "-w",
                    str(speech),
                    line.text,
                ],
                check=True,
            )
            length = _seconds(speech) + 0.6  # a breath between lines
            part = Path(tmp, f"{i}.mp4")
            slide = (
                f"color=c={line.background}:s=640x360:r=10:d={length:.2f},"
                f"drawtext=fontfile={font}:text='{_quote(line.slide)}':fontsize=34:"
                "fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2"
            )
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    slide,
                    "-i",
                    str(speech),
                    "-af",
                    "apad",
                    "-t",
                    f"{length:.2f}",
                    "-c:v",
                    "libx264",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-ar",
                    "16000",
                    "-ac",
                    "1",
                    str(part),
                ],
                check=True,
            )
            parts.append(part)
            cues.append(
                f"{_vtt_time(clock)} --> {_vtt_time(clock + length - 0.5)}\n"
                f"<v {line.speaker}>{line.text}"
            )
            clock += _seconds(part)
        listing = Path(tmp, "parts.txt")
        listing.write_text("".join(f"file '{p}'\n" for p in parts))
        streams = ["-vn", "-c:a", "copy"] if audio_only else ["-c", "copy"]
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(listing),
                *streams,
                "-metadata",
                f"title={lines[0].slide}",
                str(out),
            ],
            check=True,
        )
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def make_demo_media(folder: Path = DEFAULT_DIR) -> Path:
    """The demo's media files in ``folder``; files already there are kept (idempotent)."""
    for name, lines, audio_only in (
        ("pollination-talk.mp4", POLLINATION_TALK, False),
        ("swarm-notes.m4a", SWARM_NOTES, True),
    ):
        target = folder / name
        if not target.exists():
            partial = target.with_suffix(".partial" + target.suffix)
            make_talk(lines, partial, audio_only)
            partial.rename(target)
    return folder


if __name__ == "__main__":
    where = make_demo_media(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
    print(f"demo media in {where}")
