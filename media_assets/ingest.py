"""Ingest a manifest through Dagster: register URLs, add partitions, run batched jobs.

The same planning the sensor does, for a person at a terminal (and for `make run`): partitions that
are not materialized yet are grouped into contiguous ranges and executed against a persistent
Dagster instance, so `dagster dev` afterwards shows them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from media_assets import deadletters, registry
from media_assets.batching import (
    contiguous_batches,
    failed_in_run,
    range_tags,
)
from media_assets.manifest import Manifest, read_manifest
from media_assets.names import CHAINS, JOB_BY_KIND, REFRESH_TAG, Status
from media_assets.stale import stale_partitions
from partitions import PARTITIONS_BY_KIND
from resources import RunSettings, run_settings
from resources.io_manager import ArtifactStore
from resources.storage import ObjectStore


def quiet_logs(settings: RunSettings) -> dict[str, object]:
    """Run config for ingest's runs: the configured logger (terminal lines or JSON) at the
    configured level, INFO by default (progress, not every engine event)."""
    return {"loggers": {settings.log_format: {"config": {"log_level": settings.log_level}}}}


QUIET_LOGS = quiet_logs(run_settings())


@dataclass
class IngestReport:
    manifest: Manifest
    runs: list[tuple[str, bool]] = field(default_factory=list)  # (run id, success)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)  # kind -> status counts
    skipped_kinds: Counter[str] = field(default_factory=Counter)
    failed_partitions: set[str] = field(default_factory=set)  # in the dead letters
    stale_partitions: set[str] = field(default_factory=set)  # run again because stale
    unexplained_runs: list[str] = field(default_factory=list)  # failed, no URL to blame

    @property
    def ok(self) -> bool:
        """Every run either succeeded or failed only because of URLs now in the dead letters."""
        return not self.unexplained_runs


def url_statuses(store: ObjectStore, kind: str, keys: Sequence[str]) -> dict[str, str]:
    """Each URL's outcome: the first stage's status unless it was ok, then the last stage's; a
    URL whose failure left no artifact is ``failed`` when it has a dead letter."""
    first = ArtifactStore(store, dg.AssetKey(CHAINS[kind][0]), {})
    last = ArtifactStore(store, dg.AssetKey(CHAINS[kind][-1]), {})
    statuses = {}
    for key in keys:
        head = first.read_or_none(key)
        tail = last.read_or_none(key)
        if head is None:
            statuses[key] = Status.FAILED if deadletters.for_partition(store, key) else "missing"
        elif head.get("status") != Status.OK:
            statuses[key] = str(head["status"])
        else:
            if tail:
                statuses[key] = (
                    "indexed" if tail.get("status") == Status.OK else str(tail["status"])
                )
            else:
                statuses[key] = (
                    Status.FAILED if deadletters.for_partition(store, key) else "missing"
                )
    return statuses


def run_batches(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    store: ObjectStore,
    keys: Sequence[str],
    report: IngestReport,
    *,
    batch_size: int,
    refresh: bool,
) -> None:
    """Execute ``keys`` in batched runs of contiguous partitions.

    Dagster fails a step's whole range (dagster-io/dagster#17836), so after a run with failed URLs
    the good ones run again without them, reusing what they already checkpointed (renders are
    not fetched again); the failed ones stay in the dead letters, missing from the catalog.
    """
    ordered = instance.get_dynamic_partitions(job.partitions_def.name)  # type: ignore[union-attr]
    queue = [(batch, refresh) for batch in contiguous_batches(ordered, set(keys), batch_size)]
    while queue:
        batch, fetch_again = queue.pop(0)
        tags = {**range_tags(batch), **({REFRESH_TAG: "true"} if fetch_again else {})}
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_LOGS, tags=tags
        )
        report.runs.append((result.run_id, result.success))
        if result.success:
            continue
        failed = failed_in_run(store, result.run_id, batch)
        if not failed:
            report.unexplained_runs.append(result.run_id)
            continue
        report.failed_partitions |= failed
        queue += [(b, False) for b in contiguous_batches(ordered, set(batch) - failed, batch_size)]


def ingest(
    manifest: Manifest | str | Path,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    batch_size: int = 50,
    force: bool = False,
    refresh: bool = False,
    stale: bool = False,
) -> IngestReport:
    """Ingest every manifest URL not yet materialized (nor failed for good: see
    ``deadletters.settled``).

    ``force`` runs materialized URLs again (stages whose inputs are unchanged reuse their
    artifacts and do no work); ``refresh`` also fetches the pages again, and implies ``force``;
    ``stale`` runs again the materialized URLs the UI shows stale (``media_assets.stale``).
    ``manifest`` is a file (read by ``read_manifest``, which raises ``ManifestError``) or one
    already read.
    """
    force = force or refresh
    if not isinstance(manifest, Manifest):
        manifest, _ = read_manifest(manifest)
    store: ObjectStore = defs.resources["object_store"]  # type: ignore[assignment]
    registry.register(store, manifest.entries)
    report = IngestReport(manifest)
    for kind, partitions_def in PARTITIONS_BY_KIND.items():
        entries = manifest.by_kind(kind)
        if not entries:
            continue
        if kind not in JOB_BY_KIND:
            report.skipped_kinds[kind] = len(entries)
            continue
        keys = [e.key for e in entries]
        registry.add_partitions(instance, partitions_def.name, keys)
        done = (
            set()
            if force
            else (
                instance.get_materialized_partitions(dg.AssetKey(CHAINS[kind][-1]))
                | deadletters.settled(store, keys)
            )
        )
        if stale and (materialized := done & set(keys)):
            outdated = stale_partitions(defs.resolve_asset_graph(), instance, kind, materialized)
            report.stale_partitions.update(outdated)
            done -= set(outdated)
        run_batches(
            defs.resolve_job_def(JOB_BY_KIND[kind]),
            instance,
            store,
            [k for k in keys if k not in done],
            report,
            batch_size=batch_size,
            refresh=refresh,
        )
        report.statuses[kind] = Counter(url_statuses(store, kind, keys).values())
    return report


def retry_dead_letters(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    asset: str | None = None,
    reason: str | None = None,
    batch_size: int = 50,
) -> tuple[list[deadletters.DeadLetter], IngestReport]:
    """Run the dead-lettered URLs again (fetching them again), optionally only those that failed
    at ``asset`` or whose error class or message contains ``reason``."""
    store: ObjectStore = defs.resources["object_store"]  # type: ignore[assignment]
    letters = [
        d
        for d in deadletters.list_all(store)
        if (asset is None or d.asset == asset)
        and (reason is None or reason in d.error_class or reason in d.message)
    ]
    report = IngestReport(Manifest([], []))
    by_kind: dict[str, list[str]] = {}
    for letter in letters:
        kind = registry.lookup(store, letter.partition_key).kind
        by_kind.setdefault(kind, []).append(letter.partition_key)
    for kind, keys in by_kind.items():
        run_batches(
            defs.resolve_job_def(JOB_BY_KIND[kind]),
            instance,
            store,
            keys,
            report,
            batch_size=batch_size,
            refresh=True,
        )
        report.statuses[kind] = Counter(url_statuses(store, kind, keys).values())
    return letters, report
