"""Caption tracks: which one is used, and how it is read."""

import pytest

from media_assets.video.captions import CaptionFormatError, Cue, parse_captions, pick_track

VTT = """WEBVTT

00:00:01.250 --> 00:00:03.900
<v Ada Lovelace>The engine weaves <b>algebraic</b> patterns,

00:00:03.900 --> 00:00:06.050
<v Charles Babbage>just as the loom
weaves flowers and leaves.

00:00:06.050 --> 00:00:07.000
<v Charles Babbage>just as the loom weaves flowers and leaves.

00:00:08.000 --> 00:00:09.000

"""

SRT = """1
00:01:04,005 --> 00:01:06,500
Second part, plain SRT.

2
00:01:06,600 --> 00:01:08,000
No voices here.
"""


def test_vtt_keeps_milliseconds_and_voices_and_drops_repeats() -> None:
    assert parse_captions(VTT, "vtt") == [
        Cue(1.25, 3.9, "The engine weaves algebraic patterns,", "Ada Lovelace"),
        Cue(3.9, 6.05, "just as the loom weaves flowers and leaves.", "Charles Babbage"),
    ]


def test_srt() -> None:
    cues = parse_captions(SRT, "srt")
    assert [(c.start_s, c.end_s, c.speaker) for c in cues] == [
        (64.005, 66.5, None),
        (66.6, 68.0, None),
    ]


def test_unreadable_captions_are_a_clear_error() -> None:
    with pytest.raises(CaptionFormatError, match="unreadable vtt"):
        parse_captions("this is not a caption file", "vtt")


def test_manual_before_automatic_then_language_then_format() -> None:
    info = {
        "subtitles": {
            "de": [{"ext": "vtt", "url": "https://x/de.vtt"}],
            "en-GB": [
                {"ext": "srv3", "url": "https://x/en.srv3"},
                {"ext": "srt", "url": "https://x/en.srt"},
            ],
        },
        "automatic_captions": {"en": [{"ext": "vtt", "url": "https://x/auto-en.vtt"}]},
    }
    track = pick_track(info, ["en", "de"])
    assert (track.source, track.language, track.ext, track.url) == (
        "manual",
        "en",
        "srt",
        "https://x/en.srt",
    )
    assert pick_track(info, ["fr"]) is None
    only_auto = {"automatic_captions": info["automatic_captions"]}
    assert pick_track(only_auto).source == "automatic"
    assert pick_track({}) is None
