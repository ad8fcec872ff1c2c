"""The local instance's event log writes a batched run's planned and materialized partition events
in one go each, and every query the UI and the ingest command make still sees each partition."""

from pathlib import Path

import dagster as dg
import pytest

from media_assets.instance import local_instance_config
from resources.sqlite_events import BatchingSqliteEventLogStorage

parts = dg.DynamicPartitionsDefinition(name="things")


@dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
def thing(context: dg.AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.add_asset_metadata({"which": key}, partition_key=key)


def test_a_batched_run_plans_and_stores_every_partition_in_one_write_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    batches: list[int] = []
    original = BatchingSqliteEventLogStorage.store_event_batch

    def spy(self: BatchingSqliteEventLogStorage, events: list) -> None:
        batches.append(len(events))
        original(self, events)

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", spy)
    home = tmp_path / "home"
    home.mkdir()
    keys = [f"p{i}" for i in range(6)]
    with dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst:
        assert isinstance(inst.event_log_storage, BatchingSqliteEventLogStorage)
        inst.add_dynamic_partitions("things", keys)
        job = dg.Definitions(assets=[thing]).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            instance=inst,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert result.success
        assert batches == [6, 6]  # one planned event per partition, then one materialization
        planned = inst.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        assert sorted(r.event_log_entry.dagster_event.partition for r in planned) == keys
        assert inst.get_materialized_partitions(dg.AssetKey("thing")) == set(keys)
        records = inst.fetch_materializations(dg.AssetKey("thing"), limit=100).records
        by_partition = {
            r.asset_materialization.partition: r.asset_materialization.metadata["which"].value
            for r in records
        }
        assert by_partition == {k: k for k in keys}
        latest = inst.get_latest_materialization_event(dg.AssetKey("thing"))
        assert latest is not None and latest.run_id == result.run_id
        # the run's own event log has them too (the UI's run view reads it)
        logged = [e.dagster_event_type for e in inst.all_logs(result.run_id) if e.is_dagster_event]
        assert logged.count(dg.DagsterEventType.ASSET_MATERIALIZATION) == 6


def test_runs_have_a_time_limit_the_daemon_enforces(tmp_path: Path) -> None:
    from media_assets.batching import VIDEO_RUN_LIMIT_S, WEB_RUN_LIMIT_S
    from media_assets.definitions import build_definitions
    from media_assets.names import MAX_RUNTIME_TAG

    defs = build_definitions({"MEDIA_ASSETS_DATA": str(tmp_path / "data")})
    assert defs.get_job_def("web_ingest").tags[MAX_RUNTIME_TAG] == str(WEB_RUN_LIMIT_S)
    assert defs.get_job_def("video_ingest").tags[MAX_RUNTIME_TAG] == str(VIDEO_RUN_LIMIT_S)
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst:
        assert inst.run_monitoring_enabled
        assert inst.run_monitoring_max_runtime_seconds == VIDEO_RUN_LIMIT_S
