"""One IO manager for every artifact, over any ``ObjectStore``.

Partitioned assets pass ``{partition_key: artifact}`` both ways, so one batched step covering many
URL partitions writes (and reads) one readable file per partition: ``<asset>/<partition>.<ext>``.
Each artifact is a JSON record; an asset may move large fields into sidecar files with definition
metadata ``sidecars``: ``{"html": "html"}`` keeps the rendered page as ``<partition>.html`` beside
its record, ``{"vectors": "parquet"}`` writes a DataFrame as ``<partition>.parquet``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from media_assets.records import ARTIFACT_HEADER
from resources.storage import ObjectStore

if TYPE_CHECKING:
    import pandas as pd


def artifact_key(asset_key: dg.AssetKey, partition: str, ext: str) -> str:
    return f"{'/'.join(asset_key.path)}/{partition}.{ext}"


def encode_json(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, indent=1, default=str).encode("utf-8")


# pandas and pyarrow load where tables are read or written: every process (each run, each
# command) imports this module, and they cost a third of a second.
def encode_parquet(frame: pd.DataFrame, header: Mapping[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[ARTIFACT_HEADER.encode()] = json.dumps(header, default=str).encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buffer)
    return buffer.getvalue()


def decode_parquet(data: bytes) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()


class ArtifactStore:
    """Reads and writes one asset's per-partition artifacts; shared by the IO manager and assets
    that look at their own previous output (e.g. to reuse embeddings)."""

    def __init__(self, store: ObjectStore, asset_key: dg.AssetKey, metadata: Mapping[str, Any]):
        self.store = store
        self.asset_key = asset_key
        self.sidecars: dict[str, str] = dict(metadata.get("sidecars") or {})
        self.code_version: str | None = metadata.get("code_version")

    def header(self, partition: str, run_id: str) -> dict[str, Any]:
        return {
            "asset": self.asset_key.to_user_string(),
            "partition": partition,
            "code_version": self.code_version,
            "run_id": run_id,
            "written_at": datetime.now(UTC).isoformat(),
        }

    def is_stored(self, partition: str, record: Mapping[str, Any]) -> bool:
        """True when ``record`` came from (or was just written to) this partition's artifact by
        the current code version, so writing it again would change nothing."""
        header = record.get(ARTIFACT_HEADER) or {}
        return header.get("partition") == partition and header.get("code_version") == (
            self.code_version
        )

    def key(self, partition: str) -> str:
        return artifact_key(self.asset_key, partition, "json")

    def exists(self, partition: str) -> bool:
        return self.store.exists(self.key(partition))

    def write(self, partition: str, value: Mapping[str, Any], run_id: str) -> dict[str, Any]:
        """Store ``value`` (sidecar fields in their own files); returns it with its header."""
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{self.asset_key.to_user_string()}: artifacts are dicts, "
                f"got {type(value).__name__}"
            )
        header = self.header(partition, run_id)
        record = {k: v for k, v in value.items() if k != ARTIFACT_HEADER}
        for field, ext in self.sidecars.items():
            content = record.pop(field, None)
            if content is None:
                continue
            side_key = artifact_key(self.asset_key, partition, ext)
            if ext == "parquet":
                self.store.put(side_key, encode_parquet(content, header))
            else:
                self.store.put_text(side_key, str(content))
            record[f"{field}_artifact"] = side_key
        record[ARTIFACT_HEADER] = header
        self.store.put(self.key(partition), encode_json(record))
        stored = {**value, ARTIFACT_HEADER: header}
        stored.update({k: v for k, v in record.items() if k.endswith("_artifact")})
        return stored

    def read(self, partition: str) -> dict[str, Any]:
        record = json.loads(self.store.get(self.key(partition)))
        for field, ext in self.sidecars.items():
            side_key = record.get(f"{field}_artifact")
            if side_key:
                data = self.store.get(side_key)
                record[field] = decode_parquet(data) if ext == "parquet" else data.decode("utf-8")
        return record

    def blob_key(self, partition: str, name: str) -> str:
        """Where a stage keeps a partition's binary files (media, frames): beside its record."""
        return f"{'/'.join(self.asset_key.path)}/{partition}/{name}"

    def delete(self, partition: str) -> None:
        """Remove the partition's record, its sidecar files and its binary files."""
        for ext in {"json", *self.sidecars.values()}:
            self.store.delete(artifact_key(self.asset_key, partition, ext))
        for key in self.store.list_keys(self.blob_key(partition, "")):
            self.store.delete(key)

    def read_or_none(self, partition: str) -> dict[str, Any] | None:
        try:
            return self.read(partition)
        except FileNotFoundError:
            return None


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Per-partition readable artifacts (JSON, Parquet, sidecar HTML) in an ``ObjectStore``."""

    store: ObjectStore

    def _artifacts(self, asset_key: dg.AssetKey, metadata: Mapping[str, Any]) -> ArtifactStore:
        return ArtifactStore(self.store, asset_key, metadata)

    def handle_output(
        self, context: dg.OutputContext, obj: Mapping[str, Mapping[str, Any]] | None
    ) -> None:
        if obj is None:
            return
        artifacts = self._artifacts(context.asset_key, context.definition_metadata or {})
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else ["all"]
        missing = [p for p in partitions if p not in obj]
        if missing:
            raise ValueError(
                f"{context.asset_key.to_user_string()} returned no artifact for partitions "
                f"{missing[:5]}: a batched asset returns {{partition_key: artifact}} for each"
            )
        for partition in partitions:
            if not artifacts.is_stored(partition, obj[partition]):
                artifacts.write(partition, obj[partition], context.run_id)

    def load_input(self, context: dg.InputContext) -> dict[str, Any]:
        upstream = context.upstream_output
        metadata = (upstream.definition_metadata if upstream else None) or {}
        artifacts = self._artifacts(context.asset_key, metadata)
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else ["all"]
        return {p: artifacts.read(p) for p in partitions}
