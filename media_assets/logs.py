"""A terminal logger for people running ingestion by hand: one short line per event.

Dagster's console logger prints each failed step with its full stack trace; a URL that 404s is
an expected outcome here, already recorded in the dead letters, so one line says enough.
"""

import json
import logging
import sys
from collections.abc import Callable

import dagster as dg

META = "dagster_meta"


class ShortFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, META, None) or {}
        message = str(meta.get("orig_message") or record.getMessage())
        event = meta.get("dagster_event")
        if event is not None and event.is_step_failure and event.step_failure_data:
            message = f"step failed: {event.step_failure_data.error.message.strip()}"
        where = meta.get("step_key") or "run"
        clock = self.formatTime(record, "%H:%M:%S")
        return f"{clock} {record.levelname.lower():7} {where}: {message.splitlines()[0][:300]}"


def _not_a_consequence(record: logging.LogRecord) -> bool:
    """Steps skipped because an upstream step failed add nothing to that step's failure."""
    meta = getattr(record, META, None) or {}
    event = meta.get("dagster_event")
    if event is not None and event.event_type_value == "STEP_SKIPPED":
        return False
    return not str(meta.get("orig_message", "")).startswith("Dependencies for step")


@dg.logger(
    {"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="One short line per event, no stack traces (they stay in the run's event log).",
)
def terminal_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    return _stderr_logger("terminal", init_context, ShortFormatter(), _not_a_consequence)


def _stderr_logger(
    name: str,
    init_context: dg.InitLoggerContext,
    formatter: logging.Formatter,
    keep: Callable[[logging.LogRecord], bool] | None = None,
) -> logging.Logger:
    log = logging.Logger(f"media_assets.{name}", init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    if keep is not None:
        handler.addFilter(keep)
    log.addHandler(handler)
    return log


class JsonFormatter(logging.Formatter):
    """One JSON object a line: run, job, stage, event type, and for each materialization the
    partition key and URL it was about, so a log store can follow one URL through the chain."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, META, None) or {}
        event = meta.get("dagster_event")
        line: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "stage": meta.get("step_key"),
            "event": event.event_type_value if event is not None else None,
            "message": str(meta.get("orig_message") or record.getMessage())[:2000],
        }
        if event is not None and event.is_step_materialization:
            materialization = event.step_materialization_data.materialization
            line["asset"] = materialization.asset_key.to_user_string()
            line["partition_key"] = materialization.partition
            url = materialization.metadata.get("source_url")
            line["url"] = url.value if url is not None else None
            status = materialization.metadata.get("status")
            line["status"] = status.value if status is not None else None
        if event is not None and event.is_step_failure and event.step_failure_data:
            line["message"] = event.step_failure_data.error.message.strip()[:2000]
        return json.dumps(line, default=str)


@dg.logger(
    {"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="Structured JSON lines for log collectors (MEDIA_ASSETS_LOG_FORMAT=json).",
)
def json_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    return _stderr_logger("json", init_context, JsonFormatter())
