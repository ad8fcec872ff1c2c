"""The manifest sensor: new manifest entries become partitions and batched runs."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from media_assets import registry
from media_assets.assets import video_assets, web_assets
from media_assets.batching import JOB_BY_KIND, range_tags
from media_assets.manifest import Manifest, read_manifest
from media_assets.removal import remove_sources
from partitions import PARTITIONS_BY_KIND
from resources.fetch import ManifestSource
from resources.index import VectorIndex
from resources.storage import ObjectStore


def batched_run_requests(
    job_name: str, keys: Sequence[str], batch_size: int
) -> list[dg.RunRequest]:
    """One run per ``batch_size`` consecutive new partitions, as a partition range.

    New dynamic partitions are appended in order, so consecutive keys form a contiguous range.
    """
    batches = [keys[start : start + batch_size] for start in range(0, len(keys), batch_size)]
    return [
        dg.RunRequest(
            run_key=f"{job_name}:{b[0]}:{b[-1]}:{len(b)}", job_name=job_name, tags=range_tags(b)
        )
        for b in batches
    ]


@dataclass
class IngestPlan:
    partition_requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest]
    run_requests: list[dg.RunRequest]
    removed: list[str]


def plan_ingest(manifest: Manifest, existing: dict[str, set[str]], batch_size: int) -> IngestPlan:
    """New entries become partitions and batched runs; partitions whose URL left the manifest
    are removed (the manifest is the source of truth for what is indexed)."""
    plan = IngestPlan([], [], [])
    for kind, job_name in JOB_BY_KIND.items():
        partitions_def = PARTITIONS_BY_KIND[kind]
        seen = existing.get(kind, set())
        wanted = [e.key for e in manifest.by_kind(kind)]
        new = [key for key in wanted if key not in seen]
        gone = sorted(seen - set(wanted))
        if gone:
            plan.partition_requests.append(partitions_def.build_delete_request(gone))
            plan.removed += gone
        if new:
            plan.partition_requests.append(partitions_def.build_add_request(new))
            plan.run_requests += batched_run_requests(job_name, new, batch_size)
    return plan


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns new manifest entries into URL partitions and batched runs.",
)
def manifest_sensor(
    context: dg.SensorEvaluationContext,
    manifest: ManifestSource,
    object_store: ObjectStore,
    vector_index: VectorIndex,
) -> dg.SensorResult | dg.SkipReason:
    if not manifest.path:
        return dg.SkipReason(
            "no manifest configured: set MEDIA_ASSETS_MANIFEST to a .jsonl or .csv"
        )
    if not Path(manifest.path).is_file():
        return dg.SkipReason(f"manifest {manifest.path} does not exist")
    parsed, digest = read_manifest(manifest.path)
    if context.cursor == digest:
        return dg.SkipReason("manifest unchanged since the last tick")
    for problem in parsed.problems:
        context.log.warning(f"{manifest.path} {problem}")
    registry.register(object_store, parsed.entries)
    existing = {
        kind: set(context.instance.get_dynamic_partitions(p.name))
        for kind, p in PARTITIONS_BY_KIND.items()
    }
    plan = plan_ingest(parsed, existing, manifest.batch_size)
    remove_sources(object_store, vector_index, plan.removed, [*web_assets, *video_assets])
    context.log.info(
        f"{len(parsed.entries)} entries, {len(parsed.problems)} bad lines, "
        f"{len(plan.run_requests)} runs requested, {len(plan.removed)} URLs removed"
    )
    return dg.SensorResult(
        run_requests=plan.run_requests,
        dynamic_partitions_requests=plan.partition_requests,
        cursor=digest,
    )


__all__ = ["batched_run_requests", "manifest_sensor", "plan_ingest", "read_manifest"]
