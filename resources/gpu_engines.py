"""whisperx and pyannote engines for the GPU image (the ``gpu`` extra; whisperx pins a CUDA torch,
so it never enters the default install). Models load from configured folders only: no hub
access at run time. Their tests run where the extra is installed and skip with the reason
elsewhere (``make test-gpu`` installs it into ``.venv-gpu`` and runs them).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from media_assets.video.speakers import Turn
from media_assets.video.speech import Transcript, Word, spread_words
from resources.speech import Diarizer, SpeechToText


@cache
def _whisperx_model(model_dir: str, device: str, compute_type: str, language: str) -> Any:
    import whisperx

    return whisperx.load_model(
        model_dir, device, compute_type=compute_type, language=language, local_files_only=True
    )


@cache
def _align_model(align_dir: str, language: str, device: str) -> tuple[Any, Any]:
    import whisperx

    return whisperx.load_align_model(language_code=language, device=device, model_name=align_dir)


class WhisperXSpeech(SpeechToText):
    """whisperx batched transcription of a CTranslate2 Whisper folder; word times from wav2vec2
    alignment when ``align_model_dir`` is configured, else spread over each segment."""

    model_dir: str
    align_model_dir: str | None = None
    device: str = "cuda"
    compute_type: str | None = None  # float16 on a GPU, int8 on CPU
    batch_size: int = 16
    language: str = "en"

    @property
    def engine_id(self) -> str:
        aligned = "+align" if self.align_model_dir else ""
        return f"whisperx:{Path(self.model_dir).name}{aligned}"

    def transcribe(self, audio_16k: Path) -> Transcript:
        import time

        import whisperx

        compute_type = self.compute_type or ("float16" if self.device == "cuda" else "int8")
        model = _whisperx_model(self.model_dir, self.device, compute_type, self.language)
        audio = whisperx.load_audio(str(audio_16k))
        started = time.perf_counter()
        result = model.transcribe(audio, batch_size=self.batch_size, language=self.language)
        segments = result["segments"]
        if self.align_model_dir:
            align, metadata = _align_model(self.align_model_dir, self.language, self.device)
            segments = whisperx.align(segments, align, metadata, audio, self.device)["segments"]
        words = [
            Word(round(w["start"], 3), round(w["end"], 3), w["word"].strip(), w.get("score"))
            for s in segments
            for w in s.get("words", [])
            if "start" in w and w["word"].strip()
        ] or [w for s in segments for w in spread_words(s["start"], s["end"], s["text"])]
        return Transcript(
            source="whisperx",
            language=result.get("language", self.language),
            words=words,
            seconds=round(time.perf_counter() - started, 3),
            audio_s=round(len(audio) / 16000, 3),
        )


@cache
def _pyannote_pipeline(pipeline_dir: str, device: str) -> Any:
    import torch
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(pipeline_dir)  # a folder with config.yaml: no hub
    return pipeline.to(torch.device(device))


class PyannoteDiarizer(Diarizer):
    """A pyannote.audio speaker-diarization pipeline loaded from a local folder."""

    pipeline_dir: str
    device: str = "cuda"

    @property
    def engine_id(self) -> str:
        return f"pyannote:{Path(self.pipeline_dir).name}"

    def diarize(self, audio_16k: Path) -> list[Turn]:
        output = _pyannote_pipeline(self.pipeline_dir, self.device)(str(audio_16k))
        # pyannote 4 returns an object holding the annotation; 3.x returns the annotation
        annotation = getattr(output, "speaker_diarization", output)
        names: dict[str, str] = {}
        turns = []
        for segment, _, label in annotation.itertracks(yield_label=True):
            name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
            turns.append(Turn(round(segment.start, 3), round(segment.end, 3), name))
        return sorted(turns, key=lambda t: (t.start_s, t.end_s))
