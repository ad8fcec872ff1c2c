"""Dynamic-partition membership checks in bursts served from one read of the partition set.

The sensor daemon applies a sensor's ``AddDynamicPartitionsRequest`` by asking the event log
``has_dynamic_partition`` for every key, one query each (about 5 ms on the local SQLite
instance, a new connection each; more on PostgreSQL): a manifest page of 10,000 new URLs spent
most of a minute there before adding them in one statement. ``SnapshotPartitionChecks`` answers
a burst of checks on one partition set (more than ``BURST`` within ``SNAPSHOT_S``) from one read
of all its keys, kept for ``SNAPSHOT_S``; a lone check still takes the stock query, so a check
in a step never pays for reading 100,000 keys. Adding or deleting partitions through the same
storage drops the snapshot. A partition deleted by another process within the snapshot's second
can still read as present: the same race the daemon's own check-then-add has.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

# Checks of one partition set within SNAPSHOT_S that make the next ones read the whole set.
BURST = 16
SNAPSHOT_S = 1.0


class SnapshotPartitionChecks:
    """Mixin for a ``SqlEventLogStorage`` (listed before it in the bases)."""

    def _partition_state(self) -> tuple[dict[str, tuple[float, frozenset[str]]], dict[str, Any]]:
        state = self.__dict__.get("_partition_state_")
        if state is None:
            state = self.__dict__.setdefault("_partition_state_", ({}, {}))
        return state

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        snapshots, recent = self._partition_state()
        now = time.monotonic()
        snapshot = snapshots.get(partitions_def_name)
        if snapshot is not None and now - snapshot[0] < SNAPSHOT_S:
            return partition_key in snapshot[1]
        calls: deque[float] = recent.setdefault(partitions_def_name, deque(maxlen=BURST))
        calls.append(now)
        if len(calls) < BURST or now - calls[0] >= SNAPSHOT_S:
            return super().has_dynamic_partition(partitions_def_name, partition_key)  # type: ignore[misc]
        keys = frozenset(self.get_dynamic_partitions(partitions_def_name))  # type: ignore[attr-defined]
        snapshots[partitions_def_name] = (now, keys)  # taken from before the read: never too new
        return partition_key in keys

    def _drop_snapshot(self, partitions_def_name: str) -> None:
        self._partition_state()[0].pop(partitions_def_name, None)

    def add_dynamic_partitions(
        self, partitions_def_name: str, partition_keys: Sequence[str]
    ) -> None:
        self._drop_snapshot(partitions_def_name)
        super().add_dynamic_partitions(partitions_def_name, partition_keys)  # type: ignore[misc]
        self._drop_snapshot(partitions_def_name)

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._drop_snapshot(partitions_def_name)
        super().delete_dynamic_partition(partitions_def_name, partition_key)  # type: ignore[misc]
        self._drop_snapshot(partitions_def_name)
