"""What every URL-partitioned asset shares: batching, the record conventions, readable metadata.

Every artifact is a record with ``status`` (``ok`` or why not), ``source_url`` and, when not ok,
``error``. A stage that gets a non-ok upstream record writes a ``skipped`` record naming it, so
every asset materializes for every partition and the path a URL took stays visible.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

# backfill_policy is marked beta; the batching it gives is the point of this project.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

Record = dict[str, Any]
# Backfills launched from the UI group partitions into runs this large instead of one run each.
BATCH_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=50)
PREVIEW_CHARS = 400
TABLE_ROWS = 50


def url_asset(
    *,
    partitions_def: dg.PartitionsDefinition,
    code_version: str,
    kinds: set[str],
    group_name: str,
    sidecars: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Callable[..., dg.AssetsDefinition]:
    """``dg.asset`` with the settings every URL-partitioned stage shares."""
    return dg.asset(
        partitions_def=partitions_def,
        code_version=code_version,
        kinds=kinds,
        group_name=group_name,
        backfill_policy=BATCH_POLICY,
        metadata={"sidecars": dict(sidecars or {})},
        **kwargs,
    )


def is_ok(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "ok"


def skipped(upstream: str, record: Mapping[str, Any]) -> Record:
    """The record a stage writes when its input did not succeed."""
    reason = f"{upstream} {record.get('status')}"
    if record.get("error"):
        reason += f": {record['error']}"
    return {
        "status": "skipped",
        "source_url": record.get("source_url"),
        "error": reason,
        "gone": bool(record.get("gone")),
    }


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    clock = {"start": time.perf_counter()}
    yield clock
    clock["seconds"] = time.perf_counter() - clock["start"]


def batch_output(
    records: dict[str, Record],
    seconds: float,
    preview: Callable[[Record], dict[str, Any]] | None = None,
) -> dg.Output:
    """Output plus metadata a person can read in the UI, where partitions show only hashes."""
    counts = Counter(str(r.get("status")) for r in records.values())
    metadata: dict[str, Any] = {
        "urls": len(records),
        **{f"status_{status}": n for status, n in sorted(counts.items())},
        "duration_s": round(seconds, 2),
        "seconds_per_url": round(seconds / max(len(records), 1), 3),
    }
    if len(records) == 1:
        ((key, record),) = records.items()
        if record.get("source_url"):
            metadata["source_url"] = dg.MetadataValue.url(record["source_url"])
        metadata["status"] = str(record.get("status"))
        if record.get("error"):
            metadata["error"] = str(record["error"])
        if preview and is_ok(record):
            metadata.update(preview(record))
    else:
        lines = ["| partition | status | URL | detail |", "| --- | --- | --- | --- |"]
        for key, record in list(records.items())[:TABLE_ROWS]:
            detail = str(record.get("error") or "").replace("|", "/")[:120]
            lines.append(
                f"| {key} | {record.get('status')} | {record.get('source_url')} | {detail} |"
            )
        if len(records) > TABLE_ROWS:
            lines.append(f"| … | {len(records) - TABLE_ROWS} more | | |")
        metadata["batch"] = dg.MetadataValue.md("\n".join(lines))
    return dg.Output(records, metadata=metadata)


def text_preview(text: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else ""))
