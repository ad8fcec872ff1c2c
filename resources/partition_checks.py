"""Dynamic-partition reads in bursts served from one read of the partition set.

The sensor daemon applies a sensor's ``AddDynamicPartitionsRequest`` by asking the event log
``has_dynamic_partition`` for every key, one query each (about 5 ms on the local SQLite
instance, a new connection each; more on PostgreSQL): a manifest page of 10,000 new URLs spent
most of a minute there before adding them in one statement. Creating a run over a partition
range then reads the whole set for each asset of the run (``get_partition_keys_in_range``): 100
reads a tick of 20 runs, each of 100,000 keys at that size.

``SnapshotPartitionChecks`` keeps the keys of a set it read whole for ``SNAPSHOT_S`` and serves
reads of the set from them meanwhile; a burst of checks (more than ``BURST`` within
``SNAPSHOT_S``) reads the set whole, while a lone check still takes the stock query, so a check in
a step never pays for reading 100,000 keys. Adding or deleting partitions through the same storage
drops the snapshot; another process's change can be missed for up to ``SNAPSHOT_S``: the same race
the daemon's own check-then-add has.
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

    def _partition_state(
        self,
    ) -> tuple[dict[str, tuple[float, tuple[str, ...], frozenset[str]]], dict[str, Any]]:
        state = self.__dict__.get("_partition_state_")
        if state is None:
            state = self.__dict__.setdefault("_partition_state_", ({}, {}))
        return state

    def _in_burst(self, partitions_def_name: str) -> bool:
        """Counts a read of the set; True when it is one of more than ``BURST`` within
        ``SNAPSHOT_S`` (a hot loop: the daemon's checks, a tick's run creation)."""
        now = time.monotonic()
        calls = self._partition_state()[1].setdefault(partitions_def_name, deque(maxlen=BURST))
        calls.append(now)
        return len(calls) == BURST and now - calls[0] < SNAPSHOT_S

    def _snapshot(self, partitions_def_name: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
        snapshot = self._partition_state()[0].get(partitions_def_name)
        if snapshot is None or time.monotonic() - snapshot[0] >= SNAPSHOT_S:
            return None
        return snapshot[1], snapshot[2]

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        # A process that reads now and then (the code server evaluating the sensor, at most once
        # per interval, never under a second) always finds its last read expired.
        snapshot = self._snapshot(partitions_def_name) or self._read(partitions_def_name)
        return list(snapshot[0])  # a copy, as a read from storage would be

    def _read(self, partitions_def_name: str) -> tuple[tuple[str, ...], frozenset[str]]:
        """The set read whole, kept as the snapshot; returned whatever its age by the time the
        read ends (a read of 100,000 keys can take longer than SNAPSHOT_S on a loaded machine)."""
        started = time.monotonic()  # the snapshot's age counts from before the read
        keys = tuple(super().get_dynamic_partitions(partitions_def_name))  # type: ignore[misc]
        members = frozenset(keys)
        self._partition_state()[0][partitions_def_name] = (started, keys, members)
        return keys, members

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        if not self._in_burst(partitions_def_name):
            return super().has_dynamic_partition(partitions_def_name, partition_key)  # type: ignore[misc]
        snapshot = self._snapshot(partitions_def_name) or self._read(partitions_def_name)
        return partition_key in snapshot[1]

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
