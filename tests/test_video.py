"""The video chain: stage functions on real media and models, then the chain through Dagster."""

import shutil
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from media_assets.demo.media import POLLINATION_TALK
from media_assets.manifest import detect_kind
from media_assets.video import media as media_files
from media_assets.video.chunk import chunk_video, deep_link
from media_assets.video.frames import FrameSettings, extract_key_frames, merge_spans, ocr_tesseract
from media_assets.video.scoring import der, read_rttm, wer
from media_assets.video.speakers import Turn, assign_speakers, diarize
from media_assets.video.speech import Word
from media_assets.video.timeline import (
    Chapter,
    Segment,
    build_segments,
    detect_chapters,
    platform_chapters,
)
from resources.speech import FasterWhisperSpeech
from tests.helpers import EVAL_AUDIO, needs_eval_audio


def test_urls_without_a_kind_are_routed_by_extension_and_by_yt_dlp() -> None:
    assert detect_kind("https://example.com/talks/keynote.mp4?download=1") == "video"
    assert detect_kind("https://www.youtube.com/watch?v=dQw4w9WgXcQ") == "video"
    assert detect_kind("https://vimeo.com/76979871") == "video"
    assert detect_kind("https://example.com/blog/keynote-recap") == "web"
    # yt-dlp claims news articles for their occasional clip; they are text first.
    assert detect_kind("https://www.nytimes.com/2024/01/01/science/bees.html") == "web"


@needs_eval_audio
def test_fallback_path_transcribes_jfk_within_five_percent_wer(tmp_path: Path) -> None:
    limits = media_files.MediaLimits()
    source = tmp_path / "jfk.flac"
    shutil.copy(EVAL_AUDIO / "jfk.flac", source)
    probe = media_files.probe(source, limits)
    assert probe.has_audio and not probe.has_video and 10.5 < probe.duration_s < 11.5
    audio = media_files.normalize_audio(source, tmp_path)
    # Real speech, not the demo's synthetic voices: measured again, it sits at the target too.
    again = media_files.normalize_audio(audio.path_48k, tmp_path / "again")
    assert abs(again.measured["input_i"] - (-23.0)) < 1.0, again.measured
    transcript = FasterWhisperSpeech().transcribe(audio.path_16k)
    reference = (EVAL_AUDIO / "jfk.txt").read_text()
    assert wer(reference, transcript.text) <= 0.05, transcript.text
    assert all(w.start_s < w.end_s for w in transcript.words)
    assert transcript.words[-1].end_s <= probe.duration_s + 0.1


@needs_eval_audio
def test_diarization_of_two_speakers_within_twelve_percent_der() -> None:
    reference = read_rttm((EVAL_AUDIO / "two-speakers.rttm").read_text())
    turns = diarize(EVAL_AUDIO / "two-speakers.wav")
    assert len({t.speaker for t in turns}) == 2
    assert der(reference, turns) <= 0.12


def test_each_word_takes_the_speaker_it_overlaps_most_or_the_nearest() -> None:
    turns = [Turn(0.0, 2.0, "A"), Turn(2.0, 5.0, "B"), Turn(8.0, 9.0, "A")]
    words = [
        Word(0.5, 1.0, "hello"),  # inside A
        Word(1.8, 2.6, "there"),  # 0.2 s in A, 0.6 s in B
        Word(6.0, 6.4, "um"),  # in no turn: B ends 1 s before, A starts 1.6 s after
        Word(7.5, 8.2, "yes"),  # 0.2 s into the last A
    ]
    assert [w.speaker for w in assign_speakers(words, turns)] == ["A", "B", "B", "A"]
    many = [Word(i * 0.3, i * 0.3 + 0.2, f"w{i}") for i in range(3000)]  # past one block
    assigned = assign_speakers(many, turns)
    assert len(assigned) == 3000 and assigned[-1].speaker == "A" and assigned[10].speaker == "B"
    assert assign_speakers(words, []) == words


def test_normalised_audio_is_48k_pcm_at_minus_23_lufs(demo_media: Path, tmp_path: Path) -> None:
    audio = media_files.normalize_audio(demo_media / "swarm-notes.m4a", tmp_path)
    for path, rate, channels in ((audio.path_48k, 48000, None), (audio.path_16k, 16000, 1)):
        probe = media_files.probe(path, media_files.MediaLimits())
        assert probe.audio_codec == "pcm_s16le" and probe.sample_rate == rate
        assert channels is None or probe.channels == channels
    # Measure the result again: the first pass of loudnorm reports its integrated loudness.
    again = media_files.normalize_audio(audio.path_48k, tmp_path / "again")
    assert abs(again.measured["input_i"] - (-23.0)) < 1.0


def test_corrupt_and_truncated_media_are_rejected_with_a_reason(
    demo_media: Path, tmp_path: Path
) -> None:
    limits = media_files.MediaLimits()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 definitely not a video " * 100)
    with pytest.raises(media_files.MediaError) as caught:
        media_files.probe(garbage, limits)
    assert caught.value.error_class == "corrupt_media" and "not a readable media file" in str(
        caught.value
    )
    # A WAV cut short after its header still probes; decoding it is what fails.
    wav = tmp_path / "whole.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(demo_media / "swarm-notes.m4a"), str(wav)],
                   check=True)  # fmt: skip
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[:44])
    with pytest.raises(media_files.MediaError) as caught:
        media_files.normalize_audio(media_files.probe(cut, limits) and cut, tmp_path)
    assert caught.value.error_class == "corrupt_media"


def test_key_frames_catch_text_only_slide_changes_and_ocr_reads_every_slide(
    demo_media: Path, tmp_path: Path
) -> None:
    video = demo_media / "pollination-talk.mp4"
    duration = media_files.probe(video, media_files.MediaLimits()).duration_s
    frames = extract_key_frames(video, tmp_path / "frames", duration, FrameSettings())
    assert any(f.scene_cut for f in frames)
    assert len(frames) == len({f.path for f in frames}) <= FrameSettings().max_frames
    spans = merge_spans([(f.time_s, ocr_tesseract(f.path)) for f in frames], duration)
    read = [s.text for s in spans]
    # "Two colonies per hectare" shares its background with the slide before it.
    assert read == [line.slide for line in dict.fromkeys(POLLINATION_TALK)], read
    assert all(a.end_s <= b.start_s for a, b in pairwise(spans))


def test_chapters_cover_the_video_without_overlap() -> None:
    words = [Word(t, t + 0.4, f"w{int(t)}", speaker="A" if t < 130 else "B")
             for t in [x * 0.5 for x in range(0, 400)] if not 95 <= t < 99]  # fmt: skip
    turns = [Turn(0, 130, "A"), Turn(130, 200, "B")]
    chapters = detect_chapters(240.0, words, turns, scene_cuts=[60.5, 131.0], on_screen=[])
    assert chapters[0].start_s == 0 and chapters[-1].end_s == 240.0
    assert all(a.end_s == b.start_s for a, b in pairwise(chapters))
    assert all(c.end_s - c.start_s >= 60 for c in chapters[:-1])
    assert any(abs(c.start_s - 131) < 3 for c in chapters)  # scene cut and speaker change agree
    platform = platform_chapters(
        [{"start_time": 10, "end_time": 50, "title": "Intro"}, {"start_time": 60, "title": "Q&A"}],
        90.0,
    )
    assert [(c.start_s, c.end_s, c.title) for c in platform] == [
        (0.0, 60.0, "Intro"),
        (60.0, 90.0, "Q&A"),
    ]
    segments = build_segments(240.0, words, [], [60.5], chapters, bucket_s=10)
    assert len(segments) == 24 and segments[-1].end_s == 240.0
    assert sum(len(s.text.split()) for s in segments) == len(words)


YOUTUBE = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


@pytest.mark.parametrize(
    ("url", "extractor", "expected"),
    [
        # Media Fragments for players that read the fragment: an old fragment goes, the query stays.
        ("https://e.com/talk.html?lang=en#intro", None, "https://e.com/talk.html?lang=en#t=75"),
        ("https://e.com/clip.mp4", "generic", "https://e.com/clip.mp4#t=75"),
        # YouTube reads the time from the query (`?t=` / `&t=`) and ignores `#t=`.
        (YOUTUBE, "youtube", f"{YOUTUBE}&t=75s"),
        (f"{YOUTUBE}&t=10s#t=3", "youtube", f"{YOUTUBE}&t=75s"),  # replaced, not repeated
        ("https://youtu.be/dQw4w9WgXcQ?t=10", "Youtube", "https://youtu.be/dQw4w9WgXcQ?t=75s"),
        ("https://www.twitch.tv/videos/1", "twitch:vod", "https://www.twitch.tv/videos/1?t=75s"),
        ("https://www.dailymotion.com/video/x7", "dailymotion", "https://www.dailymotion.com/video/x7?start=75"),
    ],
)  # fmt: skip
def test_deep_links_use_each_platforms_time_parameter(
    url: str, extractor: str | None, expected: str
) -> None:
    # Whole seconds, rounded down: the link lands at or just before the words.
    assert deep_link(url, 75.9, extractor) == expected


def test_each_video_chunk_links_to_its_own_start_with_the_platforms_parameter() -> None:
    chapters = [
        Chapter(0.0, 60.0, "Opening", "platform"),
        Chapter(60.0, 120.0, "Hives", "platform"),
    ]
    segments = [
        Segment(0.0, 10.0, "we open the hive in the first warm days of spring", chapter=0),
        Segment(60.0, 70.0, "the brood frames sit in the middle of the box", chapter=1),
    ]
    chunks = chunk_video(
        segments, chapters, source_key="k" * 16, source_url=YOUTUBE, title="Hives",
        extractor="youtube",
    )  # fmt: skip
    assert [c.deep_link for c in chunks] == [f"{YOUTUBE}&t=0s", f"{YOUTUBE}&t=60s"]
