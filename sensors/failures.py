"""The batch-failure sensor: when a batched run fails because of some of its URLs, the other
URLs of the batch are requested again without them.

Dagster fails a step's whole partition range (dagster-io/dagster#17836); the failed URLs are in
the dead letters, the good ones were checkpointed, so their new run mostly reuses artifacts.
It watches every failed run of the instance: the sensor's own runs, `media-assets ingest`'s
(executed in its process, so they belong to no code location) and UI backfills (runs of the
implicit ``__ASSET_JOB``), and tells them apart by their job or their assets.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from media_assets.assets import ASSETS_BY_KIND
from media_assets.batching import contiguous_batches, failed_in_run, range_tags
from media_assets.dagster_compat import partition_of_run, partition_range_of_run
from media_assets.jobs import ingest_jobs
from media_assets.names import JOB_BY_KIND, RETRY_OF_TAG
from partitions import PARTITIONS_BY_KIND
from resources.fetch import ManifestSource
from resources.storage import ObjectStore
from sensors.manifest import SENSOR_INTERVAL_S, counted


def kind_of_run(run: dg.DagsterRun) -> str | None:
    """The source kind whose URL partitions ``run`` worked on: its ingest job's, or, for any
    other job (a UI backfill), the kind all of its selected assets belong to; None otherwise."""
    for kind, job_name in JOB_BY_KIND.items():
        if run.job_name == job_name:
            return kind
    if run.asset_selection:
        for kind, assets in ASSETS_BY_KIND.items():
            if run.asset_selection <= {key for a in assets for key in a.keys}:
                return kind
    return None


def partitions_of_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun, partitions_def_name: str
) -> tuple[list[str], list[str]]:
    """(all partitions of the set in order, the run's range of them)."""
    ordered = instance.get_dynamic_partitions(partitions_def_name)
    start, end = partition_range_of_run(run.tags) or (None, None)
    single = partition_of_run(run.tags)
    if start in ordered and end in ordered:
        return ordered, ordered[ordered.index(start) : ordered.index(end) + 1]
    return ordered, [single] if single else []


@dataclass
class RetryPlan:
    run: dg.DagsterRun
    kind: str | None
    failed: set[str]
    batches: list[list[str]]

    def run_requests(self) -> list[dg.RunRequest]:
        """The good URLs again, through the kind's ingest job, limited to the assets the failed
        run had selected (a backfill may have asked for some stages only)."""
        if self.kind is None:
            return []
        selection = sorted(self.run.asset_selection) if self.run.asset_selection else None
        return [
            dg.RunRequest(
                run_key=f"{self.run.run_id}:{batch[0]}",
                job_name=JOB_BY_KIND[self.kind],
                asset_selection=selection,
                tags={**range_tags(batch), RETRY_OF_TAG: self.run.run_id},
            )
            for batch in self.batches
        ]

    def summary(self) -> str:
        what = f"run {self.run.run_id} ({self.run.job_name})"
        if self.kind is None:
            return f"{what} did not ingest URL partitions: nothing to request again"
        if not self.failed:
            return f"{what} failed with no URL in the dead letters: not requested again"
        good = sum(map(len, self.batches))
        return (
            f"{what}: {counted(len(self.failed), 'failed URL')} dead-lettered, "
            f"{counted(good, 'good URL')} requested again in {counted(len(self.batches), 'run')}"
        )


def plan_retry(
    instance: dg.DagsterInstance, store: ObjectStore, run: dg.DagsterRun, batch_size: int
) -> RetryPlan:
    """Batches of the failed run's URLs that did not fail; none when no URL is to blame."""
    kind = kind_of_run(run)
    if kind is None:
        return RetryPlan(run, None, set(), [])
    ordered, keys = partitions_of_run(instance, run, PARTITIONS_BY_KIND[kind].name)
    failed = failed_in_run(store, run.run_id, keys)
    if not failed:
        return RetryPlan(run, kind, failed, [])
    return RetryPlan(run, kind, failed, contiguous_batches(ordered, set(keys) - failed, batch_size))


@dg.run_failure_sensor(
    # ingest's runs (execute_in_process) carry no code location: only this sees them.
    monitor_all_code_locations=True,
    request_jobs=list(ingest_jobs.values()),
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-requests the good URLs of a batch (sensor run, `media-assets ingest` or UI "
    "backfill) that failed because of other URLs.",
)
def batch_failure_sensor(
    context: dg.RunFailureSensorContext, object_store: ObjectStore, manifest: ManifestSource
) -> list[dg.RunRequest] | dg.SkipReason:
    plan = plan_retry(context.instance, object_store, context.dagster_run, manifest.batch_size)
    requests = plan.run_requests()
    if not requests:
        return dg.SkipReason(plan.summary())
    context.log.info(plan.summary())
    return requests
