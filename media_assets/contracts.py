"""Each stage's artifact has a JSON Schema in ``media_assets/schemas/``; a successful record is
checked against it before it is written (``conform``, the one function the write path calls), and
a violation fails that URL for good."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from media_assets.names import Status
from media_assets.records import ARTIFACT_HEADER, SCHEMA_VIOLATION, is_ok

SCHEMAS = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class Violation:
    """Where a record breaks its schema: the schema file, the field's path, what is wrong."""

    schema: str
    field: str  # e.g. ``chunks/0/text``; ``(record)`` when the record as a whole is wrong
    message: str

    def __str__(self) -> str:
        return f"schema {self.schema} violated at {self.field}: {self.message}"


@cache
def _registry() -> Registry:
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text())))
        for path in SCHEMAS.glob("*.json")
    ]
    return Registry().with_resources(resources)


@cache
def _validator(asset: str) -> Draft202012Validator | None:
    path = SCHEMAS / f"{asset}.json"
    if not path.exists():
        return None
    return Draft202012Validator(json.loads(path.read_text()), registry=_registry())


def has_schema(asset: str) -> bool:
    return (SCHEMAS / f"{asset}.json").exists()


def violation(asset: str, record: Mapping[str, Any]) -> Violation | None:
    """Where ``record`` breaks ``asset``'s schema, or None when it conforms (or has no schema).

    Fields that hold tables (sidecar DataFrames) are not JSON and are left out of the check.
    """
    validator = _validator(asset)
    if validator is None:
        return None
    body = {
        k: v
        for k, v in record.items()
        if isinstance(v, str | int | float | bool | list | dict) or v is None
    }
    error = next(iter(sorted(validator.iter_errors(body), key=lambda e: e.path)), None)
    if error is None:
        return None
    field = "/".join(str(p) for p in error.absolute_path) or "(record)"
    return Violation(f"{asset}.json", field, error.message[:300])


def conform(asset: str, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """``record``, or a permanent failure naming the schema it breaks. A stored record (it has
    its storage header) was checked when it was made, and a record that is not ok has no
    artifact to check."""
    if not is_ok(record) or record.get(ARTIFACT_HEADER):
        return record
    problem = violation(asset, record)
    if problem is None:
        return record
    return {
        "status": Status.FAILED,
        "source_url": record.get("source_url"),
        "error": str(problem),
        "error_class": SCHEMA_VIOLATION,
        "violation": asdict(problem),  # the schema check lists its field
        "input_sha256": record.get("input_sha256"),
    }
