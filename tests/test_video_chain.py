"""The video chain through Dagster: captions path, download path, a corrupt file, search."""

import json
from collections import Counter
from pathlib import Path

import dagster as dg

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer, folder_hook
from media_assets.ingest import ingest
from media_assets.search import search
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore


def test_video_batch_takes_each_path_and_a_corrupt_file_fails_alone(
    site: SiteServer,
    demo_media: Path,
    tmp_path: Path,
    env: dict[str, str],
    instance: dg.DagsterInstance,
) -> None:
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
    manifest = tmp_path / "videos.jsonl"
    manifest.write_text(
        "".join(json.dumps({"url": u, "kind": "video"}) + "\n" for u in urls.values())
    )
    defs = build_definitions(env)
    report = ingest(manifest, defs, instance)

    keys = {name: partition_key(url) for name, url in urls.items()}
    bad = {keys["truncated"], keys["no_video"]}
    assert report.statuses["video"] == Counter({"indexed": 3, "failed": 2})
    assert (
        instance.get_materialized_partitions(dg.AssetKey("video_index_rows"))
        == set(keys.values()) - bad
    )
    store = defs.resources["object_store"]
    letters = {d.partition_key: d for d in deadletters.list_all(store)}
    assert (letters[keys["truncated"]].asset, letters[keys["truncated"]].error_class) == (
        "media",
        "corrupt_media",
    )
    assert "moov atom not found" in letters[keys["truncated"]].message
    assert letters[keys["no_video"]].error_class == "no_video"

    # Captions path: the media file was never requested, and every stage still materialized.
    assert site.requests["/video/hive-tour.mp4"] == 0
    info = ArtifactStore(store, dg.AssetKey("video_info"), {})
    assert info.read(keys["captioned"])["duration_s"] is None  # no ffprobe: it would fetch media
    talk_info = info.read(keys["talk"])  # no captions on offer: ffprobe read the duration
    assert talk_info["duration_from"] == "ffprobe" and 25 < talk_info["duration_s"] < 40
    media = ArtifactStore(store, dg.AssetKey("media"), {})
    assert media.read(keys["captioned"])["path"] == "not needed: captions"
    assert media.read(keys["talk"])["path"] == "downloaded"
    frames = ArtifactStore(store, dg.AssetKey("key_frames"), {}).read(keys["talk"])
    assert frames["frames"] and all(store.exists(f["key"]) for f in frames["frames"])

    index, embedder = defs.resources["vector_index"], defs.resources["embedder"]
    caption_hit = search("today we open a colony in early spring", index, embedder, k=1)[0]
    assert caption_hit.source_key == keys["captioned"] and caption_hit.kind == "video"
    assert caption_hit.speakers == ("Mira Okonkwo", "Tomasz Lindqvist")
    assert caption_hit.deep_link == f"{urls['captioned']}#t=0"
    spoken = search("we collected the swarm in a cardboard box", index, embedder, k=1, kind="video")
    assert spoken[0].source_key == keys["direct"]
    assert spoken[0].start_s is not None and spoken[0].start_s <= 5 < spoken[0].end_s
    shown = search("bumblebees fly in the cold", index, embedder, k=1, kind="video")[0]
    assert shown.source_key == keys["talk"] and shown.deep_link.startswith(f"{urls['talk']}#t=")
    assert len({*shown.speakers}) == 2  # two voices heard in the talk

    # A second run finds everything materialized or failed for good: no work, no downloads.
    downloads = site.requests["/media/pollination-talk.mp4"]
    assert ingest(manifest, defs, instance).runs == []
    assert site.requests["/media/pollination-talk.mp4"] == downloads

    # On-screen text wanted from captioned videos too: only the captioned one is downloaded now.
    mp4 = (200, {"Content-Type": "video/mp4"}, talk)
    site.add_hook(lambda path: mp4 if path == "/video/hive-tour.mp4" else None)
    with_frames = build_definitions({**env, "MEDIA_ASSETS_VIDEO_KEY_FRAMES_WITH_CAPTIONS": "true"})
    assert ingest(manifest, with_frames, instance, force=True).statuses["video"]["indexed"] == 3
    assert site.requests["/video/hive-tour.mp4"] >= 1
    assert site.requests["/media/pollination-talk.mp4"] == downloads
    assert media.read(keys["captioned"])["path"] == "downloaded"
    assert ArtifactStore(store, dg.AssetKey("key_frames"), {}).read(keys["captioned"])["frames"]
