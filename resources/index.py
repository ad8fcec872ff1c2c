"""The searchable index behind one interface: LanceDB on local disk (or S3) by default, Weaviate in
production.

Every backend ranks the same way and reports the same relevance, a number between 0 and 1 that
means the same for any query (``VectorIndex.search``): a backend supplies only its two kinds of
match, BM25 over the chunk text and nearest vectors, and the fusion here does the rest.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

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
    # Enrichment (media_assets/enrich.py): entity names and the string a filter reads, keywords,
    # content class; the PII policy in force and what it found per type (JSON).
    ("entities", "list<string>"),
    ("entity_terms", "string"),
    ("keywords", "list<string>"),
    ("topic", "string"),
    ("topic_score", "double"),
    ("pii_policy", "string"),
    ("pii", "string"),
]
ENRICHMENT_FIELDS = ROW_FIELDS[-7:]


@dataclass(frozen=True)
class RowFilter:
    """Which rows a search may return: of one kind, with an entity whose name holds the words of
    ``entity`` (``media_assets.enrich.entity_pattern``), of one content class."""

    kind: str | None = None
    entity: str | None = None
    topic: str | None = None

    def __post_init__(self) -> None:
        from media_assets.enrich import OTHER_TOPIC, TOPICS

        if self.topic is not None and self.topic not in (*TOPICS, OTHER_TOPIC):
            raise ValueError(
                f"--topic {self.topic!r} is not a content class: use one of "
                f"{', '.join([*TOPICS, OTHER_TOPIC])}"
            )

    @property
    def entity_pattern(self) -> str | None:
        from media_assets.enrich import entity_pattern

        return entity_pattern(self.entity) if self.entity else None

    def sql(self) -> str | None:
        """The filter as a LanceDB ``where`` clause (None: every row). Only the known kinds and
        classes and an entity's word characters reach it."""
        clauses = []
        if self.kind in ("web", "video"):
            clauses.append(f"kind = '{self.kind}'")
        if self.entity is not None:
            pattern = self.entity_pattern
            clauses.append(f"entity_terms LIKE '{pattern}'" if pattern else "false")
        if self.topic is not None:
            clauses.append(f"topic = '{self.topic}'")
        return " AND ".join(clauses) or None


ANY_ROW = RowFilter()


@dataclass(frozen=True)
class IndexWrite:
    upserted: int
    deleted: int


@dataclass(frozen=True)
class SearchHit:
    score: float  # relevance between 0 and 1, comparable across queries
    row: dict[str, Any]


@dataclass(frozen=True)
class Match:
    """A row one half of a search found: BM25 score, or cosine similarity, and its vector."""

    row: dict[str, Any]
    vector: np.ndarray
    score: float

    @property
    def key(self) -> tuple[str, str]:
        return self.row["source_key"], self.row["chunk_id"]


# Weight of meaning against words in a hybrid relevance. Measured on the dev queries
# (bench/retrieval_eval.py), 0.6-0.8 rank alike; 0.7 is the middle of that plateau.
SEMANTIC_WEIGHT = 0.7
# Candidates each half of a hybrid query brings: a chunk that only one half finds still gets the
# other half's evidence (its cosine is computed from its vector; outside the BM25 pool its words
# count as no match, a share below that of the pool's last chunk).
HYBRID_POOL = 20
TERM = re.compile(r"\w+")
TERM_CACHE_SIZE = 100_000


def semantic_relevance(cosine: float) -> float:
    """Cosine similarity, clipped to 0..1: an absolute measure, the same for every query."""
    return min(max(float(cosine), 0.0), 1.0)


def lexical_relevance(bm25: float, ceiling: float) -> float:
    """A BM25 score as a share of ``ceiling``, the sum over the query's terms of each term's best
    score anywhere in the index (``VectorIndex.term_ceiling``). BM25 adds up per term and no chunk
    scores a term above that term's best, so the share lies in 0..1; unlike a share of the query's
    own top hit, it stays low when no chunk matches the query well."""
    return min(max(bm25 / ceiling, 0.0), 1.0) if ceiling > 0 else 0.0


def hybrid_relevance(cosine: float, lexical: float, weight: float = SEMANTIC_WEIGHT) -> float:
    """Convex combination of the two relevances: in 0..1, rising with either."""
    return weight * semantic_relevance(cosine) + (1.0 - weight) * lexical


def _cosine(vector: np.ndarray, unit_query: np.ndarray) -> float:
    norm = float(np.linalg.norm(vector))
    return float(np.dot(vector, unit_query)) / norm if norm else 0.0


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
    def text_matches(self, text: str, *, limit: int, where: RowFilter = ANY_ROW) -> list[Match]:
        """Best rows by BM25 over the chunk text, scored as the engine scores them (LanceDB
        stems English words, ``FTS_OPTIONS``); none when ``text`` has no searchable term."""

    @abstractmethod
    def vector_matches(
        self, vector: np.ndarray, *, limit: int, where: RowFilter = ANY_ROW
    ) -> list[Match]:
        """Nearest rows by cosine similarity (the score)."""

    def term_ceiling(self, text: str) -> float:
        """The most any chunk could score for ``text`` by BM25: each term's best score on its own,
        summed (a repeated term counts again, as it does in the query). Taken over the whole
        index, whatever the kind filter: still a bound, and no filtered scan per term."""
        total = 0.0
        for term in TERM.findall(text.lower()):
            found = self.text_matches(term, limit=1)
            total += found[0].score if found else 0.0
        return total

    def search(
        self,
        text: str,
        vector: np.ndarray | None,
        *,
        k: int = 5,
        kind: str | None = None,
        mode: SearchMode = "hybrid",
        entity: str | None = None,
        topic: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` most relevant rows, best first, of those that pass the filters (``kind``,
        an ``entity`` named in the row, a content class ``topic``). Relevance is cosine similarity
        (``vector``), the BM25 share of the query's ceiling (``text``), or their convex
        combination (``hybrid``): between 0 and 1 and comparable across queries, so one
        threshold can serve them all."""
        where = RowFilter(kind if kind in ("web", "video") else None, entity, topic)
        if mode == "vector":
            return [
                SearchHit(semantic_relevance(m.score), m.row)
                for m in self.vector_matches(np.asarray(vector), limit=k, where=where)
            ]
        lexical = self.text_matches(
            text, limit=k if mode == "text" else max(k, HYBRID_POOL), where=where
        )
        ceiling = self.term_ceiling(text) if lexical else 0.0
        if mode == "text":
            return [SearchHit(lexical_relevance(m.score, ceiling), m.row) for m in lexical]
        query = np.asarray(vector, dtype=np.float32)
        query = query / (float(np.linalg.norm(query)) or 1.0)
        candidates = {m.key: m for m in lexical}
        candidates.update(
            (m.key, m)
            for m in self.vector_matches(query, limit=max(k, HYBRID_POOL), where=where)
            if m.key not in candidates
        )
        bm25 = {m.key: m.score for m in lexical}
        hits = [
            SearchHit(
                hybrid_relevance(
                    _cosine(m.vector, query), lexical_relevance(bm25.get(key, 0.0), ceiling)
                ),
                m.row,
            )
            for key, m in candidates.items()
        ]
        return sorted(hits, key=lambda hit: -hit.score)[:k]

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


def add_missing_columns(table: Any, fields: Sequence[pa.Field]) -> None:
    """Columns this code writes that a table made by an earlier version lacks (the
    enrichment's), added empty: a source's rows get them when it is written again."""
    missing = [f for f in fields if f.name not in table.schema.names]
    if missing:
        table.add_columns(missing)


@cache
def _connect(uri: str, storage_options: tuple[tuple[str, str], ...]) -> Any:
    import lancedb

    return lancedb.connect(uri, storage_options=dict(storage_options) or None)


# LanceDB's native BM25 index over chunk text: English stemming and stop words, accents folded
# (LanceDB's defaults, spelled out because the ranking depends on them).
FTS_OPTIONS: dict[str, Any] = {
    "base_tokenizer": "simple",
    "language": "English",
    "lower_case": True,
    "stem": True,
    "remove_stop_words": True,
    "ascii_folding": True,
}


class LanceDBIndex(VectorIndex):
    """LanceDB table at ``uri`` (a folder, or ``s3://bucket/prefix``)."""

    kind: ClassVar[str] = "lancedb"
    uri: str = "data/index"
    table_name: str = "chunks"
    # Object-store options for an s3:// uri (endpoint, region, allow_http); keys come from the
    # environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    storage_options: dict[str, str] = Field(default_factory=dict)
    _term_scores: dict[tuple[int, str], float] = PrivateAttr(default_factory=dict)

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

    def _add_missing_columns(self, table: Any) -> None:
        add_missing_columns(table, list(self._schema(self.dimension() or 1)))

    def _update_text_index(self, table: Any) -> None:
        """Build the BM25 index at the first write, or again when ``FTS_OPTIONS`` changed; later
        writes add their rows to it. Rows left out of it would still be found, by a slower scan
        that scores them with other statistics than the indexed rows."""
        current = next((i for i in table.list_indices() if i.columns == ["text"]), None)
        # The tokenizer settings the index was built with (unknown ones count as unchanged).
        built = getattr(current, "index_details", None) or {}
        if current is not None and all(built.get(k, v) == v for k, v in FTS_OPTIONS.items()):
            table.optimize()
        else:
            from lancedb.index import FTS

            table.create_index("text", config=FTS(**FTS_OPTIONS), replace=True)

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

        self._add_missing_columns(table)
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
        self._update_text_index(table)
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

    def term_ceiling(self, text: str) -> float:
        table = self._table()
        if table is None:
            return 0.0
        # One query per term (~4 ms each): a term already looked up in this version of the table
        # is not asked again (queries share words such as "how", or a page's subject).
        version = table.version
        total = 0.0
        for term in TERM.findall(text.lower()):
            if (version, term) not in self._term_scores:
                if len(self._term_scores) >= TERM_CACHE_SIZE:
                    self._term_scores.clear()
                best = table.search(term, query_type="fts").select(["_score"]).limit(1).to_arrow()
                score = float(best["_score"][0].as_py()) if best.num_rows else 0.0
                self._term_scores[version, term] = score
            total += self._term_scores[version, term]
        return total

    def _matches(self, query: Any, score_field: str, where: RowFilter, limit: int) -> list[Match]:
        if clause := where.sql():
            query = query.where(clause, prefilter=True)
        matches = []
        for row in query.limit(limit).to_list():
            score = float(row.pop(score_field))
            vector = np.asarray(row.pop("vector"), dtype=np.float32)
            fields = {name: value for name, value in row.items() if not name.startswith("_")}
            matches.append(Match(fields, vector, score))
        return matches

    def text_matches(self, text: str, *, limit: int, where: RowFilter = ANY_ROW) -> list[Match]:
        table = self._table()
        if table is None or not TERM.search(text):
            return []
        return self._matches(table.search(text, query_type="fts"), "_score", where, limit)

    def vector_matches(
        self, vector: np.ndarray, *, limit: int, where: RowFilter = ANY_ROW
    ) -> list[Match]:
        table = self._table()
        if table is None:
            return []
        query = table.search(vector, query_type="vector").distance_type("cosine")
        matches = self._matches(query, "_distance", where, limit)
        # LanceDB's cosine distance is 1 - cosine similarity.
        return [Match(m.row, m.vector, 1.0 - m.score) for m in matches]

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
