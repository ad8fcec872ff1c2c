"""Stale partitions, as the UI shows them, and a way to materialize just those.

A partition of a stage is stale when the stage's code version is not the one that made it, or an
upstream partition's data version (its content hash, ``media_assets/assets/versions.py``)
changed since it was made. ``media-assets ingest --stale`` runs those URLs again, and so does the
``stale_partitions_sensor`` from the UI (Preview tick result, then "Apply requests & commit tick
result"), whose
Materialize dialog offers missing and failed partitions but not stale ones. Running a URL again
reruns its chain, where every stage whose input is unchanged reuses its artifact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from media_assets.assets.versions import latest_materializations
from media_assets.batching import contiguous_batches, range_tags
from media_assets.dagster_compat import (
    AssetGraph,
    Provenance,
    StaleStatusReader,
    in_progress_statuses,
    latest_storage_ids_by_partition,
)
from media_assets.jobs import ingest_jobs
from media_assets.names import CHAINS, JOB_BY_KIND, STALE_TAG
from partitions import PARTITIONS_BY_KIND
from resources.fetch import ManifestSource


def stale_partitions(
    asset_graph: AssetGraph,
    instance: dg.DagsterInstance,
    kind: str,
    partitions: Iterable[str] | None = None,
) -> list[str]:
    """The partitions of ``kind`` (all, or those of ``partitions``) where some stage is stale,
    in partition order."""
    ordered = instance.get_dynamic_partitions(PARTITIONS_BY_KIND[kind].name)
    if partitions is not None:
        wanted = set(partitions)
        ordered = [p for p in ordered if p in wanted]
    stages = [dg.AssetKey(stage) for stage in CHAINS[kind]]
    suspects = _suspects(asset_graph, instance, stages, ordered)
    # The UI's own resolver decides; it costs several queries per stage and partition.
    reader = StaleStatusReader(instance, asset_graph)
    return [
        partition
        for partition in ordered
        if any(reader.is_stale(stage, partition) for stage in suspects.get(partition, ()))
    ]


def _suspects(
    asset_graph: AssetGraph,
    instance: dg.DagsterInstance,
    stages: list[dg.AssetKey],
    partitions: list[str],
) -> dict[str, list[dg.AssetKey]]:
    """The stages of each partition that may be stale, read from each stage's newest
    materializations (two queries a stage): made by another code version, or by inputs of which
    a newer materialization exists. The resolver asks several queries per stage and partition
    (about 13 ms here); asked only about these, a stale query over thousands of URLs fits a
    sensor's 60 s."""
    newest: dict[dg.AssetKey, Mapping[str, int]] = {}

    def newest_of(key: dg.AssetKey) -> Mapping[str, int]:
        if key not in newest:
            newest[key] = latest_storage_ids_by_partition(instance, key, partitions)
        return newest[key]

    suspects: dict[str, list[dg.AssetKey]] = {}
    for stage in stages:
        node = asset_graph.get(stage)
        for partition, event in latest_materializations(instance, stage, partitions).items():
            made = Provenance.of(event.tags, node.parent_keys)
            suspect = (
                made.code_version != node.code_version
                or not made.same_inputs  # a dependency added or removed
                or any(
                    storage_id is None or newest_of(parent).get(partition, 0) > storage_id
                    for parent, storage_id in made.inputs.items()
                )
            )
            if suspect:
                suspects.setdefault(partition, []).append(stage)
    return suspects


@dg.sensor(
    jobs=list(ingest_jobs.values()),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests runs for the partitions the UI shows stale (a stage's code version "
    "changed, or an upstream artifact's content did), batched like ingestion. Stopped by "
    "default: Preview tick result, then Apply requests; or start it to keep every URL fresh.",
)
def stale_partitions_sensor(
    context: dg.SensorEvaluationContext, manifest: ManifestSource
) -> dg.SensorResult:
    # Partitions stay stale until their runs finish: requesting them again would run them twice.
    busy = context.instance.get_runs(
        filters=dg.RunsFilter(tags={STALE_TAG: list(JOB_BY_KIND)}, statuses=in_progress_statuses()),
        limit=1,
    )
    if busy:
        return dg.SensorResult(skip_reason=f"stale runs still in flight ({busy[0].run_id})")
    asset_graph = context.repository_def.asset_graph  # type: ignore[union-attr]
    requests = []
    counts = []
    for kind, job_name in JOB_BY_KIND.items():
        ordered = context.instance.get_dynamic_partitions(PARTITIONS_BY_KIND[kind].name)
        stale = set(stale_partitions(asset_graph, context.instance, kind))
        if stale:
            counts.append(f"{len(stale)} {kind}")
        for batch in contiguous_batches(ordered, stale, manifest.batch_size):
            requests.append(
                dg.RunRequest(job_name=job_name, tags={**range_tags(batch), STALE_TAG: kind})
            )
    if not requests:
        return dg.SensorResult(skip_reason="no stale partitions")
    context.log.info(f"stale URLs: {', '.join(counts)} in {len(requests)} run(s)")
    return dg.SensorResult(run_requests=requests)
