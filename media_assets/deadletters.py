"""Dead letters: URLs that failed permanently or ran out of retries, kept in object storage.

Each failure appends one JSON line to ``_dead_letters/<partition>.jsonl``; a listing folds a
partition's lines into one entry per (partition, asset) with first and last time and attempts.
A partition's file is removed once the URL makes it through the whole chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from media_assets.retry import TRANSIENT_CLASSES
from resources.storage import ObjectStore

PREFIX = "_dead_letters"


@dataclass(frozen=True)
class DeadLetter:
    partition_key: str
    url: str | None
    asset: str
    error_class: str
    message: str
    attempts: int
    first_at: str
    last_at: str
    run_id: str
    traceback: str | None = None


def settled(store: ObjectStore, partitions: Iterable[str]) -> set[str]:
    """Partitions whose last failure was permanent: running them again would fail the same way
    (``media-assets retry`` still can)."""
    return {
        p
        for p in partitions
        if (letters := for_partition(store, p))
        and max(letters, key=lambda d: d.last_at).error_class not in TRANSIENT_CLASSES
    }


def object_key(partition: str) -> str:
    """Where a partition's dead letters are, in the object store."""
    return f"{PREFIX}/{partition}.jsonl"


def record_failures(
    store: ObjectStore, asset: str, run_id: str, failures: dict[str, dict[str, object]]
) -> None:
    """Append one line per failed partition (``failures``: partition -> its failed record)."""
    now = datetime.now(UTC).isoformat()
    for partition, record in failures.items():
        line = json.dumps(
            {
                "partition_key": partition,
                "url": record.get("source_url"),
                "asset": asset,
                "error_class": record.get("error_class") or str(record.get("status")),
                "message": str(record.get("error") or record.get("status")),
                "attempts": int(record.get("attempts") or 1),  # type: ignore[call-overload]
                "at": now,
                "run_id": run_id,
                "traceback": record.get("traceback"),
            }
        )
        key = object_key(partition)
        previous = store.get_text(key) if store.exists(key) else ""
        store.put_text(key, previous + line + "\n")


def clear(store: ObjectStore, partitions: Iterable[str]) -> None:
    for partition in partitions:
        store.delete(object_key(partition))


def _fold(lines: list[dict[str, object]]) -> list[DeadLetter]:
    by_asset: dict[str, list[dict[str, object]]] = {}
    for line in lines:
        by_asset.setdefault(str(line["asset"]), []).append(line)
    letters = []
    for asset, events in by_asset.items():
        last = events[-1]
        letters.append(
            DeadLetter(
                partition_key=str(last["partition_key"]),
                url=last.get("url"),
                asset=asset,  # type: ignore[arg-type]
                error_class=str(last["error_class"]),
                message=str(last["message"]),
                attempts=sum(int(e.get("attempts") or 1) for e in events),  # type: ignore[call-overload]
                first_at=str(events[0]["at"]),
                last_at=str(last["at"]),
                run_id=str(last["run_id"]),
                traceback=last.get("traceback"),  # type: ignore[arg-type]
            )
        )
    return letters


def for_partition(store: ObjectStore, partition: str) -> list[DeadLetter]:
    key = object_key(partition)
    if not store.exists(key):
        return []
    return _fold([json.loads(line) for line in store.get_text(key).splitlines() if line.strip()])


def list_all(store: ObjectStore) -> list[DeadLetter]:
    letters = []
    for key in store.list_keys(f"{PREFIX}/"):
        partition = key.rsplit("/", 1)[-1].removesuffix(".jsonl")
        letters.extend(for_partition(store, partition))
    return sorted(letters, key=lambda d: d.last_at)


def as_dict(letter: DeadLetter) -> dict[str, object]:
    return asdict(letter)
