"""whisperx and pyannote engines: they run where the ``gpu`` extra is installed (``make
test-gpu``) and skip with the reason elsewhere. Same eval data and bars as the default engines."""

import importlib.util
import os
from pathlib import Path

import pytest

from media_assets.video.scoring import der, read_rttm, wer
from media_assets.video.speech import default_whisper_dir
from tests.helpers import EVAL_AUDIO, needs_eval_audio


@needs_eval_audio
@pytest.mark.skipif(
    importlib.util.find_spec("whisperx") is None,
    reason="whisperx not installed: it pins a CUDA torch and lives in the `gpu` extra "
    "(make test-gpu)",
)
def test_whisperx_transcribes_jfk_on_cpu_with_tiny_en(tmp_path: Path) -> None:
    from media_assets.video.media import normalize_audio
    from resources.gpu_engines import WhisperXSpeech

    audio = normalize_audio(EVAL_AUDIO / "jfk.flac", tmp_path)
    engine = WhisperXSpeech(
        model_dir=default_whisper_dir(),
        align_model_dir=os.environ.get("MEDIA_ASSETS_ALIGN_DIR"),
        device="cpu",
        compute_type="int8",
    )
    transcript = engine.transcribe(audio.path_16k)
    assert wer((EVAL_AUDIO / "jfk.txt").read_text(), transcript.text) <= 0.05
    assert all(w.start_s < w.end_s for w in transcript.words)


@needs_eval_audio
@pytest.mark.skipif(
    importlib.util.find_spec("pyannote.audio") is None
    or not os.environ.get("MEDIA_ASSETS_PYANNOTE_DIR"),
    reason="pyannote.audio (the `gpu` extra) and a local pipeline folder in "
    "MEDIA_ASSETS_PYANNOTE_DIR are needed; no model hub is reachable here",
)
def test_pyannote_diarizes_two_speakers_within_twelve_percent_der() -> None:
    from resources.gpu_engines import PyannoteDiarizer

    engine = PyannoteDiarizer(pipeline_dir=os.environ["MEDIA_ASSETS_PYANNOTE_DIR"], device="cpu")
    turns = engine.diarize(EVAL_AUDIO / "two-speakers.wav")
    reference = read_rttm((EVAL_AUDIO / "two-speakers.rttm").read_text())
    assert der(reference, turns) <= 0.12
