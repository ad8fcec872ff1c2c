"""The local Dagster instance: SQLite under ``DAGSTER_HOME``, with batched event writes.

A batched step emits one materialization per partition; written one by one on SQLite they cost
about a fifth of an ingest. ``DAGSTER_EVENT_BATCH_SIZE`` makes Dagster hand them over together and
``BatchingSqliteEventLogStorage`` writes them in one transaction (building it sets the variable,
in every process that uses this instance: daemon, webserver, code server, runs, the CLI; see
``media_assets/dagster_compat.py``). Production uses PostgreSQL (deploy/dagster.yaml), whose
storage batches materializations natively but writes a run's planned events one by one:
``media_assets/postgres_events.py`` batches those too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from media_assets.batching import VIDEO_RUN_LIMIT_S


def local_instance_config(home: Path) -> dict[str, Any]:
    """``dagster.yaml`` for a local instance in ``home``: Dagster's default SQLite layout (runs in
    ``history/``), the batching event log, no telemetry from an offline machine."""
    return {
        "event_log_storage": {
            "module": "resources.sqlite_events",
            "class": "BatchingSqliteEventLogStorage",
            "config": {"base_dir": str(home / "history" / "runs")},
        },
        "telemetry": {"enabled": False},
        # The daemon ends runs past their limit (the jobs' dagster/max_runtime tags; runs
        # without one, e.g. UI backfills, get the video job's limit).
        "run_monitoring": {"enabled": True, "max_runtime_seconds": VIDEO_RUN_LIMIT_S},
    }


def ensure_local_instance(home: Path) -> None:
    """Write ``home/dagster.yaml`` unless one is there (a user's own configuration wins)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(local_instance_config(home.absolute()), sort_keys=False))
