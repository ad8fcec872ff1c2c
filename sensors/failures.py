"""The batch-failure sensor: when a batched run fails because of some of its URLs, the other
URLs of the batch are requested again without them.

Dagster fails a step's whole partition range (dagster-io/dagster#17836); the failed URLs are in
the dead letters, the good ones were checkpointed, so their new run mostly reuses artifacts.
"""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from media_assets.batching import contiguous_batches, failed_in_run, range_tags
from media_assets.jobs import ingest_jobs
from resources.fetch import ManifestSource
from resources.storage import ObjectStore


def partitions_of_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, partitions_def_name: str
) -> tuple[list[str], list[str]]:
    """(all partitions of the set in order, the run's range of them)."""
    ordered = instance.get_dynamic_partitions(partitions_def_name)
    start = run.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    single = run.tags.get("dagster/partition")
    if start in ordered and end in ordered:
        return ordered, ordered[ordered.index(start) : ordered.index(end) + 1]
    return ordered, [single] if single else []


def split_failed_run(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    run: dg.DagsterRun,
    partitions_def_name: str,
    batch_size: int,
) -> list[list[str]]:
    """Batches of the run's URLs that did not fail; empty when no URL is to blame."""
    ordered, keys = partitions_of_run(instance, run, partitions_def_name)
    failed = failed_in_run(store, run.run_id, keys)
    if not failed:
        return []
    return contiguous_batches(ordered, set(keys) - failed, batch_size)


@dg.run_failure_sensor(
    monitored_jobs=list(ingest_jobs.values()),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-requests the good URLs of a batch that failed because of other URLs.",
)
def batch_failure_sensor(
    context: dg.RunFailureSensorContext, object_store: ObjectStore, manifest: ManifestSource
) -> list[dg.RunRequest]:
    run = context.dagster_run
    job = ingest_jobs.get(run.job_name)
    if job is None or job.partitions_def is None:
        return []
    batches = split_failed_run(
        context.instance, object_store, run, job.partitions_def.name, manifest.batch_size
    )  # type: ignore[attr-defined]
    context.log.info(f"run {run.run_id}: {sum(map(len, batches))} good URLs requested again")
    return [
        dg.RunRequest(run_key=f"{run.run_id}:{b[0]}", job_name=run.job_name, tags=range_tags(b))
        for b in batches
    ]
