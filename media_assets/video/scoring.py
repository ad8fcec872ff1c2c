"""How good speech and speaker results are: WER and DER as the eval data's SOURCES.md defines
them (lower-cased words without punctuation; DER with a 0.25 s collar, overlap counted, the best
mapping of hypothesis speakers to reference speakers)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from media_assets.video.speakers import Turn


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower()))


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(_words(reference), _words(hypothesis)))


def read_rttm(text: str) -> list[Turn]:
    turns = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, length = float(fields[3]), float(fields[4])
            turns.append(Turn(start, start + length, fields[7]))
    return turns


def _annotation(turns: Sequence[Turn]) -> Annotation:
    annotation = Annotation()
    for i, turn in enumerate(turns):
        annotation[Segment(turn.start_s, turn.end_s), i] = turn.speaker
    return annotation


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.25) -> float:
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    return float(metric(_annotation(reference), _annotation(hypothesis)))
