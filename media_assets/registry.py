"""Partition key -> source URL, kept in the object store beside the artifacts.

Dagster's dynamic partitions hold only keys (hashes); this is the lookup from a key back to the
URL, kind and tags of the manifest entry that made it. `media-assets ingest` registers its
manifest before it runs; a partition the manifest sensor added is registered by the run that
first resolves it, from the watched manifest (the sensor's evaluation writes nothing).

One record per key serves a run's look-ups. Each ``register`` call also writes the records it
wrote as one file of an index (``_registry_index/<time>.jsonl``, later files win), so listing
every source (``media-assets status`` at 100,000 URLs) reads a few files instead of a record per
URL; a key the index lacks is looked up on its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from media_assets.manifest import (
    ManifestEntry,
    ManifestError,
    manifest_page,
    read_manifest,
    read_manifest_bytes,
)
from media_assets.names import MANIFEST_BYTES_TAG, Status
from resources.storage import ObjectStore

if TYPE_CHECKING:
    import dagster as dg

PREFIX = "_registry"
INDEX_PREFIX = "_registry_index"
# The manifest the sensor watches (resources' ManifestSource reads the same variable).
MANIFEST_ENV = "MEDIA_ASSETS_MANIFEST"
# Dynamic partitions added per call: Dagster's add_dynamic_partitions puts every key into one
# statement, and SQLite refuses more variables than its build allows (32,766 by default, the
# "too many SQL variables" met around 36k partitions; Debian's allows 250,000).
PARTITION_CHUNK = 10_000


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
    written: list[bytes] = []
    for entry in entries:
        record = json.dumps(entry.as_record(), sort_keys=True).encode()
        key = _key(entry.key)
        if store.exists(key) and store.get(key) == record:
            continue
        store.put(key, record)
        written.append(record)
    if written:
        # Zero-padded nanoseconds: names sort in time; the pid tells apart simultaneous writers.
        name = f"{INDEX_PREFIX}/{time.time_ns():020d}-{os.getpid()}.jsonl"
        store.put(name, b"\n".join(written) + b"\n")
    return len(written)


def lookup(store: ObjectStore, partition: str) -> Source:
    try:
        record = json.loads(store.get(_key(partition)))
    except FileNotFoundError:
        raise UnknownPartitionError(partition) from None
    return _source(partition, record)


def add_partitions(
    instance: dg.DagsterInstance, partitions_def_name: str, keys: Sequence[str]
) -> int:
    """Add dynamic partitions in chunks of ``PARTITION_CHUNK`` (any number of keys, any storage);
    returns how many were new."""
    added = 0
    for start in range(0, len(keys), PARTITION_CHUNK):
        chunk = keys[start : start + PARTITION_CHUNK]
        known = instance.get_existing_dynamic_partitions(partitions_def_name, chunk)
        new = [k for k in chunk if k not in known]
        if new:
            instance.add_dynamic_partitions(partitions_def_name, new)
        added += len(new)
    return added


def _run_manifest_bytes() -> tuple[int, int] | None:
    """The manifest byte range the sensor tagged the current run with, inside a step."""
    import dagster as dg

    try:
        tag = dg.OpExecutionContext.get().run.tags.get(MANIFEST_BYTES_TAG)
        start, end = (int(n) for n in (tag or "").split("-"))
    except Exception:  # not in a step, or no usable tag: read the whole manifest
        return None
    return start, end


def _manifest_entries(path: str, wanted: set[str]) -> list[ManifestEntry]:
    """Entries of the manifest whose keys are ``wanted``: parsed from the run's page of it when
    the sensor said which (a 100,000-line manifest takes seconds to parse whole), else whole."""
    span = _run_manifest_bytes()
    if span is not None:
        data = read_manifest_bytes(path)
        start, end = span
        if end <= len(data) and (start == 0 or data[start - 1 : start] == b"\n"):
            page = manifest_page(data[:end], path, start, data.count(b"\n", 0, start) + 1)
            found = [e for e in page.manifest.entries if e.key in wanted]
            if len(found) == len(wanted):
                return found
    manifest, _ = read_manifest(path)  # rewritten since, or not a sensor run
    return [e for e in manifest.entries if e.key in wanted]


def register_from_manifest(
    store: ObjectStore, partitions: Iterable[str], manifest_path: str | None
) -> dict[str, Source]:
    """Register the entries of the watched manifest (``manifest_path``, from
    ``MEDIA_ASSETS_MANIFEST``) whose keys are among ``partitions``; returns their sources."""
    wanted = set(partitions)
    if not wanted or not manifest_path:
        return {}
    try:
        entries = _manifest_entries(manifest_path, wanted)
    except ManifestError:
        return {}  # the keys stay unknown and fail with UnknownPartitionError's advice
    register(store, entries)
    return {e.key: Source(key=e.key, url=e.url, kind=e.kind, tags=e.tags) for e in entries}


def resolve(
    store: ObjectStore,
    partitions: Sequence[str],
    manifest_path: str | None = None,
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
    found |= register_from_manifest(store, unknown, manifest_path)
    missing: dict[str, dict[str, object]] = {
        p: {"status": Status.FAILED, "source_url": None, "error": str(UnknownPartitionError(p))}
        for p in unknown
        if p not in found
    }
    return found, missing


def forget(store: ObjectStore, partition: str) -> None:
    store.delete(_key(partition))


def _source(partition: str, record: dict[str, Any]) -> Source:
    return Source(
        key=partition, url=record["url"], kind=record["kind"], tags=record.get("tags", {})
    )


def index_files(store: ObjectStore) -> list[str]:
    """The index's files, oldest first."""
    return sorted(store.list_keys(f"{INDEX_PREFIX}/"))


def _indexed(store: ObjectStore, files: Iterable[str]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for name in files:
        try:
            text = store.get(name)
        except FileNotFoundError:  # compacted meanwhile: its records are in a later file
            continue
        for line in text.splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["key"]] = record
    return records


def registered_keys(store: ObjectStore) -> list[str]:
    """Every registered partition key, in order: one listing."""
    return [key.rsplit("/", 1)[-1].removesuffix(".json") for key in store.list_keys(f"{PREFIX}/")]


# Sources looked up one by one up to this many; more are read from the index at once.
LOOKUPS = 1_000


def sources_of(store: ObjectStore, partitions: Sequence[str]) -> list[Source]:
    """The sources of registered ``partitions``: their records from the index (for many), and
    from their own record where the index has none (registered before it) or for a few."""
    indexed = _indexed(store, index_files(store)) if len(partitions) > LOOKUPS else {}
    return [_source(p, indexed[p]) if p in indexed else lookup(store, p) for p in partitions]


def all_sources(store: ObjectStore) -> list[Source]:
    """Every registered source, in key order."""
    return sources_of(store, registered_keys(store))


def registered_after(store: ObjectStore, after: str | None) -> tuple[set[str], str | None]:
    """Keys registered (or registered again) by index files newer than ``after``, and the
    newest file's name."""
    files = index_files(store)
    newer = [name for name in files if after is None or name > after]
    return set(_indexed(store, newer)), (files[-1] if files else after)


def compact_index(store: ObjectStore, upto: str, keep: Iterable[str]) -> int:
    """Merge the index files up to ``upto`` into ``upto`` itself (keeping the records of the
    keys in ``keep``), so the next listing reads one file where a run per batch wrote many; the
    merged file keeps its name, so what is newer than it stays newer. Returns files removed."""
    older = [name for name in index_files(store) if name <= upto]
    if len(older) < 2:
        return 0
    records = _indexed(store, older)
    wanted = set(keep)
    lines = [json.dumps(r, sort_keys=True).encode() for k, r in records.items() if k in wanted]
    store.put(upto, b"\n".join(lines) + b"\n")
    for name in older:
        if name != upto:
            store.delete(name)
    return len(older) - 1
