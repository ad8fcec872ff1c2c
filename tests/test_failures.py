"""A batch with bad URLs: the good ones end materialized, the bad ones missing and dead-lettered,
through what the batch-failure sensor plans (and through `ingest`, which does the same)."""

import io
from pathlib import Path

import dagster as dg
import pandas as pd

from media_assets import deadletters, registry
from media_assets.assets.status import ingest_status
from media_assets.batching import range_tags
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.manifest import parse_manifest
from media_assets.status import STATUS_KEY
from sensors.failures import RETRY_OF_TAG, plan_retry
from tests.conftest import needs_chromium, write_articles

pytestmark = needs_chromium
ASSETS = ("rendered_page", "page_elements", "web_chunks", "web_embeddings", "web_index_rows")


def test_two_bad_urls_in_a_batch_of_ten(
    site: SiteServer, site_dir: Path, env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    paths = write_articles(site_dir, 8)
    paths[3:3] = ["/missing-a.html"]
    paths[7:7] = ["/private/internal-notes.html"]  # robots.txt disallows it
    manifest = parse_manifest("".join(f'{{"url": "{site.base_url}{p}"}}\n' for p in paths), "jsonl")
    defs = build_definitions(env)
    store = defs.resources["object_store"]
    registry.register(store, manifest.entries)
    keys = [e.key for e in manifest.entries]
    instance.add_dynamic_partitions("web_pages", keys)
    job = defs.resolve_job_def("web_ingest")

    first = job.execute_in_process(instance=instance, tags=range_tags(keys), raise_on_error=False)
    assert not first.success
    bad = {keys[3], keys[7]}
    assert {d.partition_key for d in deadletters.list_all(store)} == bad

    # What the batch-failure sensor requests (the daemon evaluates it in tests/test_daemon.py).
    plan = plan_retry(instance, store, instance.get_run_by_id(first.run_id), batch_size=50)
    assert plan.kind == "web" and plan.failed == bad
    requests = plan.run_requests()
    assert {r.job_name for r in requests} == {"web_ingest"}
    assert {r.tags[RETRY_OF_TAG] for r in requests} == {first.run_id}
    covered = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ]
    assert covered == [(keys[0], keys[2]), (keys[4], keys[6]), (keys[8], keys[9])]

    requests_before = sum(site.requests.values())
    for request in requests:
        assert job.execute_in_process(instance=instance, tags=request.tags).success
    assert sum(site.requests.values()) == requests_before  # renders were checkpointed

    for asset in ASSETS:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys) - bad, asset
    index = defs.resources["vector_index"]
    assert {r["source_key"] for r in index.rows()} == set(keys) - bad

    # The per-URL status table says the same, and the asset shows it in the UI.
    result = dg.materialize([ingest_status], instance=instance, resources={"object_store": store})
    metadata = result.asset_materializations_for_node("ingest_status")[0].metadata
    assert metadata["urls"].value == 10 and metadata["state: indexed"].value == 8
    frame = pd.read_parquet(io.BytesIO(store.get(STATUS_KEY)))
    rows = frame.set_index("partition_key")
    assert rows.loc[keys[3], "state"] == "failed at rendered_page"
    assert rows.loc[keys[3], "error_class"] == "http_client_error"
    assert rows.loc[keys[7], "error_class"] == "robots_disallow"
    assert (rows.loc[keys[0], ["stage_web_index_rows", "state"]] == ["ok", "indexed"]).all()
