"""The manifest sensor: new entries become partitions and batched range runs, once."""

import json
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from media_assets import registry
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from partitions.keys import partition_key
from sensors.manifest import manifest_sensor
from tests.conftest import needs_chromium
from tests.test_end_to_end import demo_manifest


def write_manifest(path: Path, urls: list[str]) -> None:
    path.write_text("".join(f'{{"url": "{u}"}}\n' for u in urls))


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
    ) as context:
        result = manifest_sensor(context)
    # build_sensor_context evaluates but does not apply partition requests; the daemon does.
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result, result.cursor if isinstance(result, dg.SensorResult) else cursor


def test_two_ticks_on_one_manifest_give_one_set_of_partitions_and_runs(
    tmp_path: Path, env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    manifest = tmp_path / "manifest.jsonl"
    urls = [f"https://example.com/page-{i}" for i in range(5)]
    write_manifest(manifest, [*urls, "not-a-url"])
    defs = build_definitions(
        {**env, "MEDIA_ASSETS_MANIFEST": str(manifest), "MEDIA_ASSETS_BATCH_SIZE": "2"}
    )

    first, cursor = tick(defs, instance, None)
    assert isinstance(first, dg.SensorResult)
    keys = instance.get_dynamic_partitions("web_pages")
    assert len(keys) == 5
    ranges = [
        (r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG])
        for r in first.run_requests
    ]
    assert ranges == [(keys[0], keys[1]), (keys[2], keys[3]), (keys[4], keys[4])]
    assert {r.job_name for r in first.run_requests} == {"web_ingest"}
    store = defs.resources["object_store"]
    assert registry.lookup(store, keys[3]).url == urls[3]

    second, _ = tick(defs, instance, cursor)
    assert isinstance(second, dg.SkipReason) and "unchanged" in second.skip_message
    # Even with the cursor lost, known partitions are not requested again.
    third, _ = tick(defs, instance, None)
    assert isinstance(third, dg.SensorResult) and third.run_requests == []
    assert len(instance.get_dynamic_partitions("web_pages")) == 5

    write_manifest(manifest, [*urls, "https://example.com/new"])
    fourth, _ = tick(defs, instance, cursor)
    assert [r.tags[ASSET_PARTITION_RANGE_START_TAG] for r in fourth.run_requests] == [
        instance.get_dynamic_partitions("web_pages")[-1]
    ]


def test_video_entries_become_video_partitions_and_video_runs(
    tmp_path: Path, env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    manifest = tmp_path / "manifest.jsonl"
    web = "https://example.com/guide"
    videos = [
        "https://example.com/talk.mp4",  # by extension
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",  # recognised by yt-dlp
        "https://example.com/keynote-page",  # said so by the manifest
    ]
    manifest.write_text(
        "".join(json.dumps({"url": u}) + "\n" for u in [web, *videos[:2]])
        + json.dumps({"url": videos[2], "kind": "video"})
        + "\n"
    )
    defs = build_definitions({**env, "MEDIA_ASSETS_MANIFEST": str(manifest)})
    result, _ = tick(defs, instance, None)
    assert instance.get_dynamic_partitions("web_pages") == [partition_key(web)]
    assert instance.get_dynamic_partitions("videos") == [partition_key(u) for u in videos]
    assert sorted(r.job_name for r in result.run_requests) == ["video_ingest", "web_ingest"]


def test_sensor_without_manifest_says_what_to_set(
    env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    result, _ = tick(build_definitions(env), instance, None)
    assert isinstance(result, dg.SkipReason) and "MEDIA_ASSETS_MANIFEST" in result.skip_message


@needs_chromium
def test_removed_url_leaves_the_index_and_comes_back_fresh(
    site: SiteServer, tmp_path: Path, env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    manifest = demo_manifest(site, tmp_path)
    defs = build_definitions({**env, "MEDIA_ASSETS_MANIFEST": str(manifest)})
    ingest(manifest, defs, instance)
    _, cursor = tick(defs, instance, None)  # the sensor sees what ingest registered
    index, store = defs.resources["vector_index"], defs.resources["object_store"]
    lines = manifest.read_text().splitlines()
    removed_line = next(line for line in lines if "getting-started" in line)
    removed_key = partition_key(json.loads(removed_line)["url"])
    assert index.rows(removed_key)

    manifest.write_text("".join(f"{line}\n" for line in lines if line != removed_line))
    result, cursor = tick(defs, instance, cursor)
    assert result.run_requests == []
    assert removed_key not in instance.get_dynamic_partitions("web_pages")
    assert index.rows(removed_key) == []
    assert not store.exists(f"rendered_page/{removed_key}.json")
    assert len(instance.get_dynamic_partitions("web_pages")) == 6

    manifest.write_text("".join(f"{line}\n" for line in lines))  # added back
    result, _ = tick(defs, instance, cursor)
    assert [r.tags["dagster/asset_partition_range_start"] for r in result.run_requests] == [
        removed_key
    ]
