"""The code location: every asset, job, sensor and resource, assembled in one place."""

import os
from collections.abc import Mapping

import dagster as dg

from media_assets.assets import video_assets, web_assets
from media_assets.assets.status import ingest_status
from media_assets.jobs import ingest_jobs
from media_assets.k8s import k8s_executor
from media_assets.logs import json_logger, terminal_logger
from resources import build_resources
from sensors import batch_failure_sensor, manifest_sensor


def _executor(env: Mapping[str, str] | None) -> dg.ExecutorDefinition:
    if (os.environ if env is None else env).get("MEDIA_ASSETS_EXECUTOR") == "k8s":
        return k8s_executor(os.environ if env is None else env)
    # Steps of a batch run in one process: each step already works on its whole batch
    # concurrently, and a process per step would start Chromium and load the model again.
    return dg.in_process_executor


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """Definitions with resources configured from ``env`` (the process environment by default)."""
    return dg.Definitions(
        assets=[*web_assets, *video_assets, ingest_status],
        jobs=list(ingest_jobs.values()),
        sensors=[manifest_sensor, batch_failure_sensor],
        resources=build_resources(env),
        loggers={
            "terminal": terminal_logger,
            "json": json_logger,
            "console": dg.colored_console_logger,
        },
        executor=_executor(env),
    )


defs = build_definitions()
