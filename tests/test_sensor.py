"""What the manifest sensor plans, as plain functions, and the removal run it requests.

The sensors themselves are only evaluated by Dagster's daemon (tests/test_daemon.py): calling a
sensor function here would skip the checks Dagster makes of its result.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from media_assets import registry
from media_assets.dagster_compat import partition_range_of_run
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from media_assets.manifest import parse_manifest, read_manifest
from partitions.keys import partition_key
from resources.storage import LocalObjectStore
from sensors.manifest import ManifestCursor, plan_ingest
from tests.helpers import demo_manifest, needs_chromium


def manifest_of(urls: list[str]) -> str:
    return "".join(json.dumps({"url": u}) + "\n" for u in urls)


def test_new_entries_become_batched_ranges_and_known_ones_are_not_requested_again() -> None:
    urls = [f"https://example.com/page-{i}" for i in range(5)]
    manifest = parse_manifest(manifest_of(urls) + "not-a-url\n", "jsonl")
    keys = [partition_key(u) for u in urls]

    plan = plan_ingest(manifest, {}, batch_size=2, run_key_prefix="abc.1")
    ranges = [partition_range_of_run(r.tags) for r in plan.run_requests]
    assert ranges == [(keys[0], keys[1]), (keys[2], keys[3]), (keys[4], keys[4])]
    assert {r.job_name for r in plan.run_requests} == {"web_ingest"}
    assert [r.tags["media_assets/urls"] for r in plan.run_requests] == ["2", "2", "1"]
    [add] = plan.partition_requests
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert (add.partitions_def_name, list(add.partition_keys)) == ("web_pages", keys)
    assert plan.summary() == "5 new URLs in 3 runs (1 bad line skipped)"

    again = plan_ingest(manifest, {"web": set(keys)}, batch_size=2, run_key_prefix="abc.2")
    assert again.run_requests == [] and again.partition_requests == []
    assert again.summary() == "no new or removed URLs (1 bad line skipped)"


def test_removed_entries_become_one_removal_run_and_keep_their_partitions() -> None:
    urls = [f"https://example.com/page-{i}" for i in range(4)]
    keys = [partition_key(u) for u in urls]
    manifest = parse_manifest(
        manifest_of([urls[0], urls[2], urls[3], "https://example.com/n"]), "jsonl"
    )

    plan = plan_ingest(manifest, {"web": set(keys[:3])}, batch_size=50, run_key_prefix="abc.7")
    assert plan.summary() == "2 new URLs in 1 run, 1 removed"
    removal = plan.removal_run
    assert removal is not None and removal.job_name == "remove_sources"
    assert removal.run_config == {
        "ops": {"forget_sources": {"config": {"keys": {"web": [keys[1]]}}}}
    }
    # Partitions are only added by the tick: the removal run deletes its partitions last.
    assert all(isinstance(r, dg.AddDynamicPartitionsRequest) for r in plan.partition_requests)


def test_run_keys_differ_between_generations_so_a_url_added_back_runs_again() -> None:
    manifest = parse_manifest(manifest_of(["https://example.com/a"]), "jsonl")
    data = manifest_of(["https://example.com/a"]).encode()
    first = ManifestCursor().against(data)
    read = first.after(data, len(data), 2)
    other = manifest_of(["https://example.com/b"]).encode()
    removed = read.against(other)  # rewritten without it: a new pass
    later = removed.after(other, len(other), 2).against(data)  # added back: another pass
    assert [c.generation for c in (first, removed, later)] == [1, 2, 3]
    plans = [plan_ingest(manifest, {}, 50, c.run_key_prefix(0)) for c in (first, later)]
    keys = {p.run_requests[0].run_key for p in plans}
    assert len(keys) == 2


def test_cursor_round_trips_and_reads_the_digests_of_older_versions() -> None:
    data = b'{"url": "https://example.com/a"}\n'
    cursor = ManifestCursor(generation=3).after(data, len(data), 2)
    assert ManifestCursor.parse(cursor.serialize()) == cursor
    assert cursor.against(data) == cursor and not cursor.reconcile
    digest = hashlib.sha256(data).hexdigest()
    for older in (digest, json.dumps({"sha256": digest, "generation": 3})):
        # the file as the older cursor left it: read to its end, nothing to do
        assert ManifestCursor.parse(older).against(data).offset == len(data)
        assert ManifestCursor.parse(older).against(data + data).offset == 0  # changed: re-read
    assert ManifestCursor.parse(None) == ManifestCursor()


def test_video_entries_plan_video_partitions_and_video_runs() -> None:
    web = "https://example.com/guide"
    videos = [
        "https://example.com/talk.mp4",  # by extension
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",  # recognised by yt-dlp
        "https://example.com/keynote-page",  # said so by the manifest
    ]
    text = manifest_of([web, *videos[:2]]) + json.dumps({"url": videos[2], "kind": "video"}) + "\n"
    plan = plan_ingest(parse_manifest(text, "jsonl"), {}, batch_size=50)
    assert plan.added == {"web": [partition_key(web)], "video": [partition_key(u) for u in videos]}
    assert sorted(r.job_name for r in plan.run_requests) == ["video_ingest", "web_ingest"]


def test_a_run_registers_unknown_keys_from_the_watched_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(root=str(tmp_path / "artifacts"))
    listed, unlisted = "https://example.com/listed", "https://example.com/unlisted"
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(manifest_of([listed]))
    keys = [partition_key(listed), partition_key(unlisted)]

    found, failed = registry.resolve(store, keys)  # no manifest watched
    assert found == {} and set(failed) == set(keys)

    found, failed = registry.resolve(store, keys, str(manifest))
    assert found[keys[0]].url == listed and registry.lookup(store, keys[0]).url == listed
    assert list(failed) == [keys[1]] and failed[keys[1]]["status"] == "failed"
    assert registry.MANIFEST_ENV in str(failed[keys[1]]["error"])


@needs_chromium
def test_removal_run_forgets_the_source_and_a_url_added_back_is_planned_afresh(
    site: SiteServer, tmp_path: Path, env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    manifest = demo_manifest(site, tmp_path)
    defs = build_definitions(env)
    assert ingest(manifest, defs, instance).ok
    index, store = defs.resources["vector_index"], defs.resources["object_store"]
    lines = manifest.read_text().splitlines()
    removed_line = next(line for line in lines if "getting-started" in line)
    removed_key = partition_key(json.loads(removed_line)["url"])
    assert index.rows(removed_key)

    manifest.write_text("".join(f"{line}\n" for line in lines if line != removed_line))
    existing = {"web": set(instance.get_dynamic_partitions("web_pages"))}
    plan = plan_ingest(read_manifest(manifest)[0], existing, 50, "abc.2")
    assert plan.ingest_runs == [] and plan.removed == {"web": [removed_key]}
    assert plan.removal_run is not None
    result = defs.resolve_job_def(plan.removal_run.job_name).execute_in_process(
        instance=instance, run_config=plan.removal_run.run_config, tags=plan.removal_run.tags
    )
    assert result.success
    assert removed_key in yaml.safe_dump(instance.get_run_by_id(result.run_id).run_config)
    assert removed_key not in instance.get_dynamic_partitions("web_pages")
    assert index.rows(removed_key) == []
    assert not store.exists(f"rendered_page/{removed_key}.json")
    with pytest.raises(registry.UnknownPartitionError):
        registry.lookup(store, removed_key)
    assert len(instance.get_dynamic_partitions("web_pages")) == 6

    manifest.write_text("".join(f"{line}\n" for line in lines))  # added back
    existing = {"web": set(instance.get_dynamic_partitions("web_pages"))}
    plan = plan_ingest(read_manifest(manifest)[0], existing, 50, "abc.3")
    assert plan.added == {"web": [removed_key]} and plan.removal_run is None
    assert [partition_range_of_run(r.tags) for r in plan.run_requests] == [(removed_key,) * 2]
