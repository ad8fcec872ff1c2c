"""Partition key -> source URL, kept in the object store beside the artifacts.

Dagster's dynamic partitions hold only keys (hashes); this is the lookup from a key back to the
URL, kind and tags of the manifest entry that made it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from media_assets.manifest import ManifestEntry
from resources.storage import ObjectStore

PREFIX = "_registry"


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
            "(the manifest sensor registers it), or run `media-assets ingest`"
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


def resolve(
    store: ObjectStore,
    partitions: Sequence[str],
) -> tuple[dict[str, Source], dict[str, dict[str, object]]]:
    """Sources of the partitions that have one, and a failed record for each that has none, so
    one unregistered key fails alone instead of failing its batch."""
    found: dict[str, Source] = {}
    missing: dict[str, dict[str, object]] = {}
    for partition in partitions:
        try:
            found[partition] = lookup(store, partition)
        except UnknownPartitionError as exc:
            missing[partition] = {"status": "failed", "source_url": None, "error": str(exc)}
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
