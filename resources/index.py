"""The searchable index behind one interface: LanceDB on local disk (or S3) by default; a Weaviate
backend implements the same contract later."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import dagster as dg
import numpy as np
from pydantic import Field

from partitions.keys import KEY_PATTERN

if TYPE_CHECKING:
    import pyarrow as pa

SearchMode = Literal["hybrid", "vector", "text"]
# Arrow's type names; each backend maps them to its own types.
ROW_FIELDS: list[tuple[str, str]] = [
    ("source_key", "string"),
    ("chunk_id", "string"),
    ("source_url", "string"),
    ("kind", "string"),
    ("title", "string"),
    ("section", "string"),
    ("text", "string"),
    ("deep_link", "string"),
    ("start_s", "double"),
    ("end_s", "double"),
    ("speakers", "list<string>"),
    ("content_sha256", "string"),
    ("pipeline_version", "string"),
    ("embedding_model", "string"),
]


@dataclass(frozen=True)
class IndexWrite:
    upserted: int
    deleted: int


@dataclass(frozen=True)
class SearchHit:
    score: float
    row: dict[str, Any]


def _check_keys(keys: Sequence[str]) -> str:
    bad = [k for k in keys if not KEY_PATTERN.match(k)]
    if bad:
        raise ValueError(f"not partition keys (a slug and 16 hex characters): {bad[:3]}")
    return ", ".join(f"'{k}'" for k in keys)


class VectorIndex(dg.ConfigurableResource, ABC):
    """Chunks and their vectors, keyed by (source_key, chunk_id)."""

    # The engine, shown as a kind on the assets that use this resource (definitions.py).
    kind: ClassVar[str] = "python"

    @abstractmethod
    def replace_sources(
        self, rows: Sequence[dict[str, Any]], vectors: np.ndarray, source_keys: Sequence[str]
    ) -> IndexWrite:
        """Upsert ``rows`` and delete every other row of ``source_keys``, in one step."""

    @abstractmethod
    def delete_sources(self, source_keys: Sequence[str]) -> int: ...

    @abstractmethod
    def search(
        self,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int = 5,
        kind: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]: ...

    @abstractmethod
    def rows(self, source_key: str | None = None) -> list[dict[str, Any]]:
        """Stored rows without vectors, for status and checks."""

    def dimension(self) -> int | None:
        """Length of the vectors already stored (None while the index is empty)."""
        return None

    def check_dimension(self, dimension: int, model: str) -> None:
        """Refuse vectors of another length than the index holds, naming both."""
        stored = self.dimension()
        if stored is not None and stored != dimension:
            raise ValueError(
                f"the index holds {stored}-dimensional vectors but {model} makes {dimension}: "
                "point MEDIA_ASSETS_INDEX_URI (or the Weaviate collection) at a new index, "
                "or switch back to the model that built this one"
            )


@cache
def _connect(uri: str, storage_options: tuple[tuple[str, str], ...]) -> Any:
    import lancedb

    return lancedb.connect(uri, storage_options=dict(storage_options) or None)


HYBRID_POOL = 20


class LanceDBIndex(VectorIndex):
    """LanceDB table at ``uri`` (a folder, or ``s3://bucket/prefix``)."""

    kind: ClassVar[str] = "lancedb"
    uri: str = "data/index"
    table_name: str = "chunks"
    # Object-store options for an s3:// uri (endpoint, region, allow_http); keys come from the
    # environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    storage_options: dict[str, str] = Field(default_factory=dict)

    def _schema(self, dimension: int) -> pa.Schema:
        import pyarrow as pa

        types = {
            "string": pa.string(),
            "double": pa.float64(),
            "list<string>": pa.list_(pa.string()),
        }
        return pa.schema(
            [pa.field(n, types[t]) for n, t in ROW_FIELDS]
            + [pa.field("vector", pa.list_(pa.float32(), dimension))]
        )

    def _table(self, dimension: int | None = None):
        db = _connect(self.uri, tuple(sorted(self.storage_options.items())))
        if self.table_name in db.table_names():
            return db.open_table(self.table_name)
        if dimension is None:
            return None
        return db.create_table(self.table_name, schema=self._schema(dimension), exist_ok=True)

    def _ensure_text_index(self, table: Any) -> None:
        if not any(getattr(i, "columns", None) == ["text"] for i in table.list_indices()):
            table.create_fts_index("text", replace=True)

    def replace_sources(
        self, rows: Sequence[dict[str, Any]], vectors: np.ndarray, source_keys: Sequence[str]
    ) -> IndexWrite:
        if not source_keys:
            return IndexWrite(0, 0)
        keys_sql = _check_keys(list(source_keys))
        table = self._table(vectors.shape[1] if len(rows) else None)
        if table is None:
            return IndexWrite(0, 0)
        before = table.count_rows(f"source_key IN ({keys_sql})")
        if not rows:
            table.delete(f"source_key IN ({keys_sql})")
            return IndexWrite(0, before)
        import pyarrow as pa

        schema = table.schema
        columns = {name: [row.get(name) for row in rows] for name, _ in ROW_FIELDS}
        columns["vector"] = list(vectors.astype(np.float32))
        data = pa.Table.from_pydict(columns, schema=schema)
        result = (
            table.merge_insert(["source_key", "chunk_id"])
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(f"source_key IN ({keys_sql})")
            .execute(data)
        )
        self._ensure_text_index(table)
        deleted = int(getattr(result, "num_deleted_rows", 0) or 0)
        return IndexWrite(upserted=len(rows), deleted=deleted)

    def delete_sources(self, source_keys: Sequence[str]) -> int:
        keys_sql = _check_keys(list(source_keys))
        if not source_keys:
            return 0
        table = self._table()
        if table is None:
            return 0
        count = table.count_rows(f"source_key IN ({keys_sql})")
        table.delete(f"source_key IN ({keys_sql})")
        return count

    def search(
        self,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int = 5,
        kind: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        table = self._table()
        if table is None:
            return []
        where = f"kind = '{kind}'" if kind in ("web", "video") else None
        if mode == "text":
            query = table.search(text, query_type="fts")
            score_field, sign = "_score", 1.0
        elif mode == "vector":
            query = table.search(vector, query_type="vector").distance_type("cosine")
            score_field, sign = "_distance", -1.0
        else:
            from lancedb.rerankers import RRFReranker

            query = (
                table.search(query_type="hybrid").vector(vector).text(text).rerank(RRFReranker())
            )
            score_field, sign = "_relevance_score", 1.0
        if where:
            query = query.where(where, prefilter=True)
        # A hybrid query limits both of its halves: with k=1 each half brings its own best and
        # fusion has nothing to agree on, so fetch a pool and keep the top k after fusion.
        pool = max(k, HYBRID_POOL) if mode == "hybrid" else k
        hits = []
        for row in query.limit(pool).to_list()[:k]:
            score = float(row.pop(score_field, 0.0))
            row.pop("vector", None)
            hits.append(
                SearchHit(
                    score=1.0 + sign * score if sign < 0 else score,
                    row={k: v for k, v in row.items() if not k.startswith("_")},
                )
            )
        return hits

    def dimension(self) -> int | None:
        table = self._table()
        if table is None:
            return None
        return int(table.schema.field("vector").type.list_size)

    def rows(self, source_key: str | None = None) -> list[dict[str, Any]]:
        table = self._table()
        if table is None:
            return []
        frame = table.to_arrow().drop_columns(["vector"])
        records = frame.to_pylist()
        return [r for r in records if source_key is None or r["source_key"] == source_key]
