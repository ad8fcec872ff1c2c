"""The local instance's event log storage, by the name ``dagster.yaml`` gives it
(``media_assets/instance.py`` writes it; instances made before keep naming this module).

The batching relies on Dagster internals, so it lives with the others in
``media_assets/dagster_compat.py``; bursts of partition checks (a sensor tick adding thousands of
partitions) are answered from one read of the set (``resources/partition_checks.py``).
"""

from media_assets.dagster_compat import BatchingSqliteEventLogStorage as _BatchingSqlite
from resources.partition_checks import SnapshotPartitionChecks


class BatchingSqliteEventLogStorage(SnapshotPartitionChecks, _BatchingSqlite):
    pass


__all__ = ["BatchingSqliteEventLogStorage"]
