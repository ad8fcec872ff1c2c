"""Who spoke when: Silero VAD for speech, resemblyzer voice embeddings, spectral speaker count.

The embeddings are 1.6 s windows every 1/``rate`` s. Labelling a whole window with its cluster
smears each turn by up to a window length (a prototype that did so scored DER 16.8 %, mostly
false alarm), so each 10 ms frame inside detected speech takes the speaker whose centroid the
windows covering it resemble most, weighted towards the window's centre. The number of speakers
comes from the eigengap of the refined affinity matrix (Wang et al., "Speaker diarization with
LSTM", 2018), which is what resemblyzer's encoder was trained for.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.media import FileStore, local_copy
from media_assets.video.speech import Word, words_of

SAMPLE_RATE = 16_000
FRAME_S = 0.01


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def turns_of(record: Mapping[str, Any]) -> list[Turn]:
    """The ``Turn``s of a speaker_turns record."""
    return [Turn(**t) for t in record["turns"]]


class SpeakerTurnsRecord(StageRecord):
    """The ``speaker_turns`` artifact (schemas/speaker_turns.json): who spoke when (``Turn``
    fields), by which engine, and every word with its speaker."""

    engine: str
    speakers: list[str]
    turns: list[dict[str, Any]]
    words: list[dict[str, Any]]


@dataclass(frozen=True)
class DiarizationSettings:
    window_rate: float = 8.0  # embedding windows per second
    min_window_speech: float = 0.5  # a window must be at least this much speech to count
    max_speakers: int = 8
    affinity_keep: float = 0.2  # row-wise pruning: keep each window's most similar 20 %
    min_turn_s: float = 0.25  # shorter islands join their neighbours
    min_speaker_share: float = 0.05  # a cluster with fewer of the windows is merged away


@cache
def _voice_encoder() -> Any:
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def load_audio(path: Path) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """Speech as (start, end) seconds from the Silero VAD that ships with faster-whisper."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=200, speech_pad_ms=30))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in spans]


def estimate_speakers(embeddings: np.ndarray, settings: DiarizationSettings) -> int:
    """Speaker count from the largest eigengap of the refined affinity matrix."""
    n = len(embeddings)
    if n < 4:
        return 1
    affinity = embeddings @ embeddings.T
    cutoff = np.quantile(affinity, 1 - settings.affinity_keep, axis=1, keepdims=True)
    affinity = np.where(affinity >= cutoff, affinity, affinity * 0.01)
    affinity = (affinity + affinity.T) / 2
    affinity = affinity @ affinity.T  # diffusion sharpens the block structure
    affinity /= affinity.max(axis=1, keepdims=True)
    eigenvalues = np.sort(np.linalg.eigvalsh(affinity))[::-1][: settings.max_speakers + 1]
    eigenvalues = np.maximum(eigenvalues, 1e-9)
    gaps = eigenvalues[:-1] / eigenvalues[1:]
    return int(np.argmax(gaps)) + 1


def _frames_to_turns(labels: np.ndarray, min_frames: int) -> list[tuple[int, int, int]]:
    runs: list[list[int]] = []  # [start, end, label]
    for i, label in enumerate(labels):
        if runs and runs[-1][2] == label and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, int(label)])
    speech = [r for r in runs if r[2] >= 0]
    # A short island takes the speaker of its longer neighbour.
    for i, run in enumerate(speech):
        neighbours = [speech[j] for j in (i - 1, i + 1) if 0 <= j < len(speech)]
        if run[1] - run[0] < min_frames and neighbours:
            run[2] = max(neighbours, key=lambda r: r[1] - r[0])[2]
    merged: list[list[int]] = []
    for run in speech:
        if merged and merged[-1][2] == run[2] and run[0] - merged[-1][1] <= 1:
            merged[-1][1] = run[1]
        else:
            merged.append(list(run))
    return [(a, b, c) for a, b, c in merged]


def _centroids(embeddings: np.ndarray, labels: np.ndarray, min_share: float) -> np.ndarray:
    """Unit centroids of the clusters that hold at least ``min_share`` of the windows."""
    sizes = np.bincount(labels)
    kept = [c for c in range(len(sizes)) if sizes[c] >= min_share * len(labels)] or [
        int(sizes.argmax())
    ]
    centroids = np.stack([embeddings[labels == c].mean(axis=0) for c in kept])
    return centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


def diarize(audio_16k: Path, settings: DiarizationSettings | None = None) -> list[Turn]:
    """Speaker turns, speakers named SPEAKER_00, SPEAKER_01, … in order of first appearance."""
    from sklearn.cluster import KMeans

    settings = settings or DiarizationSettings()
    audio = load_audio(audio_16k)
    regions = speech_regions(audio)
    frames = int(np.ceil(len(audio) / SAMPLE_RATE / FRAME_S))
    speech = np.zeros(frames, dtype=bool)
    for start, end in regions:
        speech[int(start / FRAME_S) : int(end / FRAME_S)] = True
    if not speech.any():
        return []
    _, partials, slices = _voice_encoder().embed_utterance(
        audio, return_partials=True, rate=settings.window_rate, min_coverage=0.5
    )
    spans = [
        (int(s.start / SAMPLE_RATE / FRAME_S), min(int(s.stop / SAMPLE_RATE / FRAME_S), frames))
        for s in slices
    ]
    keep = [
        i
        for i, (a, b) in enumerate(spans)
        if b > a and speech[a:b].mean() >= settings.min_window_speech
    ]
    if not keep:
        return [Turn(round(a, 3), round(b, 3), "SPEAKER_00") for a, b in regions]
    embeddings = partials[keep] / np.linalg.norm(partials[keep], axis=1, keepdims=True)
    count = estimate_speakers(embeddings, settings)
    if count == 1:
        labels = np.zeros(len(keep), dtype=int)
    else:
        labels = KMeans(count, n_init=10, random_state=0).fit_predict(embeddings)
    centroids = _centroids(embeddings, labels, settings.min_speaker_share)
    count = len(centroids)
    scores, weight = np.zeros((frames, count)), np.zeros(frames)
    for index, similarity in zip(keep, embeddings @ centroids.T, strict=True):
        a, b = spans[index]
        taper = 1 - 0.9 * np.abs(np.linspace(-1, 1, b - a))
        scores[a:b] += taper[:, None] * similarity
        weight[a:b] += taper
    frame_labels = np.where(speech & (weight > 0), scores.argmax(axis=1), -1)
    runs = _frames_to_turns(frame_labels, int(settings.min_turn_s / FRAME_S))
    order = {label: f"SPEAKER_{i:02d}" for i, label in enumerate(dict.fromkeys(r[2] for r in runs))}
    return [Turn(round(a * FRAME_S, 3), round(b * FRAME_S, 3), order[c]) for a, b, c in runs]


def assign_speakers(words: Sequence[Word], turns: Sequence[Turn]) -> list[Word]:
    """Each word gets the speaker whose turn overlaps it most (the nearest turn if none does)."""
    if not turns:
        return list(words)
    starts = np.array([t.start_s for t in turns])
    ends = np.array([t.end_s for t in turns])
    out = []
    # Words against all turns at once, a block of words at a time: an hour of speech is ~9,000
    # words and hundreds of turns, which a loop over pairs in Python feels.
    for first in range(0, len(words), 1024):
        block = words[first : first + 1024]
        word_starts = np.array([w.start_s for w in block])[:, None]
        word_ends = np.array([w.end_s for w in block])[:, None]
        overlap = np.minimum(ends, word_ends) - np.maximum(starts, word_starts)
        for word, best in zip(block, overlap.argmax(axis=1), strict=True):
            speaker = turns[int(best)].speaker
            out.append(Word(word.start_s, word.end_s, word.text, word.probability, speaker))
    return out


def turns_from_words(words: Sequence[Word]) -> list[Turn]:
    """Turns from words that already carry speakers (caption voice tags)."""
    turns: list[Turn] = []
    for word in words:
        if not word.speaker:
            continue
        if turns and turns[-1].speaker == word.speaker:
            turns[-1] = Turn(turns[-1].start_s, word.end_s, word.speaker)
        else:
            turns.append(Turn(word.start_s, word.end_s, word.speaker))
    return turns


def to_rttm(turns: Sequence[Turn], uri: str) -> str:
    return "".join(
        f"SPEAKER {uri} 1 {t.start_s:.3f} {t.end_s - t.start_s:.3f} "
        f"<NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in turns
    )


def speaker_turns_record(
    source: Mapping[str, Any],
    diarize: Callable[[Path], list[Turn]],
    engine_id: str,
    store: FileStore,
) -> SpeakerTurnsRecord:
    """The ``speaker_turns`` record of a video's transcript and media: caption voice tags on the
    caption path (or without audio), else ``diarize`` on the 16 kHz audio, each word assigned the
    speaker of its turn."""
    text, media_rec = source["transcript"], source["media"]
    words = words_of(text)
    if text["source"] == "captions" or "audio_16k" not in media_rec.get("files", {}):
        turns, engine = turns_from_words(words), "caption voice tags"
    else:
        with tempfile.TemporaryDirectory(prefix="speakers-") as tmp:
            audio = local_copy(store, media_rec["files"]["audio_16k"], Path(tmp))
            turns, engine = diarize(audio), engine_id
        words = assign_speakers(words, turns)
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "engine": engine,
        "speakers": sorted({t.speaker for t in turns}),
        "turns": [t.record() for t in turns],
        "words": [asdict(w) for w in words],
    }
