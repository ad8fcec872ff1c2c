"""The production instance storage for real: deploy/dagster.yaml's PostgreSQL storage on a local
PostgreSQL server, the sensor and a batch of URLs against it, partition status read back."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from media_assets.manifest import read_manifest
from partitions.keys import partition_key
from sensors.manifest import plan_ingest
from tests.helpers import deploy_storage, needs_chromium, write_articles
from tests.postgres import LocalPostgres, postgres_bin, running_postgres

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(
        postgres_bin() is None, reason="PostgreSQL not installed: apt-get install postgresql"
    ),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_instance(
    postgres: LocalPostgres, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "postgres",
        "DAGSTER_PG_USERNAME": "postgres",
        "DAGSTER_PG_PASSWORD": "",
    }.items():
        monkeypatch.setenv(name, value)
    with dg.instance_for_test(overrides=deploy_storage()) as instance:
        yield instance


def test_sensor_and_batch_on_the_production_postgres_storage(
    site: SiteServer,
    site_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    pg_instance: dg.DagsterInstance,
) -> None:
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(pg_instance.event_log_storage).__name__ == "BatchingPostgresEventLogStorage"
    assert type(pg_instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    urls = [site.base_url + path for path in write_articles(site_dir, 4)]
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text("".join(f'{{"url": "{u}"}}\n' for u in [*urls, f"{site.base_url}/nope"]))
    defs = build_definitions({**env, "MEDIA_ASSETS_MANIFEST": str(manifest)})
    # The sensor's plan, applied as the daemon applies it (the sensor itself runs under the
    # daemon in tests/test_daemon.py): partitions in PostgreSQL, one batched run.
    plan = plan_ingest(read_manifest(manifest)[0], {}, batch_size=50)
    assert len(plan.ingest_runs) == 1
    for request in plan.partition_requests:
        pg_instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    assert len(pg_instance.get_dynamic_partitions("web_pages")) == 5

    ingest(manifest, defs, pg_instance)
    good = {partition_key(u) for u in urls}
    assert pg_instance.get_materialized_partitions(dg.AssetKey("web_index_rows")) == good
    records = pg_instance.get_run_records()
    # the batch with the 404 failed; its good URLs ran again and succeeded
    assert {r.dagster_run.status for r in records} == {
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.SUCCESS,
    }
    statuses = pg_instance.get_status_by_partition(
        dg.AssetKey("rendered_page"),
        pg_instance.get_dynamic_partitions("web_pages"),
        build_definitions(env).resolve_assets_def("rendered_page").partitions_def,
    )
    assert statuses is not None
    assert sum(1 for s in statuses.values() if str(s).endswith("MATERIALIZED")) == 4
    # the 404 shows as failed, on PostgreSQL as on SQLite
    assert str(statuses[partition_key(f"{site.base_url}/nope")]).endswith("FAILED")
