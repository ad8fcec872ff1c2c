"""Forgetting a source: what happens when a URL leaves the manifest.

The manifest sensor only requests it: the ``remove_sources`` job does it, so every removal is a
run in the history (its keys in the run config) and a failed one can be re-executed.
"""

from collections.abc import Mapping, Sequence

import dagster as dg
from pydantic import Field

from media_assets import deadletters, registry
from media_assets.assets import ASSETS_BY_KIND
from media_assets.names import REMOVE_SOURCES_JOB
from partitions import PARTITIONS_BY_KIND
from resources.index import VectorIndex
from resources.io_manager import ArtifactStore
from resources.moments_index import MomentsIndex
from resources.storage import ObjectStore


def remove_sources(
    store: ObjectStore,
    indexes: Sequence[VectorIndex | MomentsIndex],
    keys: Sequence[str],
    assets: Sequence[dg.AssetsDefinition],
) -> None:
    """Delete the sources' rows in every index (chunks, moments), artifacts, dead letters and
    registry entries, so that a URL added back later is ingested afresh."""
    if not keys:
        return
    for index in indexes:
        index.delete_sources(keys)
    for assets_def in assets:
        for asset_key in assets_def.keys:
            artifacts = ArtifactStore(store, asset_key, assets_def.metadata_by_key[asset_key])
            for key in keys:
                artifacts.delete(key)
    deadletters.clear(store, keys)
    for key in keys:
        registry.forget(store, key)


class RemoveSourcesConfig(dg.Config):
    keys: dict[str, list[str]] = Field(description="Partition keys to remove, by source kind.")


def removal_run_config(keys: Mapping[str, Sequence[str]]) -> dict[str, object]:
    """Run config of a ``remove_sources`` run for ``keys`` (kind -> partition keys)."""
    config = {"keys": {kind: list(k) for kind, k in keys.items()}}
    return {"ops": {"forget_sources": {"config": config}}}


@dg.op
def forget_sources(
    context: dg.OpExecutionContext,
    config: RemoveSourcesConfig,
    object_store: ObjectStore,
    vector_index: VectorIndex,
    moments_index: MomentsIndex,
) -> None:
    """Remove each source's index rows, artifacts, dead letters, registry entry and partition."""
    for kind, keys in config.keys.items():
        for key in keys:
            try:
                context.log.info(f"removing {kind} {key}: {registry.lookup(object_store, key).url}")
            except registry.UnknownPartitionError:
                context.log.info(f"removing {kind} {key} (no registered URL)")
        indexes = [vector_index, moments_index] if kind == "video" else [vector_index]
        remove_sources(object_store, indexes, keys, ASSETS_BY_KIND[kind])
        # Last, so that a removal that failed half-way leaves the partition to show it and to
        # be planned again.
        partitions_def = PARTITIONS_BY_KIND[kind]
        for key in keys:
            if context.instance.has_dynamic_partition(partitions_def.name, key):
                context.instance.delete_dynamic_partition(partitions_def.name, key)


@dg.job(
    name=REMOVE_SOURCES_JOB,
    description="Forget sources whose URLs left the manifest: index rows, artifacts, dead "
    "letters, registry entries and partitions. Launched by the manifest sensor.",
)
def remove_sources_job() -> None:
    forget_sources()
