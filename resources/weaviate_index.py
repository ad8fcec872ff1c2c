"""Weaviate as the ``VectorIndex`` (weaviate-client v4): same rows, same contract as LanceDB.

Object UUIDs are UUID5 of ``source_key/chunk_id``, so writing a chunk again is an upsert; a
source's rows that its new version no longer has are found by filter and deleted. Search runs
Weaviate's BM25 and nearest-vector queries and fuses them as every backend does
(``VectorIndex.search``), rather than Weaviate's own hybrid, whose fused scores are rescaled per
query and so mean nothing across queries. No Weaviate server can be installed on the development
machines: the contract suite runs against one when ``WEAVIATE_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from resources.index import (
    ANY_ROW,
    ROW_FIELDS,
    TERM,
    IndexWrite,
    Match,
    RowFilter,
    VectorIndex,
    _check_keys,
)

MAX_ROWS_PER_SOURCE = 10_000


def _row_filter(where: RowFilter) -> Any:
    """``where`` as a Weaviate filter: the same rows LanceDB's clause (``RowFilter.sql``) keeps;
    ``entity_terms`` is a whole-field string, so ``like`` reads it as LanceDB's ``LIKE`` does."""
    from weaviate.classes.query import Filter

    filters = []
    if where.kind in ("web", "video"):
        filters.append(Filter.by_property("kind").equal(where.kind))
    if where.entity is not None:
        pattern = where.entity_pattern
        # no name holds a query without words: a filter nothing passes
        filters.append(
            Filter.by_property("entity_terms").like(pattern.replace("%", "*"))
            if pattern
            else Filter.by_property("source_key").equal("")
        )
    if where.topic is not None:
        filters.append(Filter.by_property("topic").equal(where.topic))
    return Filter.all_of(filters) if len(filters) > 1 else (filters[0] if filters else None)


def chunk_uuid(source_key: str, chunk_id: str) -> str:
    from weaviate.util import generate_uuid5

    return str(generate_uuid5(f"{source_key}/{chunk_id}"))


def found_objects(
    found: Any, score: Callable[[Any], float]
) -> list[tuple[dict[str, Any], np.ndarray, float]]:
    """A query's objects as (properties, vector, score), whichever way the client gives the
    vector (a named ``default`` vector or a bare one)."""
    hits = []
    for obj in found.objects:
        vector = obj.vector.get("default") if isinstance(obj.vector, dict) else obj.vector
        hits.append((dict(obj.properties), np.asarray(vector, dtype=np.float32), score(obj)))
    return hits


class WeaviateConnection(dg.ConfigurableResource):
    """A connection to one Weaviate collection, created on first write; what the chunk index
    and the moments index share.

    ``url`` is the HTTP endpoint (``http://host:8080``); gRPC is on ``grpc_port`` of the same host.
    The API key, when the server wants one, comes from ``WEAVIATE_API_KEY`` in the environment.
    """

    url: str
    grpc_port: int = 50051
    collection: str
    batch_size: int = 200
    _client: Any = PrivateAttr(default=None)

    def _connect(self) -> Any:
        if self._client is None:
            import weaviate
            from weaviate.classes.init import Auth

            parts = urlsplit(self.url)
            secure = parts.scheme == "https"
            key = os.environ.get("WEAVIATE_API_KEY")
            self._client = weaviate.connect_to_custom(
                http_host=parts.hostname or "localhost",
                http_port=parts.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=parts.hostname or "localhost",
                grpc_port=self.grpc_port,
                grpc_secure=secure,
                auth_credentials=Auth.api_key(key) if key else None,
            )
        return self._client

    def _properties(self) -> list[Any]:
        """The collection's properties, for creating it."""
        raise NotImplementedError

    def _collection(self, create: bool = False) -> Any:
        from weaviate.classes.config import Configure

        client = self._connect()
        if not client.collections.exists(self.collection):
            if not create:
                return None
            client.collections.create(
                self.collection,
                vector_config=Configure.Vectors.self_provided(),
                properties=self._properties(),
            )
            return client.collections.get(self.collection)
        collection = client.collections.get(self.collection)
        if create:
            # A collection made by an earlier version lacks the properties added since; given
            # before the write, they get their own tokenization (auto-schema would make each a
            # searchable text, or refuse the write when it is off).
            have = {p.name for p in collection.config.get().properties}
            for prop in self._properties():
                if prop.name not in have:
                    collection.config.add_property(prop)
        return collection

    def rows(self, source_key: str | None = None) -> list[dict[str, Any]]:
        collection = self._collection()
        if collection is None:
            return []
        return [
            dict(o.properties)
            for o in collection.iterator()
            if source_key is None or o.properties["source_key"] == source_key
        ]

    def delete_sources(self, source_keys: Sequence[str]) -> int:
        from weaviate.classes.query import Filter

        _check_keys(list(source_keys))
        collection = self._collection() if source_keys else None
        if collection is None:
            return 0
        result = collection.data.delete_many(
            where=Filter.by_property("source_key").contains_any(list(source_keys))
        )
        return int(result.successful)

    def teardown_after_execution(self, context: Any) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class WeaviateIndex(WeaviateConnection, VectorIndex):
    """A Weaviate collection holding the common chunk schema and one self-provided vector."""

    kind: ClassVar[str] = "weaviate"

    collection: str = "Chunks"

    def _properties(self) -> list[Any]:
        from weaviate.classes.config import DataType, Property, Tokenization

        types = {"string": DataType.TEXT, "double": DataType.NUMBER}
        return [
            Property(
                name=name,
                data_type=DataType.TEXT_ARRAY if str(kind).startswith("list") else types[str(kind)],
                # keys and links are matched exactly, not as words
                tokenization=Tokenization.FIELD
                if name not in ("text", "title", "section")
                and not str(kind).startswith(("double", "list"))
                else None,
            )
            for name, kind in ROW_FIELDS
        ]

    def _stored(self, collection: Any, keys: Sequence[str]) -> dict[str, str]:
        """uuid -> source_key of every stored row of ``keys``."""
        from weaviate.classes.query import Filter

        found = collection.query.fetch_objects(
            filters=Filter.by_property("source_key").contains_any(list(keys)),
            limit=MAX_ROWS_PER_SOURCE * len(keys),
            return_properties=["source_key"],
        )
        return {str(o.uuid): o.properties["source_key"] for o in found.objects}

    def replace_sources(
        self, rows: Sequence[dict[str, Any]], vectors: np.ndarray, source_keys: Sequence[str]
    ) -> IndexWrite:
        from weaviate.classes.query import Filter

        if not source_keys:
            return IndexWrite(0, 0)
        _check_keys(list(source_keys))
        collection = self._collection(create=bool(rows))
        if collection is None:
            return IndexWrite(0, 0)
        before = self._stored(collection, source_keys)
        written = set()
        with collection.batch.fixed_size(batch_size=self.batch_size) as batch:
            for row, vector in zip(rows, vectors, strict=True):
                uuid = chunk_uuid(row["source_key"], row["chunk_id"])
                props = {name: row.get(name) for name, _ in ROW_FIELDS}
                batch.add_object(properties=props, uuid=uuid, vector=vector.tolist())
                written.add(uuid)
        failed = collection.batch.failed_objects
        if failed:
            raise RuntimeError(
                f"Weaviate rejected {len(failed)} of {len(rows)} rows; first: {failed[0].message}"
            )
        stale = [uuid for uuid in before if uuid not in written]
        if stale:
            collection.data.delete_many(where=Filter.by_id().contains_any(stale))
        return IndexWrite(upserted=len(rows), deleted=len(stale))

    def _matches(self, found: Any, score: Callable[[Any], float]) -> list[Match]:
        return [Match(*hit) for hit in found_objects(found, score)]

    def text_matches(self, text: str, *, limit: int, where: RowFilter = ANY_ROW) -> list[Match]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None or not TERM.search(text):
            return []
        found = collection.query.bm25(
            query=text,
            # the chunk text alone, as LanceDB's index: title and section would weigh twice
            query_properties=["text"],
            limit=limit,
            filters=_row_filter(where),
            include_vector=True,
            return_metadata=MetadataQuery(score=True),
        )
        return self._matches(found, lambda obj: float(obj.metadata.score or 0.0))

    def vector_matches(
        self, vector: np.ndarray, *, limit: int, where: RowFilter = ANY_ROW
    ) -> list[Match]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None:
            return []
        found = collection.query.near_vector(
            near_vector=np.asarray(vector).tolist(),
            limit=limit,
            filters=_row_filter(where),
            include_vector=True,
            return_metadata=MetadataQuery(distance=True),
        )
        # The collection's distance is Weaviate's default, cosine: 1 - cosine similarity.
        return self._matches(found, lambda obj: 1.0 - float(obj.metadata.distance or 0.0))

    def dimension(self) -> int | None:
        collection = self._collection()
        if collection is None:
            return None
        sample = collection.query.fetch_objects(limit=1, include_vector=True).objects
        if not sample:
            return None
        vector = sample[0].vector
        return len(vector.get("default", vector) if isinstance(vector, dict) else vector)
