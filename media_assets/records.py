"""The envelope every artifact record shares, and the rules for records that are not ``ok``.

Each stage's own record type (``RenderedPage`` in ``web/render.py``, ``TranscriptRecord`` in
``video/speech.py``…) extends ``StageRecord`` in the module that makes it. They are TypedDicts:
at run time a record is the plain dict that is written as JSON, so artifacts stay byte for byte
what they were; the JSON Schemas in ``media_assets/schemas/`` remain the contract, checked at the
boundary by ``media_assets.contracts.conform``.

Plain Python, no Dagster: stage modules and resources read it as well as the assets layer.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from media_assets.names import Status

# Where the IO manager puts what it knows of a stored artifact (asset, partition, code version,
# run, time): not part of the record's content.
ARTIFACT_HEADER = "_artifact"
# Why a record was skipped: its input did not succeed (it names the stage that failed).
UPSTREAM_FAILED = "upstream_failed"
SCHEMA_VIOLATION = "schema_violation"

# Any stage's record, as the generic machinery (checkpoints, batches, hashes) handles it.
Record = dict[str, Any]


class StageRecord(TypedDict):
    """What every artifact holds: ``status`` (``ok`` or why not), the URL it came from and, when
    not ok, why; the hash of the input it was made from once a stage has made it."""

    status: str
    source_url: str | None
    error: NotRequired[str | None]
    # What kind of failure (timeout, refused, corrupt_media, upstream_failed…): the retry policy,
    # the dead letters and the status table read it.
    error_class: NotRequired[str | None]
    traceback: NotRequired[str | None]
    input_sha256: NotRequired[str | None]
    # Where a record broke its schema (``contracts.Violation`` as a dict).
    violation: NotRequired[dict[str, str]]


def is_ok(record: Mapping[str, Any]) -> bool:
    return record.get("status") == Status.OK


def without_header(record: Mapping[str, Any]) -> Record:
    """The record as its stage made it, without the storage header (which changes every run)."""
    return {k: v for k, v in record.items() if k != ARTIFACT_HEADER}


def failed(exc: BaseException, source_url: str | None, input_sha256: str) -> Record:
    """The record of a stage whose work raised ``exc``: it fails this URL alone, with its
    traceback. Stage errors say what kind they are (corrupt_media, no_video…); others are bugs."""
    return {
        "status": Status.FAILED,
        "source_url": source_url,
        "error": f"{type(exc).__name__}: {exc}",
        "error_class": getattr(exc, "error_class", "exception"),
        "traceback": traceback.format_exc(),
        "input_sha256": input_sha256,
    }


def skipped(upstream: str, record: Mapping[str, Any]) -> Record:
    """The record a stage writes when its input did not succeed; a record that is itself a skip
    passes on unchanged, so every later stage names the stage that actually failed."""
    if record.get("error_class") == UPSTREAM_FAILED:
        return without_header(record)
    reason = f"{upstream} {record.get('status')}"
    if record.get("error"):
        reason += f": {record['error']}"
    return {
        "status": Status.SKIPPED,
        "source_url": record.get("source_url"),
        "error": reason,
        "error_class": UPSTREAM_FAILED,
    }
