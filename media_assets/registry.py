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


def lookup_many(store: ObjectStore, partitions: Sequence[str]) -> dict[str, Source]:
    return {p: lookup(store, p) for p in partitions}


def forget(store: ObjectStore, partition: str) -> None:
    store.delete(_key(partition))
