"""The manifest sensor: new manifest entries become partitions and batched runs; entries that
left the manifest become a removal run.

An evaluation changes nothing but its cursor: partitions are added through the ``SensorResult``
(applied by the daemon only when the tick succeeds), URLs are registered by the run that first
needs them (``registry.resolve``), and sources are removed by a ``remove_sources`` run. A preview
("Preview tick result") or a failed tick therefore leaves no trace.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from media_assets.batching import range_tags
from media_assets.jobs import ingest_jobs
from media_assets.manifest import Manifest, ManifestError, read_manifest
from media_assets.names import JOB_BY_KIND
from media_assets.removal import removal_run_config, remove_sources_job
from partitions import PARTITIONS_BY_KIND
from resources.fetch import ManifestSource

# Seconds between evaluations of the sensors (manifest and batch failure); tests use a few.
SENSOR_INTERVAL_S = int(os.environ.get("MEDIA_ASSETS_SENSOR_INTERVAL_S", "30"))

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class ManifestCursor:
    """The manifest's SHA-256 at the last successful tick, and how many changes were planned.

    The generation goes into run keys: Dagster never launches a run key twice, and a URL that is
    removed and added back must run again.
    """

    sha256: str | None = None
    generation: int = 0

    @classmethod
    def parse(cls, cursor: str | None) -> ManifestCursor:
        if not cursor:
            return cls()
        if not cursor.startswith("{"):  # before the generation, the cursor was the bare digest
            return cls(sha256=cursor)
        data = json.loads(cursor)
        return cls(sha256=data["sha256"], generation=int(data["generation"]))

    def next(self, sha256: str) -> ManifestCursor:
        return ManifestCursor(sha256=sha256, generation=self.generation + 1)

    def serialize(self) -> str:
        return json.dumps({"sha256": self.sha256, "generation": self.generation})

    @property
    def run_key_prefix(self) -> str:
        return f"{(self.sha256 or '')[:12]}.{self.generation}"


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one: "1 new URL", "3 new URLs"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def batched_run_requests(
    job_name: str, keys: Sequence[str], batch_size: int, run_key_prefix: str
) -> list[dg.RunRequest]:
    """One run per ``batch_size`` consecutive new partitions, as a partition range.

    New dynamic partitions are appended in order, so consecutive keys form a contiguous range.
    """
    batches = [keys[start : start + batch_size] for start in range(0, len(keys), batch_size)]
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{job_name}:{b[0]}:{b[-1]}:{len(b)}",
            job_name=job_name,
            tags=range_tags(b),
        )
        for b in batches
    ]


@dataclass
class IngestPlan:
    added: dict[str, list[str]] = field(default_factory=dict)  # kind -> new partition keys
    removed: dict[str, list[str]] = field(default_factory=dict)  # kind -> keys to remove
    ingest_runs: list[dg.RunRequest] = field(default_factory=list)
    removal_run: dg.RunRequest | None = None
    bad_lines: int = 0

    @property
    def run_requests(self) -> list[dg.RunRequest]:
        return [*self.ingest_runs, *([self.removal_run] if self.removal_run else [])]

    @property
    def partition_requests(self) -> list[dg.AddDynamicPartitionsRequest]:
        """Only additions: a removed source keeps its partition until its removal run has
        deleted its rows and artifacts, so a failed removal is still visible and can re-run."""
        return [PARTITIONS_BY_KIND[k].build_add_request(keys) for k, keys in self.added.items()]

    def summary(self) -> str:
        """What the tick does, in a line: "3 new URLs in 1 run, 1 removed"."""
        new = sum(map(len, self.added.values()))
        removed = sum(map(len, self.removed.values()))
        runs = counted(len(self.ingest_runs), "run")
        parts = [f"{counted(new, 'new URL')} in {runs}"] if new else []
        parts += [f"{removed} removed"] if removed else []
        text = ", ".join(parts) or "no new or removed URLs"
        skipped = f" ({counted(self.bad_lines, 'bad line')} skipped)" if self.bad_lines else ""
        return text + skipped


def plan_ingest(
    manifest: Manifest,
    existing: dict[str, set[str]],
    batch_size: int,
    run_key_prefix: str = "",
) -> IngestPlan:
    """New entries become partitions and batched runs; partitions whose URL left the manifest
    go to one removal run (the manifest is the source of truth for what is indexed)."""
    plan = IngestPlan(bad_lines=sum(p.severity == "error" for p in manifest.problems))
    for kind, job_name in JOB_BY_KIND.items():
        seen = existing.get(kind, set())
        wanted = [e.key for e in manifest.by_kind(kind)]
        new = [key for key in wanted if key not in seen]
        gone = sorted(seen - set(wanted))
        if gone:
            plan.removed[kind] = gone
        if new:
            plan.added[kind] = new
            plan.ingest_runs += batched_run_requests(job_name, new, batch_size, run_key_prefix)
    if plan.removed:
        plan.removal_run = dg.RunRequest(
            run_key=f"{run_key_prefix}:{remove_sources_job.name}",
            job_name=remove_sources_job.name,
            run_config=removal_run_config(plan.removed),
            tags={"media_assets/urls": str(sum(map(len, plan.removed.values())))},
        )
    return plan


@dg.sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[*ingest_jobs.values(), remove_sources_job],
    description="Turns new manifest entries into URL partitions and batched runs, and entries "
    "that left the manifest into a removal run.",
)
def manifest_sensor(
    context: dg.SensorEvaluationContext, manifest: ManifestSource
) -> dg.SensorResult | dg.SkipReason:
    if not manifest.path:
        return dg.SkipReason(
            "no manifest configured: set MEDIA_ASSETS_MANIFEST to a .jsonl or .csv"
        )
    try:
        parsed, digest = read_manifest(manifest.path)
    except ManifestError as exc:
        return dg.SkipReason(str(exc))
    cursor = ManifestCursor.parse(context.cursor)
    if cursor.sha256 == digest:
        return dg.SkipReason("manifest unchanged")
    # Partitions under removal still exist: planning now would miss a URL added back meanwhile.
    removing = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=remove_sources_job.name, statuses=IN_FLIGHT), limit=1
    )
    if removing:
        return dg.SkipReason(f"manifest changed; waiting for removal run {removing[0].run_id}")
    for problem in parsed.problems:
        verdict = "skipped" if problem.severity == "error" else "warning:"
        context.log.warning(f"{verdict} {manifest.path} {problem}")
    existing = {
        kind: set(context.instance.get_dynamic_partitions(p.name))
        for kind, p in PARTITIONS_BY_KIND.items()
    }
    following = cursor.next(digest)
    plan = plan_ingest(parsed, existing, manifest.batch_size, following.run_key_prefix)
    summary = plan.summary()
    entries = len(parsed.entries)
    context.log.info(f"{entries} {'entry' if entries == 1 else 'entries'}: {summary}")
    if not plan.run_requests:
        return dg.SensorResult(skip_reason=summary, cursor=following.serialize())
    return dg.SensorResult(
        run_requests=plan.run_requests,
        dynamic_partitions_requests=plan.partition_requests,
        cursor=following.serialize(),
    )


__all__ = [
    "SENSOR_INTERVAL_S",
    "IngestPlan",
    "ManifestCursor",
    "batched_run_requests",
    "counted",
    "manifest_sensor",
    "plan_ingest",
]
