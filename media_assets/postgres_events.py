"""PostgreSQL's event log with the plans of a run written in one statement.

When a run is created, Dagster plans every asset and partition of it: one
``ASSET_MATERIALIZATION_PLANNED`` event per asset and partition (500 for a run of 100 web pages).
dagster-postgres writes a batch of those event by event, each on a new connection (about 0.1 s
an event on the shared development machine), so a sensor tick that creates 20 such runs took
minutes. This storage writes them as the stock one writes a batch of materializations: one
insert for the events, one transaction for their tags and the assets' latest event. Other events
take the stock path. Bursts of partition checks (a sensor tick adding thousands of partitions,
each checked first by the daemon) are answered from one read of the set
(``resources/partition_checks.py``).

The write relies on ``SqlEventLogStorage`` internals, as the local instance's
``BatchingSqliteEventLogStorage`` does: both live in ``media_assets/dagster_compat.py``
(``write_events_together``), tested there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from media_assets.dagster_compat import EventLogEntry, write_events_together
from resources.partition_checks import SnapshotPartitionChecks

PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED


class BatchingPostgresEventLogStorage(SnapshotPartitionChecks, PostgresEventLogStorage):
    @classmethod
    def from_config_value(
        cls, inst_data: Any, config_value: Mapping[str, Any]
    ) -> BatchingPostgresEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        planned = [e for e in events if e.dagster_event_type == PLANNED]
        others = [e for e in events if e.dagster_event_type != PLANNED]
        if others:
            super().store_event_batch(others)
        if planned:
            write_events_together(self, planned)
