"""Each Dagster internal that media_assets.dagster_compat relies on, exercised on a real instance
in a temporary folder: a Dagster upgrade that changes one fails here, naming the capability."""

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from media_assets import dagster_compat as compat
from media_assets.instance import local_instance_config
from tests.helpers import ROOT
from tests.postgres import running_postgres

things = dg.DynamicPartitionsDefinition(name="things")
KEYS = [f"p{i}" for i in range(6)]
# What the asset bodies below saw of partition_reads_cached, per run.
READS: list[compat.PartitionReads] = []


@contextmanager
def capability(name: str) -> Iterator[None]:
    """Turn any failure inside into one that names the capability and the Dagster version."""
    try:
        yield
    except Exception as exc:  # an upgrade may break it in any way
        pytest.fail(
            f"Dagster {dg.__version__} no longer gives what dagster_compat's {name} relies on "
            f"(see its docstring): {type(exc).__name__}: {exc}"
        )


@dg.asset(partitions_def=things, backfill_policy=dg.BackfillPolicy.single_run(), code_version="1")
def up(context: dg.AssetExecutionContext) -> dg.Output[None]:
    return dg.Output(None, data_version=dg.DataVersion("v1"))


@dg.asset(
    partitions_def=things,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version="1",
    deps=[up],
)
def down(context: dg.AssetExecutionContext) -> None:
    with compat.partition_reads_cached(context.instance) as reads:
        for key in context.partition_keys:
            context.add_asset_metadata({"which": key}, partition_key=key)
    READS.append(reads)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        inst.add_dynamic_partitions(things.name, KEYS)
        yield inst


def run_range(instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
    job = dg.Definitions(assets=[up, down]).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, tags=compat.partition_range_tags(first, last))


def latest(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dg.EventLogRecord:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    assert records, f"{key.to_user_string()} {partition} has no materialization"
    return records[0]


def test_partition_range_tags_make_one_run_cover_exactly_that_range(
    instance: dg.DagsterInstance,
) -> None:
    with capability("partition_range_tags / partition_range_of_run"):
        result = run_range(instance, "p1", "p3")
        assert result.success
        assert instance.get_materialized_partitions(up.key) == {"p1", "p2", "p3"}
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert compat.partition_range_of_run(run.tags) == ("p1", "p3")
        assert compat.partition_range_of_run({"dagster/partition": "p1"}) is None
        assert compat.partition_of_run(run.tags) is None


def test_partition_of_run_names_the_one_partition_a_run_was_launched_for(
    instance: dg.DagsterInstance,
) -> None:
    with capability("partition_of_run"):
        job = dg.Definitions(assets=[up, down]).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, partition_key="p4")
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert compat.partition_of_run(run.tags) == "p4"
        assert compat.partition_range_of_run(run.tags) is None


def test_in_progress_statuses_are_the_unfinished_ones() -> None:
    with capability("in_progress_statuses"):
        statuses = set(compat.in_progress_statuses())
        assert dg.DagsterRunStatus.STARTED in statuses
        finished = {
            dg.DagsterRunStatus.SUCCESS,
            dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED,
        }
        assert not statuses & finished


def test_data_versions_are_read_and_given_per_partition(instance: dg.DagsterInstance) -> None:
    with capability("data_version_of / with_data_version"):
        assert run_range(instance, "p0", "p1").success
        event = latest(instance, up.key, "p0").asset_materialization
        assert event is not None
        assert compat.data_version_of(event) == "v1"
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                up.key, partition="p1", tags=compat.with_data_version(dict(event.tags), "v2")
            )
        )
        own = latest(instance, up.key, "p1").asset_materialization
        assert own is not None
        assert compat.data_version_of(own) == "v2"
        assert compat.data_version_of(dg.AssetMaterialization("x")) is None


def test_stale_status_follows_each_partitions_upstream_data_version(
    instance: dg.DagsterInstance,
) -> None:
    graph = dg.Definitions(assets=[up, down]).resolve_asset_graph()
    with capability("StaleStatusReader (with with_data_version)"):
        assert run_range(instance, "p0", "p2").success
        assert not any(
            compat.StaleStatusReader(instance, graph).is_stale(down.key, p) for p in KEYS[:3]
        )
        tags = dict(latest(instance, up.key, "p0").asset_materialization.tags)  # type: ignore[union-attr]
        # The same version again (what versions.py records for unchanged content): still fresh.
        for partition, version in (("p0", "v1"), ("p1", "v2")):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    up.key, partition=partition, tags=compat.with_data_version(tags, version)
                )
            )
        reader = compat.StaleStatusReader(instance, graph)
        assert [reader.is_stale(down.key, p) for p in KEYS[:3]] == [False, True, False]


def test_provenance_and_latest_storage_ids_name_what_a_partition_was_made_from(
    instance: dg.DagsterInstance,
) -> None:
    with capability("Provenance / latest_storage_ids_by_partition"):
        assert run_range(instance, "p0", "p1").success
        assert run_range(instance, "p1", "p1").success
        ids = compat.latest_storage_ids_by_partition(instance, up.key, ["p0", "p1", "p5"])
        assert ids == {p: latest(instance, up.key, p).storage_id for p in ("p0", "p1")}
        tags = latest(instance, down.key, "p1").asset_materialization.tags  # type: ignore[union-attr]
        made = compat.Provenance.of(tags, [up.key])
        assert made.code_version == "1"
        assert made.same_inputs
        assert made.inputs == {up.key: ids["p1"]}
        assert not compat.Provenance.of(tags, []).same_inputs


def test_event_batching_writes_each_batch_of_partition_events_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(compat.EVENT_BATCH_SIZE_VAR, raising=False)
    batches: list[int] = []
    original = compat.BatchingSqliteEventLogStorage.store_event_batch

    def spy(self: compat.BatchingSqliteEventLogStorage, events: list) -> None:
        batches.append(len(events))
        original(self, events)

    monkeypatch.setattr(compat.BatchingSqliteEventLogStorage, "store_event_batch", spy)
    env: dict[str, str] = {compat.EVENT_BATCH_SIZE_VAR: "7"}
    compat.enable_event_batching(env)
    assert env[compat.EVENT_BATCH_SIZE_VAR] == "7"  # a value already set wins
    home = tmp_path / "home"
    home.mkdir()
    with (
        capability("enable_event_batching / BatchingSqliteEventLogStorage"),
        dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst,
    ):
        # Building the local instance enabled batching (monkeypatch restores the variable).
        assert os.environ.get(compat.EVENT_BATCH_SIZE_VAR) == compat.EVENT_BATCH_SIZE
        assert isinstance(inst.event_log_storage, compat.BatchingSqliteEventLogStorage)
        inst.add_dynamic_partitions(things.name, KEYS)
        job = dg.Definitions(assets=[up]).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=inst, tags=compat.partition_range_tags(KEYS[0], KEYS[-1])
        )
        assert result.success
        # The planned events, then the materializations: one write each.
        assert batches.count(len(KEYS)) == 2, batches
        assert inst.get_materialized_partitions(up.key) == set(KEYS)
        logged = [e.dagster_event_type for e in inst.all_logs(result.run_id) if e.is_dagster_event]
        assert logged.count(dg.DagsterEventType.ASSET_MATERIALIZATION) == len(KEYS)


def test_partition_reads_cached_serves_add_asset_metadatas_checks_from_memory(
    instance: dg.DagsterInstance,
) -> None:
    READS.clear()
    with capability("partition_reads_cached"):
        assert run_range(instance, "p0", "p5").success
        (reads,) = READS
        # Dagster checks each partition key through the patched methods: without them being
        # called, the cache saves nothing and a batched step pays three queries a partition.
        assert reads.from_storage == 1, reads
        assert reads.from_memory >= len(KEYS) - 1, reads
        assert "get_dynamic_partitions" not in vars(instance)  # the original is back
        records = instance.fetch_materializations(down.key, limit=100).records
        assert {
            r.asset_materialization.partition: r.asset_materialization.metadata["which"].value
            for r in records
            if r.asset_materialization is not None
        } == {k: k for k in KEYS}


# unstructured reads these on its own import (it would otherwise ping a server): web/chunk.py sets
# them before importing it.
UNSTRUCTURED_VARS = {"DO_NOT_TRACK", "UNSTRUCTURED_DISABLE_NOTICE"}


def test_importing_the_package_sets_no_variable_and_no_warning_filter() -> None:
    """Everything below the code location, imported in a fresh interpreter, leaves the process's
    environment and warning filters as it found them (the code location and the local instance
    enable event batching when they load, on purpose)."""
    probe = """
import json, os, warnings
import dagster
env, filters = dict(os.environ), list(warnings.filters)
import media_assets.assets, media_assets.ingest, media_assets.stale, resources, sensors
# Other libraries add filters for their own warnings on import; ours would be Dagster's
# categories, or a blanket filter of a built-in category.
mine = ("dagster", "dagster_shared", "media_assets", "resources", "sensors")
ours = [
    str(f) for f in warnings.filters if f not in filters
    and (f[2].__module__.split(".")[0] in mine or (f[2].__module__ == "builtins" and f[1] is None))
]
print(json.dumps({"set": sorted(k for k in os.environ if os.environ[k] != env.get(k)),
    "filters": ours}))
"""
    env = {k: v for k, v in os.environ.items() if k not in {compat.EVENT_BATCH_SIZE_VAR}}
    env = {k: v for k, v in env.items() if k not in UNSTRUCTURED_VARS}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    changed = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(changed["set"]) <= UNSTRUCTURED_VARS, changed
    assert changed["filters"] == [], changed


TINY_LOCATION = """
import dagster as dg


@dg.sensor(minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def quiet_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    return dg.SkipReason("nothing new")


defs = dg.Definitions(sensors=[quiet_sensor])
"""


def test_the_sensor_daemons_loop_runs_in_this_process_and_records_its_ticks(
    tmp_path: Path,
) -> None:
    (tmp_path / "tiny_location.py").write_text(TINY_LOCATION)
    (tmp_path / "home").mkdir()
    with (
        capability("daemon_workspace / run_sensor_iteration / sensor_ticks / TickStatus"),
        dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance,
        compat.daemon_workspace(instance, "tiny_location", str(tmp_path), "tiny") as workspace,
    ):
        assert compat.sensor_ticks(instance, "quiet_sensor") == []
        compat.run_sensor_iteration(workspace, logging.getLogger("test-daemon"))
        (tick,) = compat.sensor_ticks(instance, "quiet_sensor")
        assert tick.status == compat.TickStatus.SKIPPED
        assert tick.skip_reason == "nothing new"


def test_postgres_event_log_writes_a_runs_planned_events_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from media_assets.postgres_events import BatchingPostgresEventLogStorage

    monkeypatch.setenv(compat.EVENT_BATCH_SIZE_VAR, compat.EVENT_BATCH_SIZE)
    written: list[int] = []
    original = compat.write_events_together

    def spy(storage: object, events: list) -> None:
        written.append(len(events))
        original(storage, events)  # type: ignore[arg-type]

    monkeypatch.setattr("media_assets.postgres_events.write_events_together", spy)
    with running_postgres() as server:
        events = {
            "module": "media_assets.postgres_events",
            "class": "BatchingPostgresEventLogStorage",
            "config": {
                "postgres_db": {
                    "hostname": "127.0.0.1",
                    "port": server.port,
                    "db_name": "postgres",
                    "username": "postgres",
                    "password": "",
                    # As deploy/dagster.yaml: dagster-postgres ships psycopg2, not psycopg 3.
                    "scheme": "postgresql+psycopg2",
                }
            },
        }
        (tmp_path / "home").mkdir()
        with (
            capability("write_events_together (BatchingPostgresEventLogStorage)"),
            dg.instance_for_test(
                temp_dir=str(tmp_path / "home"), overrides={"event_log_storage": events}
            ) as inst,
        ):
            assert isinstance(inst.event_log_storage, BatchingPostgresEventLogStorage)
            inst.add_dynamic_partitions(things.name, KEYS)
            job = dg.Definitions(assets=[up]).resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(
                instance=inst, tags=compat.partition_range_tags(KEYS[0], KEYS[-1])
            )
            assert result.success
            assert written == [len(KEYS)]  # every partition's plan in one write
            planned = inst.get_records_for_run(
                result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ).records
            assert sorted(r.event_log_entry.dagster_event.partition for r in planned) == KEYS
            assert inst.get_materialized_partitions(up.key) == set(KEYS)
