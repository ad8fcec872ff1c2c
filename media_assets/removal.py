"""Forgetting a source: what happens when a URL leaves the manifest."""

from collections.abc import Sequence

import dagster as dg

from media_assets import deadletters, registry
from resources.index import VectorIndex
from resources.io_manager import ArtifactStore
from resources.storage import ObjectStore


def remove_sources(
    store: ObjectStore,
    index: VectorIndex,
    keys: Sequence[str],
    assets: Sequence[dg.AssetsDefinition],
) -> None:
    """Delete the sources' index rows, artifacts, dead letters and registry entries, so that a
    URL added back later is ingested afresh."""
    if not keys:
        return
    index.delete_sources(keys)
    for assets_def in assets:
        for asset_key in assets_def.keys:
            artifacts = ArtifactStore(store, asset_key, assets_def.metadata_by_key[asset_key])
            for key in keys:
                artifacts.delete(key)
    deadletters.clear(store, keys)
    for key in keys:
        registry.forget(store, key)
