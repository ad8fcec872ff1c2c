"""The per-URL status table, as an asset an operator can materialize and read in the UI."""

import dagster as dg

from media_assets.status import STATUS_KEY, current_status
from resources.storage import ObjectStore

TABLE_ROWS = 200


@dg.asset(kinds={"pandas", "parquet"}, group_name="status", code_version="1")
def ingest_status(
    context: dg.AssetExecutionContext, object_store: ObjectStore
) -> dg.MaterializeResult:
    """One row per URL: kind, each stage's state, path taken, last error, attempts, timings.

    The same stored table ``media-assets status`` and the metrics keep up to date: only URLs
    with events since it was built are read again."""
    frame = current_status(object_store, context.instance)
    uri = object_store.uri(STATUS_KEY)
    shown = frame.head(TABLE_ROWS).astype(object).where(frame.head(TABLE_ROWS).notna(), None)
    columns = [dg.TableColumn(str(c), "string") for c in shown.columns]
    records = [
        dg.TableRecord({str(k): (str(v) if v is not None else None) for k, v in row.items()})
        for row in shown.to_dict("records")
    ]
    counts = frame["state"].value_counts().to_dict() if not frame.empty else {}
    return dg.MaterializeResult(
        metadata={
            "urls": len(frame),
            **{f"state: {k}": int(v) for k, v in counts.items()},
            "artifact": dg.MetadataValue.path(uri),
            "table": dg.MetadataValue.table(records, dg.TableSchema(columns)),
            "parquet_key": STATUS_KEY,
        }
    )
