"""Per-URL status: one row per registered URL with each stage's state, the path taken, the last
error and timings, built from the artifacts and dead letters with pandas."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import dagster as dg

from media_assets import deadletters, registry
from media_assets.names import CHAINS, Status
from resources.io_manager import ArtifactStore, artifact_key
from resources.storage import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

STATUS_KEY = "ingest_status/status.parquet"


def _state(record: dict | None) -> str:
    if record is None:
        return "missing"
    return Status.OK if record.get("status") == Status.OK else Status.FAILED


def _video_path(media: dict) -> str | None:
    """Which way a video went: its platform captions, or the download and models."""
    path = media.get("path")
    return {"downloaded": "download", "not needed: captions": "captions"}.get(path, path)


def _recorded(store: ObjectStore, stage: str) -> set[str]:
    """Partitions with a record of ``stage``: one listing, instead of a look-up per URL that
    has none (most of them, while 100,000 URLs wait for their runs)."""
    prefix = artifact_key(dg.AssetKey(stage), "", "json").removesuffix(".json")
    return {
        key[len(prefix) : -len(".json")]
        for key in store.list_keys(prefix)
        if key.endswith(".json") and "/" not in key[len(prefix) :]
    }


def status_frame(store: ObjectStore) -> pd.DataFrame:
    rows = []
    stores = {s: ArtifactStore(store, dg.AssetKey(s), {}) for c in CHAINS.values() for s in c}
    recorded = {s: _recorded(store, s) for s in stores}
    lettered = {
        key.rsplit("/", 1)[-1].removesuffix(".jsonl")
        for key in store.list_keys(f"{deadletters.PREFIX}/")
    }
    for source in registry.all_sources(store):
        stages = CHAINS.get(source.kind, [])
        records = {
            s: stores[s].read_or_none(source.key) if source.key in recorded[s] else None
            for s in stages
        }
        letters = deadletters.for_partition(store, source.key) if source.key in lettered else []
        states = {s: _state(r) for s, r in records.items()}
        first_bad = next((s for s in stages if states[s] != Status.OK), None)
        render = records.get("rendered_page") or {}
        media = records.get("media") or {}
        rows.append(
            {
                "partition_key": source.key,
                "url": source.url,
                "kind": source.kind,
                "state": "indexed" if first_bad is None else f"{states[first_bad]} at {first_bad}",
                "path": "render" if source.kind == "web" else _video_path(media),
                **{f"stage_{s}": st for s, st in states.items()},
                "last_error": letters[-1].message if letters else None,
                "error_class": letters[-1].error_class if letters else None,
                "attempts": sum(d.attempts for d in letters),
                "render_ms": (render.get("timings_ms") or {}).get("total"),
                "fetch_attempts": render.get("attempts"),
            }
        )
    import pandas as pd

    return pd.DataFrame(rows)


def write_status(store: ObjectStore, frame: pd.DataFrame) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return store.put(STATUS_KEY, buffer.getvalue())


def summary(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no URLs registered yet: ingest a manifest first"
    lines = []
    for kind, group in frame.groupby("kind"):
        counts = group["state"].value_counts().sort_index()
        lines.append(
            f"{kind}: {len(group)} URLs — "
            + ", ".join(f"{state} {n}" for state, n in counts.items())
        )
        stage_columns = [c for c in group.columns if c.startswith("stage_")]
        stages = group[stage_columns].dropna(axis=1, how="all")  # the other kind's stages
        import pandas as pd

        table = stages.apply(pd.Series.value_counts).fillna(0).astype(int).T
        table.index = [c.removeprefix("stage_") for c in table.index]
        lines.append(table.to_string())
    return "\n".join(lines)
