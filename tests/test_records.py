"""Typed records: each artifact's record type (a TypedDict in the stage module that makes it)
names every field of its JSON Schema, and records made by the stage functions, passed from stage
to stage as the chain passes them, conform to their schemas at the boundary
(``contracts.conform``). Plain functions, no Dagster: the chain through Dagster is
tests/test_end_to_end.py's and tests/test_video_chain.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from media_assets import contracts
from media_assets.chunks import EmbeddingsRecord, IndexRowsRecord
from media_assets.names import Status
from media_assets.records import ARTIFACT_HEADER, StageRecord, skipped
from media_assets.video.captions import CaptionsRecord, captions_record
from media_assets.video.chunk import VideoChunksRecord, video_chunks_record
from media_assets.video.frames import (
    FrameSettings,
    FrameTextRecord,
    KeyFramesRecord,
    key_frames_record,
)
from media_assets.video.info import VideoInfo, VideoInfoRecord, info_record
from media_assets.video.media import NOT_NEEDED, MediaLimits, MediaRecord, media_stage_record
from media_assets.video.moments import MomentsIndexRecord, VideoMomentsRecord
from media_assets.video.speakers import SpeakerTurnsRecord, speaker_turns_record
from media_assets.video.speech import TranscriptRecord, transcript_record
from media_assets.video.timeline import (
    ChaptersRecord,
    SegmentsRecord,
    chapters_record,
    segments_record,
)
from media_assets.web.chunk import WebChunksRecord, web_chunks_record
from media_assets.web.documents import page_elements_record
from media_assets.web.extract import PageElementsRecord
from media_assets.web.render import RenderedPage, RenderResult
from partitions.keys import partition_key

RECORD_TYPES: dict[str, type] = {
    "rendered_page": RenderedPage,
    "page_elements": PageElementsRecord,
    "web_chunks": WebChunksRecord,
    "video_info": VideoInfoRecord,
    "captions": CaptionsRecord,
    "media": MediaRecord,
    "transcript": TranscriptRecord,
    "speaker_turns": SpeakerTurnsRecord,
    "key_frames": KeyFramesRecord,
    "frame_text": FrameTextRecord,
    "chapters": ChaptersRecord,
    "video_segments": SegmentsRecord,
    "video_chunks": VideoChunksRecord,
    "video_moments": VideoMomentsRecord,
    "web_embeddings": EmbeddingsRecord,
    "video_embeddings": EmbeddingsRecord,
    "web_index_rows": IndexRowsRecord,
    "video_index_rows": IndexRowsRecord,
    "video_moments_index": MomentsIndexRecord,
}
URL = "http://127.0.0.1:8000/talk.html"
PAGE = """<html><head><title>Tides</title></head><body><main>
<h1 id="tides">Tides</h1><p>Tide tables are computed from harmonic constituents, and the harbour
sees its highest water an hour after noon on most days of the month.</p>
<h2 id="springs">Springs</h2><p>Spring tides follow new and full moon; neap tides follow the
quarters, and the station records both every month of the year.</p></main></body></html>"""


def fields(record_type: type) -> set[str]:
    return set(record_type.__required_keys__ | record_type.__optional_keys__)  # type: ignore[attr-defined]


def conforming(asset: str, record: Any) -> Any:
    """``record`` after the boundary check, which must have passed it unchanged."""
    checked = contracts.conform(asset, record)
    assert checked is record, checked.get("error")
    return record


@pytest.mark.parametrize("asset", sorted(RECORD_TYPES))
def test_a_record_type_names_every_field_of_its_schema(asset: str) -> None:
    schema = json.loads((contracts.SCHEMAS / f"{asset}.json").read_text())
    declared = fields(RECORD_TYPES[asset])
    assert set(schema.get("properties", {})) <= declared, asset
    assert set(schema.get("required", [])) <= declared, asset
    assert fields(StageRecord) <= declared  # the envelope: status, source_url, error…


def test_every_stage_with_a_schema_has_a_record_type() -> None:
    schemas = {path.stem for path in contracts.SCHEMAS.glob("*.json")}
    # Not stage artifacts: an annotation and a chunk are items inside them.
    items = {"annotation", "chunk"}
    assert schemas - items == set(RECORD_TYPES)


def test_a_page_passes_from_render_to_chunks_as_records_that_conform() -> None:
    result = RenderResult(URL, "ok", final_url=URL, http_status=200, title="Tides", html=PAGE)
    page = conforming("rendered_page", result.page_record(URL, "0" * 64))
    assert page["source_url"] == URL and page["gone"] is False

    elements = conforming("page_elements", page_elements_record(page, read=_no_file))
    assert [e["kind"] for e in elements["elements"]][:2] == ["title", "text"]

    chunks = conforming("web_chunks", web_chunks_record(partition_key(URL), elements))
    assert chunks["chunks"] and all(c["source_key"] == partition_key(URL) for c in chunks["chunks"])
    assert {c["section"] for c in chunks["chunks"]} == {"Tides", "Tides > Springs"}


def test_a_page_without_main_content_is_an_empty_record_not_a_failure() -> None:
    result = RenderResult(URL, "ok", final_url=URL, http_status=200, html="<html></html>")
    elements = page_elements_record(result.page_record(URL, "0" * 64), read=_no_file)
    assert elements["status"] == Status.EMPTY and elements["elements"] == []
    assert "no main content" in str(elements["error"])


def test_a_captioned_video_passes_down_the_caption_path_as_records_that_conform() -> None:
    info = conforming(
        "video_info",
        info_record(VideoInfo(URL, "ok", title="A talk", extractor="generic"), allow_hosts=[]),
    )
    # No track on offer: nothing is downloaded, and the path says so.
    assert captions_record(info, ["en"], [], "test-agent")["path"] == "no captions"
    cues = [
        {"start_s": 0.0, "end_s": 4.0, "text": "tides follow the moon", "speaker": "Ann"},
        {"start_s": 4.0, "end_s": 9.0, "text": "and the quarters", "speaker": "Bo"},
    ]
    caps = {"status": Status.OK, "source_url": URL, "path": "captions", "track": None, "cues": cues}
    caps = conforming("captions", caps)
    store = _NoFiles()
    source = {"status": Status.OK, "source_url": URL, "video_info": info, "captions": caps}
    media = conforming(
        "media",
        media_stage_record({**source, "download": False}, MediaLimits(), [], store, _no_key),
    )
    assert media["path"] == NOT_NEEDED and media["duration_s"] == 9.0

    joined = {**source, "media": media}
    transcript = conforming("transcript", transcript_record(joined, _no_model, store))
    assert transcript["source"] == "captions" and transcript["text"].startswith("tides")
    turns = conforming(
        "speaker_turns",
        speaker_turns_record({**joined, "transcript": transcript}, _no_model, "none", store),
    )
    assert turns["speakers"] == ["Ann", "Bo"] and turns["engine"] == "caption voice tags"

    frames = conforming("key_frames", key_frames_record(media, FrameSettings(), store, _no_key))
    assert frames["path"] == NOT_NEEDED and frames["frames"] == []
    text = {"status": Status.OK, "source_url": URL, "engine": "none", "readings": [], "spans": []}
    timeline = {
        **joined,
        "speaker_turns": turns,
        "key_frames": frames,
        "frame_text": conforming("frame_text", text),
    }
    chapters = conforming("chapters", chapters_record(timeline))
    segments = conforming(
        "video_segments", segments_record({**timeline, "chapters": chapters}, bucket_s=5.0)
    )
    assert [s["start_s"] for s in segments["segments"]] == [0.0, 5.0]
    chunks = conforming(
        "video_chunks",
        video_chunks_record(
            partition_key(URL), {**joined, "chapters": chapters, "video_segments": segments}
        ),
    )
    assert chunks["chunks"][0]["deep_link"].startswith(f"{URL}#t=")


def test_a_record_that_breaks_its_schema_becomes_a_permanent_failure_naming_the_field() -> None:
    record = {"status": Status.OK, "source_url": URL, "chunks": [{"text": ""}]}
    failed = contracts.conform("web_chunks", {**record, "input_sha256": "abc"})
    assert failed["status"] == Status.FAILED and failed["error_class"] == "schema_violation"
    assert failed["violation"]["field"].startswith("chunks/0")
    assert failed["input_sha256"] == "abc" and failed["source_url"] == URL
    # Checked once, when made: a stored record and a record that is not ok pass as they are.
    stored = {**record, ARTIFACT_HEADER: {"partition": "k"}}
    assert contracts.conform("web_chunks", stored) is stored
    not_ok = {**record, "status": Status.FAILED}
    assert contracts.conform("web_chunks", not_ok) is not_ok


def test_a_skip_names_the_stage_that_failed_and_passes_down_unchanged() -> None:
    failure = {"status": Status.FAILED, "source_url": URL, "error": "HTTP 404"}
    first = skipped("rendered_page", failure)
    assert first["status"] == Status.SKIPPED and first["error"] == "rendered_page failed: HTTP 404"
    stored = {**first, ARTIFACT_HEADER: {"partition": "k"}}
    assert skipped("page_elements", stored) == first


def _no_file(key: str) -> bytes:
    raise AssertionError(f"an HTML page reads no file ({key})")


def _no_key(name: str) -> str:
    raise AssertionError(f"the caption path stores no file ({name})")


def _no_model(audio: Path) -> Any:
    raise AssertionError(f"the caption path runs no model ({audio})")


class _NoFiles:
    def put_file(self, key: str, path: Path) -> str:
        raise AssertionError(f"the caption path stores no file ({key})")

    def get_file(self, key: str, path: Path) -> Path:
        raise AssertionError(f"the caption path reads no file ({key})")
