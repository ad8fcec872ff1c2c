"""The video chain through Dagster: captions path, download path, a corrupt file, search.

One batch of five URLs is ingested once for the module; each test checks one behaviour of it.
Then the module moves on: on-screen text is asked for from captioned videos too, and the batch
runs again. Tests run in file order; each phase's tests say which state they need (``Phases``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer, folder_hook
from media_assets.ingest import IngestReport, ingest
from media_assets.search import search
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import Phases, write_manifest

INGESTED, KEY_FRAMES = "ingested", "key frames wanted from captioned videos"


@dataclass
class VideoBatch:
    site: SiteServer
    talk: bytes  # the talk's MP4, served again under other names
    env: dict[str, str]
    defs: dg.Definitions
    instance: dg.DagsterInstance
    manifest: Path
    urls: dict[str, str]
    report: IngestReport
    phases: Phases = field(default_factory=lambda: Phases(INGESTED))

    @property
    def keys(self) -> dict[str, str]:
        return {name: partition_key(url) for name, url in self.urls.items()}

    @property
    def bad(self) -> set[str]:
        return {self.keys["truncated"], self.keys["no_video"]}

    def artifact(self, asset: str, name: str) -> dict[str, Any]:
        store = self.defs.resources["object_store"]
        return ArtifactStore(store, dg.AssetKey(asset), {}).read(self.keys[name])

    def search(self, query: str, **options: Any) -> list[Any]:
        resources = self.defs.resources
        return search(query, resources["vector_index"], resources["embedder"], **options)


@pytest.fixture(scope="module")
def batch(
    module_site: SiteServer,
    demo_media: Path,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> VideoBatch:
    site = module_site
    site.add_hook(folder_hook("/media/", demo_media))
    talk = (demo_media / "pollination-talk.mp4").read_bytes()
    # The front of an MP4 whose index (moov) was written at the end: a truncated download.
    cut = (200, {"Content-Type": "video/mp4"}, talk[:20_000])
    site.add_hook(lambda path: cut if path == "/cut.mp4" else None)
    base = site.base_url
    urls = {
        "captioned": f"{base}/video/hive-tour.html",
        "talk": f"{base}/video/pollination-talk.html",
        "direct": f"{base}/media/swarm-notes.m4a",
        "truncated": f"{base}/cut.mp4",
        "no_video": f"{base}/docs/getting-started.html",
    }
    manifest = write_manifest(module_tmp / "videos.jsonl", urls.values(), kind="video")
    defs = build_definitions(module_env)
    report = ingest(manifest, defs, module_instance)
    return VideoBatch(site, talk, module_env, defs, module_instance, manifest, urls, report)


@pytest.fixture
def ingested(batch: VideoBatch) -> VideoBatch:
    batch.phases.expect(INGESTED)
    return batch


def test_good_videos_are_indexed_and_bad_ones_fail_alone(ingested: VideoBatch) -> None:
    assert ingested.report.statuses["video"] == Counter({"indexed": 3, "failed": 2})
    assert (
        ingested.instance.get_materialized_partitions(dg.AssetKey("video_index_rows"))
        == set(ingested.keys.values()) - ingested.bad
    )


def test_a_truncated_download_is_dead_lettered_as_corrupt_media(ingested: VideoBatch) -> None:
    letters = {
        d.partition_key: d for d in deadletters.list_all(ingested.defs.resources["object_store"])
    }
    letter = letters[ingested.keys["truncated"]]
    assert (letter.asset, letter.error_class) == ("media", "corrupt_media")
    assert "moov atom not found" in letter.message


def test_a_page_without_a_video_is_dead_lettered_as_no_video(ingested: VideoBatch) -> None:
    letters = {
        d.partition_key: d for d in deadletters.list_all(ingested.defs.resources["object_store"])
    }
    assert letters[ingested.keys["no_video"]].error_class == "no_video"


def test_captions_path_never_requests_the_media(ingested: VideoBatch) -> None:
    # Captions path: the media file was never requested, and every stage still materialized.
    assert ingested.site.requests["/video/hive-tour.mp4"] == 0
    # No ffprobe either: it would fetch media.
    assert ingested.artifact("video_info", "captioned")["duration_s"] is None
    assert ingested.artifact("media", "captioned")["path"] == "not needed: captions"


def test_an_uncaptioned_talk_is_downloaded_probed_and_framed(ingested: VideoBatch) -> None:
    talk_info = ingested.artifact("video_info", "talk")  # no captions on offer: ffprobe ran
    assert talk_info["duration_from"] == "ffprobe" and 25 < talk_info["duration_s"] < 40
    assert ingested.artifact("media", "talk")["path"] == "downloaded"
    frames = ingested.artifact("key_frames", "talk")
    store = ingested.defs.resources["object_store"]
    assert frames["frames"] and all(store.exists(f["key"]) for f in frames["frames"])


def test_caption_words_are_found_with_their_speakers_and_time_link(ingested: VideoBatch) -> None:
    caption_hit = ingested.search("today we open a colony in early spring", k=1)[0]
    assert caption_hit.source_key == ingested.keys["captioned"] and caption_hit.kind == "video"
    assert caption_hit.speakers == ("Mira Okonkwo", "Tomasz Lindqvist")
    assert caption_hit.deep_link == f"{ingested.urls['captioned']}#t=0"


def test_recognised_speech_is_found_at_the_second_it_was_said(ingested: VideoBatch) -> None:
    spoken = ingested.search("we collected the swarm in a cardboard box", k=1, kind="video")
    assert spoken[0].source_key == ingested.keys["direct"]
    assert spoken[0].start_s is not None and spoken[0].start_s <= 5 < spoken[0].end_s


def test_on_screen_text_is_found_in_the_talk_with_both_voices(ingested: VideoBatch) -> None:
    shown = ingested.search("bumblebees fly in the cold", k=1, kind="video")[0]
    assert shown.source_key == ingested.keys["talk"]
    assert shown.deep_link.startswith(f"{ingested.urls['talk']}#t=")
    assert len({*shown.speakers}) == 2  # two voices heard in the talk


def test_a_second_run_finds_no_work_and_downloads_nothing(ingested: VideoBatch) -> None:
    downloads = ingested.site.requests["/media/pollination-talk.mp4"]
    assert ingest(ingested.manifest, ingested.defs, ingested.instance).runs == []
    assert ingested.site.requests["/media/pollination-talk.mp4"] == downloads


# --- on-screen text wanted from captioned videos too -------------------------------------------


@dataclass
class WithKeyFrames:
    report: IngestReport
    talk_downloads_before: int


@pytest.fixture(scope="module")
def with_key_frames(batch: VideoBatch) -> WithKeyFrames:
    """The batch again, forced, with key frames wanted from captioned videos too; the captioned
    video's media is served now (the talk's bytes)."""
    batch.phases.advance(KEY_FRAMES)
    downloads = batch.site.requests["/media/pollination-talk.mp4"]
    mp4 = (200, {"Content-Type": "video/mp4"}, batch.talk)
    batch.site.add_hook(lambda path: mp4 if path == "/video/hive-tour.mp4" else None)
    defs = build_definitions({**batch.env, "MEDIA_ASSETS_VIDEO_KEY_FRAMES_WITH_CAPTIONS": "true"})
    return WithKeyFrames(ingest(batch.manifest, defs, batch.instance, force=True), downloads)


def test_key_frames_with_captions_downloads_only_the_captioned_video(
    batch: VideoBatch, with_key_frames: WithKeyFrames
) -> None:
    assert with_key_frames.report.statuses["video"]["indexed"] == 3
    assert batch.site.requests["/video/hive-tour.mp4"] >= 1
    downloads = batch.site.requests["/media/pollination-talk.mp4"]
    assert downloads == with_key_frames.talk_downloads_before
    assert batch.artifact("media", "captioned")["path"] == "downloaded"
    assert batch.artifact("key_frames", "captioned")["frames"]
