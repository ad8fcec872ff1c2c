"""Partition key -> source URL, kept in the object store beside the artifacts.

Dagster's dynamic partitions hold only keys (hashes); this is the lookup from a key back to the
URL, kind and tags of the manifest entry that made it. `media-assets ingest` registers its
manifest before it runs; a partition the manifest sensor added is registered by the run that
first resolves it, from the watched manifest (the sensor's evaluation writes nothing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from media_assets.manifest import ManifestEntry, ManifestError, read_manifest
from resources.storage import ObjectStore

PREFIX = "_registry"
# The manifest the sensor watches (resources' ManifestSource reads the same variable).
MANIFEST_ENV = "MEDIA_ASSETS_MANIFEST"


@dataclass(frozen=True)
class Source:
    key: str
    url: str
    kind: str
    tags: dict[str, str]


class UnknownPartitionError(KeyError):
    def __str__(self) -> str:
        return (
            f"partition {self.args[0]!r} has no registered URL: add its URL to the manifest "
            f"that {MANIFEST_ENV} names, or run `media-assets ingest`"
        )


def _key(partition: str) -> str:
    return f"{PREFIX}/{partition}.json"


def register(store: ObjectStore, entries: Iterable[ManifestEntry]) -> int:
    """Record each entry's URL under its key; returns how many were new or changed."""
    written = 0
    for entry in entries:
        record = json.dumps(entry.as_record(), sort_keys=True).encode()
        key = _key(entry.key)
        if store.exists(key) and store.get(key) == record:
            continue
        store.put(key, record)
        written += 1
    return written


def lookup(store: ObjectStore, partition: str) -> Source:
    try:
        record = json.loads(store.get(_key(partition)))
    except FileNotFoundError:
        raise UnknownPartitionError(partition) from None
    return Source(
        key=partition, url=record["url"], kind=record["kind"], tags=record.get("tags", {})
    )


def register_from_manifest(store: ObjectStore, partitions: Iterable[str]) -> dict[str, Source]:
    """Register the entries of the watched manifest (``MEDIA_ASSETS_MANIFEST``) whose keys are
    among ``partitions``; returns their sources."""
    wanted = set(partitions)
    path = os.environ.get(MANIFEST_ENV)
    if not wanted or not path:
        return {}
    try:
        manifest, _ = read_manifest(path)
    except ManifestError:
        return {}  # the keys stay unknown and fail with UnknownPartitionError's advice
    entries = [e for e in manifest.entries if e.key in wanted]
    register(store, entries)
    return {e.key: Source(key=e.key, url=e.url, kind=e.kind, tags=e.tags) for e in entries}


def resolve(
    store: ObjectStore,
    partitions: Sequence[str],
) -> tuple[dict[str, Source], dict[str, dict[str, object]]]:
    """Sources of the partitions that have one (registered now from the watched manifest when
    they were not yet), and a failed record for each that has none, so one unknown key fails
    alone instead of failing its batch."""
    found: dict[str, Source] = {}
    unknown: list[str] = []
    for partition in partitions:
        try:
            found[partition] = lookup(store, partition)
        except UnknownPartitionError:
            unknown.append(partition)
    found |= register_from_manifest(store, unknown)
    missing: dict[str, dict[str, object]] = {
        p: {"status": "failed", "source_url": None, "error": str(UnknownPartitionError(p))}
        for p in unknown
        if p not in found
    }
    return found, missing


def forget(store: ObjectStore, partition: str) -> None:
    store.delete(_key(partition))


def all_sources(store: ObjectStore) -> list[Source]:
    """Every registered source, in key order."""
    sources = []
    for key in store.list_keys(f"{PREFIX}/"):
        partition = key.rsplit("/", 1)[-1].removesuffix(".json")
        sources.append(lookup(store, partition))
    return sources
