"""Per-URL status: one row per registered URL with each stage's state, the path taken, the last
error and timings, built from the artifacts and dead letters with pandas.

Building the table reads every URL's records (a stage's artifacts, its dead letters): at 100,000
URLs that is minutes on an object store. ``current_status`` therefore keeps the table stored
(``STATUS_KEY``, with what it was built up to in the Parquet file's own metadata) and brings it
up to date: only the rows of URLs with events in the Dagster instance since (a run planned or
materialized one of their stages) or registered since are read again; the rest are the stored
rows. ``media-assets status`` and the metrics scrape both read it so.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from media_assets import deadletters, registry
from media_assets.names import CHAINS
from resources.io_manager import ArtifactStore, artifact_key
from resources.storage import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

STATUS_KEY = "ingest_status/status.parquet"
# The Parquet schema metadata key under which the stored table says what it was built up to.
BUILT_META = b"media_assets_status"
# Index files of the registry past which the stored table's build merges them into one.
COMPACT_INDEX_FILES = 64
# Events that mean a URL's stage may have changed: a run planned it (it runs, ran or failed) or
# materialized it.
_CHANGES = (
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
)


def _state(record: dict | None) -> str:
    if record is None:
        return "missing"
    return "ok" if record.get("status") == "ok" else "failed"


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


def _rows(
    store: ObjectStore, sources: Sequence[registry.Source], *, listed: bool
) -> list[dict[str, Any]]:
    """The rows of ``sources``, from their records and dead letters. With ``listed``, each
    stage's records and the dead letters are listed once first (for many sources); otherwise
    each source's are read directly (for a few)."""
    stores = {s: ArtifactStore(store, dg.AssetKey(s), {}) for c in CHAINS.values() for s in c}
    recorded = {s: _recorded(store, s) for s in stores} if listed else None
    lettered = (
        {
            key.rsplit("/", 1)[-1].removesuffix(".jsonl")
            for key in store.list_keys(f"{deadletters.PREFIX}/")
        }
        if listed
        else None
    )
    rows = []
    for source in sources:
        stages = CHAINS.get(source.kind, [])
        records = {
            s: stores[s].read_or_none(source.key)
            if recorded is None or source.key in recorded[s]
            else None
            for s in stages
        }
        letters = (
            deadletters.for_partition(store, source.key)
            if lettered is None or source.key in lettered
            else []
        )
        states = {s: _state(r) for s, r in records.items()}
        first_bad = next((s for s in stages if states[s] != "ok"), None)
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
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows)


def status_frame(store: ObjectStore) -> pd.DataFrame:
    """The table built from scratch: every URL's records read."""
    return _frame(_rows(store, registry.all_sources(store), listed=True))


def write_status(store: ObjectStore, frame: pd.DataFrame, built: dict | None = None) -> str:
    """Store the table, with what it was built up to (``built``) in the Parquet metadata: one
    object, so a table and its marks never disagree."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if built is not None:
        metadata = {**(table.schema.metadata or {}), BUILT_META: json.dumps(built).encode()}
        table = table.replace_schema_metadata(metadata)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return store.put(STATUS_KEY, buffer.getvalue())


def read_status(store: ObjectStore) -> tuple[pd.DataFrame, dict] | None:
    """The stored table and what it was built up to; None when there is none with its marks."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(store.get(STATUS_KEY)))
    except FileNotFoundError:
        return None
    built = (table.schema.metadata or {}).get(BUILT_META)
    if built is None:
        return None  # written by a version that kept no marks: built again
    return table.to_pandas(), json.loads(built)


def changed_partitions(instance: dg.DagsterInstance, after: int) -> set[str]:
    """Partitions with a planned or materialized stage after event storage id ``after``: one
    query per stage and event type, returning only those keys."""
    storage = instance.event_log_storage
    changed: set[str] = set()
    for stage in {s for stages in CHAINS.values() for s in stages}:
        for event_type in _CHANGES:
            changed.update(
                storage.get_latest_storage_id_by_partition(
                    dg.AssetKey(stage), event_type, after_cursor=after
                )
            )
    return changed


def current_status(store: ObjectStore, instance: dg.DagsterInstance) -> pd.DataFrame:
    """The stored table brought up to date and stored again: rows read again only for URLs
    with instance events since its build, registered since, or new; all of them the first
    time."""
    import pandas as pd

    # Marks first: anything that happens while the table is read is read again next time.
    events = instance.event_log_storage.get_maximum_record_id() or 0
    stored = read_status(store)
    if stored is None:
        frame = status_frame(store)
        newest = registry.index_files(store)[-1:] or [None]
        index_mark = newest[0]
    else:
        previous, built = stored
        registered, index_mark = registry.registered_after(store, built.get("registry"))
        changed = changed_partitions(instance, int(built["events"])) | registered
        keys = registry.registered_keys(store)
        if index_mark is not None and len(registry.index_files(store)) > COMPACT_INDEX_FILES:
            registry.compact_index(store, index_mark, keys)
        known = set(previous["partition_key"])
        again = [k for k in keys if k in changed or k not in known]
        current = set(keys) - set(again)
        if not again and len(current) == len(previous):
            return previous  # nothing to read again: the stored table and its marks stand
        kept = previous[previous["partition_key"].isin(current)]
        sources = registry.sources_of(store, again)
        fresh = _frame(_rows(store, sources, listed=len(again) > len(keys) // 2))
        frame = pd.concat([kept, fresh], ignore_index=True) if len(fresh) else kept
        frame = frame.sort_values("partition_key", ignore_index=True)
    write_status(store, frame, {"events": events, "registry": index_mark})
    return frame


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


__all__ = [
    "STATUS_KEY",
    "changed_partitions",
    "current_status",
    "read_status",
    "status_frame",
    "summary",
    "write_status",
]
