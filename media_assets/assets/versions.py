"""Data versions per partition, from each artifact's content hash, for batched steps.

The UI's per-partition stale status compares, for each upstream partition, the data version of
its newest materialization with the one the downstream partition was made from. So a partition's
data version must change exactly when its artifact's content does. Dagster 1.13 records one data
version for every partition a step materializes (``Output(data_version=...)`` is per step;
dagster-io/dagster#34013), while a batched step covers up to 50 URLs whose contents change
independently.

So a partition keeps the version it has while its content hash (``content_sha256`` in its
materialization's metadata) is unchanged, and the partitions whose content changed in a step
share a new version: their content hash when one changed alone, else the hash of their
(partition, content hash) pairs. The step reports the version most of its partitions have; the
few that differ get one more materialization of their own right after it, with the same
provenance and their own version, as Dagster does for observable sources
(``DataVersionsByPartition``). A first ingest, or a batch whose contents did not change, needs none.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from media_assets.dagster_compat import (
    data_version_of,
    latest_storage_ids_by_partition,
    with_data_version,
)

CONTENT_KEY = "content_sha256"


@dataclass(frozen=True)
class Versions:
    by_partition: dict[str, str]

    @property
    def step(self) -> str:
        """The version most partitions have: the one the step's output records for all."""
        counts = Counter(self.by_partition.values())
        return max(counts, key=lambda version: (counts[version], version))

    def own(self) -> dict[str, str]:
        """Partitions whose version is not the step's: each needs a materialization of its own."""
        step = self.step
        return {p: v for p, v in self.by_partition.items() if v != step}


def assign(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, contents: Mapping[str, str]
) -> Versions:
    """Each partition's data version, given its content hash now (``contents``)."""
    recorded = _recorded(instance, asset_key, contents)
    kept = {
        p: recorded[p][0] for p, sha in contents.items() if p in recorded and recorded[p][1] == sha
    }
    changed = sorted(p for p in contents if p not in kept)
    if len(changed) == 1:
        new = contents[changed[0]]
    else:
        pairs = "".join(f"{p}:{contents[p]};" for p in changed)
        new = hashlib.sha256(pairs.encode()).hexdigest()
    return Versions({p: kept.get(p, new) for p in contents})


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, dg.AssetMaterialization]:
    """Each partition's newest materialization (of those that have one), in two queries."""
    storage_ids = latest_storage_ids_by_partition(instance, asset_key, partitions)
    if not storage_ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(storage_ids.values())),
        limit=len(storage_ids),
    ).records
    return {
        event.partition: event
        for record in records
        if (event := record.asset_materialization) is not None and event.partition is not None
    }


def _recorded(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Mapping[str, str]
) -> dict[str, tuple[str, str]]:
    """(data version, content hash) of each partition's newest materialization."""
    recorded = {}
    for partition, event in latest_materializations(instance, asset_key, partitions).items():
        version, content = data_version_of(event), event.metadata.get(CONTENT_KEY)
        # Materializations from before content hashes were recorded count as changed.
        if version and content is not None:
            recorded[partition] = (version, str(content.value))
    return recorded


def own_materializations(
    context: dg.AssetExecutionContext,
    versions: Versions,
    metadata: Mapping[str, Mapping[str, Any]],
) -> Iterator[dg.AssetMaterialization]:
    """One more materialization for each partition whose version is not the step's, to follow
    the step's output: the step's provenance (code version, input versions and pointers, which
    the stale status reads) with the partition's own version and metadata."""
    own = versions.own()
    if not own:
        return
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[next(iter(own))]),
        limit=1,
    ).records
    if not records or records[0].run_id != context.run.run_id:
        context.log.warning(
            f"{context.asset_key.to_user_string()}: the step's materializations were not found; "
            f"{len(own)} partition(s) keep the step's data version"
        )
        return
    tags = dict(records[0].asset_materialization.tags)  # type: ignore[union-attr]
    for partition, version in own.items():
        yield dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=partition,
            tags=with_data_version(tags, version),
            metadata=dict(metadata[partition]),
        )
