"""The manifest sensor: new entries become partitions and batched range runs, once."""

from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from media_assets import registry
from media_assets.definitions import build_definitions
from sensors.manifest import manifest_sensor


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
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
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


def test_sensor_without_manifest_says_what_to_set(
    env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    result, _ = tick(build_definitions(env), instance, None)
    assert isinstance(result, dg.SkipReason) and "MEDIA_ASSETS_MANIFEST" in result.skip_message
