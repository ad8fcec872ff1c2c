"""The code location: every asset, job, sensor and resource, assembled in one place."""

from collections.abc import Mapping

import dagster as dg

from media_assets.assets import video_assets, web_assets
from media_assets.assets.status import ingest_status
from media_assets.jobs import ingest_jobs
from media_assets.logs import terminal_logger
from resources import build_resources
from sensors import batch_failure_sensor, manifest_sensor


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """Definitions with resources configured from ``env`` (the process environment by default)."""
    return dg.Definitions(
        assets=[*web_assets, *video_assets, ingest_status],
        jobs=list(ingest_jobs.values()),
        sensors=[manifest_sensor, batch_failure_sensor],
        resources=build_resources(env),
        loggers={"terminal": terminal_logger, "console": dg.colored_console_logger},
        # Steps of a batch run in one process: each step already works on its whole batch
        # concurrently, and a process per step would start Chromium and load the model again.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
