"""The moments index: one row per (source_key, bucket) of every video, upserted by that composite
key, beside the chunk index (the same LanceDB folder or Weaviate server, a table of its own).

A backend supplies storage and three ways to find candidate rows — words of the sentence spoken
(``said``), character n-grams of the text on screen (``on_screen``, which survives OCR's misread
letters), speaker names — plus nearest vectors of the spoken sentence and a window of one video's
buckets. Deciding which buckets hold a query's conditions, and how they merge into moments, is
the same for every backend (``media_assets/moments.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

import dagster as dg
import numpy as np
from pydantic import Field

from resources.index import FTS_OPTIONS, IndexWrite, _check_keys, _connect, add_missing_columns
from resources.weaviate_index import WeaviateConnection, found_objects

if TYPE_CHECKING:
    import pyarrow as pa

TextField = Literal["said", "on_screen", "speaker", "entity"]
# The columns of a row a search reads ("vector" for its vector); None for all of them. A query
# reads only what it scores by, and the rest for the few rows it returns: at 1M rows, reading a
# row's annotations and vector is most of a search's time.
Columns: TypeAlias = "Sequence[str] | None"
KEY_COLUMNS = ("source_key", "bucket")


@dataclass(frozen=True)
class Candidate:
    """A bucket a search found: its row (the columns asked for, at least the key), its sentence's
    vector (None when not asked for), the engine's score (BM25, or cosine similarity; 0 for a
    bucket fetched by position), and the backend's handle on the row to read more of it."""

    row: dict[str, Any]
    vector: np.ndarray | None
    score: float
    ref: Any = None

    def lacks(self, columns: Sequence[str]) -> list[str]:
        """Those of ``columns`` this candidate was found without."""
        return [c for c in columns if (self.vector is None if c == "vector" else c not in self.row)]

    def with_columns(self, more: Candidate) -> Candidate:
        """This candidate with the columns ``more`` (the same row, read again) adds."""
        vector = self.vector if self.vector is not None else more.vector
        return replace(self, row={**more.row, **self.row}, vector=vector)

    @cached_property  # a query looks a candidate up by its key many times
    def key(self) -> tuple[str, int]:
        return self.row["source_key"], int(self.row["bucket"])


# The column each kind of text query searches.
TEXT_COLUMNS: dict[TextField, str] = {
    "said": "said_terms",
    "on_screen": "on_screen_terms",
    "speaker": "speaker_names",
    "entity": "entity_terms",
}
# Arrow's type names, as in resources/index.py; the row is media_assets/video/moments.MomentRow
# plus the embedding model.
MOMENT_FIELDS: list[tuple[str, str]] = [
    ("source_key", "string"),
    ("bucket", "int64"),
    ("source_url", "string"),
    ("title", "string"),
    ("extractor", "string"),
    ("deep_link", "string"),
    ("start_s", "double"),
    ("end_s", "double"),
    ("said", "string"),
    ("context", "string"),
    ("context_start_s", "double"),
    ("context_end_s", "double"),
    ("said_terms", "string"),
    ("on_screen", "string"),
    ("on_screen_terms", "string"),
    ("speakers", "list<string>"),
    ("speaker_names", "string"),
    ("scene", "int64"),
    ("chapter", "string"),
    ("entities", "list<string>"),
    ("models", "list<string>"),
    ("annotations", "string"),
    ("card", "string"),
    ("embedding_model", "string"),
    # Enrichment (media_assets/enrich.py): entity names as filters read them, keywords said, the
    # sentence's content class.
    ("entity_terms", "string"),
    ("keywords", "list<string>"),
    ("topic", "string"),
]
# Past ``ann_min_rows``, text on screen is found by its words, within one edit each.
ON_SCREEN_WORDS: dict[str, Any] = {
    "base_tokenizer": "simple",
    "lower_case": True,
    "stem": False,
    "remove_stop_words": False,
    "ascii_folding": True,
}
# The vector index's name, followed by ``_p`` and its number of partitions.
VECTOR_INDEX = "vector_ivf_pq"
# Text on screen is matched by character trigrams: "Stlr more" still shares most of "Stir
# more"'s. Speaker names are matched as whole words, neither stemmed nor dropped as stop words.
FTS_BY_COLUMN: dict[str, dict[str, Any]] = {
    # Spoken sentences are read like chunk text.
    "said_terms": FTS_OPTIONS,
    "on_screen_terms": {
        "base_tokenizer": "ngram",
        "ngram_min_length": 3,
        "ngram_max_length": 3,
        "lower_case": True,
        "stem": False,
        "remove_stop_words": False,
        "ascii_folding": True,
    },
    "speaker_names": {
        "base_tokenizer": "simple",
        "lower_case": True,
        "stem": False,
        "remove_stop_words": False,
        "ascii_folding": True,
    },
}
# Entity names are matched as whole words, as speaker names are.
FTS_BY_COLUMN["entity_terms"] = FTS_BY_COLUMN["speaker_names"]


class MomentsIndex(dg.ConfigurableResource, ABC):
    """Buckets of videos, keyed by (source_key, bucket), each with the vector of its sentence."""

    kind: ClassVar[str] = "python"

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the rows live: a stage that wrote them elsewhere must write them again."""

    @abstractmethod
    def replace_source(
        self, source_key: str, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray
    ) -> IndexWrite:
        """Upsert ``rows`` (every bucket of ``source_key``, from 0) by (source_key, bucket) and
        delete the source's buckets they no longer have (a shorter video), in one step."""

    @abstractmethod
    def delete_sources(self, source_keys: Sequence[str]) -> int: ...

    # ``columns``, where a method takes it: the row's columns to read, None for all; a backend
    # may return more than asked (Weaviate returns whole objects).

    @abstractmethod
    def text_matches(
        self, field: TextField, text: str, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        """Best rows for ``text`` in the ``field``'s column, by the engine's BM25."""

    @abstractmethod
    def vector_matches(
        self, vector: np.ndarray, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        """Nearest rows by cosine similarity of their sentence's vector (the score)."""

    @abstractmethod
    def window(self, source_key: str, first: int, last: int) -> list[Candidate]:
        """Buckets ``first``..``last`` of one video, with their vectors (score 0)."""

    def windows(
        self,
        ranges: Sequence[tuple[str, int, int]],
        columns: Columns = None,
        anchors: Mapping[tuple[str, int], Any] | None = None,
    ) -> list[Candidate]:
        """The buckets of several windows ``(source_key, first, last)``; a backend that can ask
        for them in one query does (a query's runs are completed from their neighbours).
        ``anchors``: the handles (``Candidate.ref``) of rows near the windows, by key, from
        which a backend may find their neighbours faster."""
        return [
            c for source_key, first, last in ranges for c in self.window(source_key, first, last)
        ]

    def complete(self, found: Sequence[Candidate], columns: Sequence[str]) -> list[Candidate]:
        """``found``, in order, with the ``columns`` their search did not read; a backend whose
        searches return whole rows has nothing to add. A row deleted since stays as it was."""
        return list(found)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """The look-ups inside read one version of the index (a query's several look-ups, and
        the row handles they pass each other); a backend that opens nothing has nothing to do."""
        yield

    @abstractmethod
    def rows(self, source_key: str | None = None) -> list[dict[str, Any]]:
        """Stored rows without vectors, for status and checks."""


# The LanceDB tables pinned by ``reading()``, by location, in this context, with their column
# names (reading a table's schema reads its manifest, ~0.4 ms, and a query selects columns a
# dozen times; a pinned table is only read, so its columns cannot change under it).
_READING: ContextVar[dict[str, tuple[Any, frozenset[str]]] | None] = ContextVar(
    "moments_reading", default=None
)


def _merged(buckets: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Windows ``(source_key, first, last)`` with adjacent or overlapping ones joined."""
    out: list[tuple[str, int, int]] = []
    for key, first, last in sorted(buckets):
        if out and out[-1][0] == key and first <= out[-1][2] + 1:
            out[-1] = (key, out[-1][1], max(last, out[-1][2]))
        else:
            out.append((key, first, last))
    return out


def _types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "list<string>": pa.list_(pa.string()),
    }


class LanceDBMomentsIndex(MomentsIndex):
    """The ``moments`` table in the chunk index's LanceDB folder (or ``s3://`` prefix)."""

    kind: ClassVar[str] = "lancedb"
    uri: str = "data/index"
    table_name: str = "moments"
    storage_options: dict[str, str] = Field(default_factory=dict)
    # From this many rows on, nearest vectors come from an IVF_PQ index (an exact search reads
    # every vector: 1.5 GB at 1M rows of 384 floats); below, the exact search is fast enough.
    ann_min_rows: int = 100_000
    # Rows per IVF partition at training (LanceDB's advice, 4-8k: k-means over sqrt(rows)
    # partitions takes most of an hour at 1M rows on two cores); partitions searched per query;
    # how many times the ``limit`` nearest by PQ code are ranked again on their full vectors.
    # At 1M buckets, 10 and 1 find the bench's answers as often as 20 and 2, ~10 % faster. At
    # least 1: a query's said scores are the distances the search returns (it reads no vectors
    # back), exact only when the refine step has ranked on full vectors.
    rows_per_partition: int = 4096
    # Rows written since the last reindex that a query may search beside the indexes (see
    # ``_stale``).
    reindex_rows: int = 1000
    nprobes: int = 10
    refine_factor: int = Field(1, ge=1)

    @property
    def location(self) -> str:
        return f"{self.uri}#{self.table_name}"

    def _table(self, dimension: int | None = None) -> Any:
        import pyarrow as pa

        db = _connect(self.uri, tuple(sorted(self.storage_options.items())))
        if self.table_name in db.table_names():
            return db.open_table(self.table_name)
        if dimension is None:
            return None
        types = _types()
        schema = pa.schema(
            [pa.field(n, types[t]) for n, t in MOMENT_FIELDS]
            + [pa.field("vector", pa.list_(pa.float32(), dimension))]
        )
        return db.create_table(self.table_name, schema=schema, exist_ok=True)

    def open_table(self) -> Any:
        """The LanceDB table, or None before the first write."""
        return self._table()

    @contextmanager
    def reading(self) -> Iterator[None]:
        # Opening the table reads its latest manifest: ~1 ms, several times a query.
        table = self._table()
        names = frozenset(table.schema.names) if table is not None else frozenset()
        pinned = {**(_READING.get() or {}), self.location: (table, names)}
        token = _READING.set(pinned)
        try:
            yield
        finally:
            _READING.reset(token)

    def _reader(self) -> Any:
        """The table to search: the one ``reading()`` pinned, else the latest."""
        pinned = (_READING.get() or {}).get(self.location)
        return pinned[0] if pinned else self._table()

    def create_table(self, dimension: int) -> Any:
        """The table, created empty for ``dimension``-d vectors if it does not exist yet (a bulk
        load adds rows to it, then calls ``update_indices``)."""
        return self._table(dimension)

    def drop_table(self) -> None:
        db = _connect(self.uri, tuple(sorted(self.storage_options.items())))
        if self.table_name in db.table_names():
            db.drop_table(self.table_name)

    def update_indices(self, table: Any = None) -> list[str]:
        """Bring the table's indexes up to date after a write; the indexes built from scratch.

        Re-index policy: every write ends here. The full-text indexes and the ``source_key``
        index are built at the first write; later writes (merge_insert: updated rows are new
        rows) only add their rows to them, and to the vector index, with ``optimize()``, which
        also compacts the small fragments writes leave: after every write while the table is
        small, after enough of them once it is large (``_stale``). Until then the new rows are
        still found, by a scan beside the index. The vector index is trained once the table holds
        ``ann_min_rows`` (below that, reading every vector is exact and fast enough), and trained
        again when the table has outgrown it four times (its partitions' centroids were chosen
        for a smaller, older table, and its partitions grow long).
        """
        table = table if table is not None else self._table()
        if table is None:
            return []
        indices = {tuple(getattr(i, "columns", ())): i for i in table.list_indices()}
        built = []
        if not all((column,) in indices for column in FTS_BY_COLUMN):
            from lancedb.index import FTS

            for column, options in FTS_BY_COLUMN.items():
                table.create_index(column, config=FTS(**options), replace=True)
                built.append(f"fts({column})")
        # Upserts, deletes and windows select one video's rows; windows a range of its buckets
        # (several videos' at once: with both indexed, the index answers the whole filter,
        # ~12x faster at 1M rows than reading every bucket of the videos).
        for column in ("source_key", "bucket"):
            if (column,) not in indices:
                from lancedb.index import BTree

                table.create_index(column, config=BTree(), replace=True)
                built.append(f"btree({column})")
        rows = table.count_rows()
        if rows >= self.ann_min_rows and ("on_screen",) not in indices:
            from lancedb.index import FTS

            table.create_index("on_screen", config=FTS(**ON_SCREEN_WORDS), replace=True)
            built.append("fts(on_screen, words)")
        vector = indices.get(("vector",))
        partitions = self._vector_index_partitions(vector)
        if rows >= self.ann_min_rows and (
            partitions is None or self._partitions(rows) >= 4 * partitions
        ):
            built.append(self._create_vector_index(table, rows, vector))
        if not built and self._stale(table, rows):
            table.optimize()
        return built

    def _stale(self, table: Any, rows: int) -> bool:
        """Whether to add the rows outside the indexes to them now: at once below
        ``ann_min_rows`` (cheap there, and BM25 then scores every row with the same statistics);
        past it, once there are ``reindex_rows`` of them. Until then every search scans them
        beside the indexes, and still finds them, at a cost that grows with their number, not
        the table's: at 1M rows here, a BM25 scan of 1,470 such rows took 8 ms of a 12 ms text
        search, while optimize() took 3.6-5 s after a video's write (every other 500 s video)."""
        unindexed = self.unindexed_rows(table, rows)
        return unindexed > 0 and (rows < self.ann_min_rows or unindexed >= self.reindex_rows)

    @staticmethod
    def unindexed_rows(table: Any, rows: int | None = None) -> int:
        """Rows written since the last reindex (every row before the first): searches scan
        them beside the indexes."""
        stats = table.index_stats(f"{TEXT_COLUMNS['said']}_idx")
        if stats is not None:
            return int(stats.num_unindexed_rows)
        return rows if rows is not None else table.count_rows()

    def _partitions(self, rows: int) -> int:
        return max(1, rows // self.rows_per_partition)

    @staticmethod
    def _vector_index_partitions(index: Any) -> int | None:
        """The partitions of the vector index, which its name records (IVF_PQ's own statistics
        do not), or None without one."""
        if index is None:
            return None
        name = str(getattr(index, "name", ""))
        prefix = f"{VECTOR_INDEX}_p"
        return int(name[len(prefix) :]) if name.startswith(prefix) else 0

    def _create_vector_index(self, table: Any, rows: int, previous: Any) -> str:
        from lancedb.index import IvfPq

        partitions = self._partitions(rows)
        dimension = int(table.schema.field("vector").type.list_size)
        # Sub-vectors of 8 dimensions (48 for MiniLM's 384): one byte per 8 floats; the
        # refine step ranks the best again on the full vectors.
        sub_vectors = dimension // 8 if dimension % 8 == 0 else 1
        name = f"{VECTOR_INDEX}_p{partitions}"
        table.create_index(
            "vector",
            config=IvfPq(
                distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub_vectors
            ),
            name=name,
            replace=True,
        )
        if previous is not None and previous.name != name:
            table.drop_index(previous.name)
        return f"ivf_pq(vector, {partitions} partitions)"

    def replace_source(
        self, source_key: str, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray
    ) -> IndexWrite:
        import pyarrow as pa

        where = f"source_key = {_check_keys([source_key])}"
        table = self._table(vectors.shape[1] if len(rows) else None)
        if table is None:
            return IndexWrite(0, 0)
        if not rows:
            before = table.count_rows(where)
            table.delete(where)
            return IndexWrite(0, before)
        stored = int(table.schema.field("vector").type.list_size)
        if stored != vectors.shape[1]:
            raise ValueError(
                f"the moments index holds {stored}-dimensional vectors, these are "
                f"{vectors.shape[1]}: point MEDIA_ASSETS_INDEX_URI at a new index, or switch back "
                "to the model that built this one"
            )
        types = _types()
        add_missing_columns(table, [pa.field(n, types[t]) for n, t in MOMENT_FIELDS])
        columns = {name: [row.get(name) for row in rows] for name, _ in MOMENT_FIELDS}
        columns["vector"] = list(np.asarray(vectors, dtype=np.float32))
        result = (
            table.merge_insert(["source_key", "bucket"])
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(where)
            .execute(pa.Table.from_pydict(columns, schema=table.schema))
        )
        self.update_indices(table)
        return IndexWrite(len(rows), int(getattr(result, "num_deleted_rows", 0) or 0))

    def delete_sources(self, source_keys: Sequence[str]) -> int:
        if not source_keys:
            return 0
        where = f"source_key IN ({_check_keys(list(source_keys))})"
        table = self._table()
        if table is None:
            return 0
        count = table.count_rows(where)
        table.delete(where)
        return count

    def _columns(self, table: Any, columns: Columns) -> list[str]:
        """The key and those of ``columns`` the table has (one written before a column was
        added lacks it until its next write); all without them."""
        names = [*(n for n, _ in MOMENT_FIELDS), "vector"] if columns is None else columns
        pinned = (_READING.get() or {}).get(self.location)
        have = pinned[1] if pinned and pinned[0] is table else frozenset(table.schema.names)
        return [n for n in dict.fromkeys([*KEY_COLUMNS, *names]) if n in have]

    def _select(self, table: Any, query: Any, columns: Columns, score: str | None = None) -> Any:
        """A search reading the key, ``columns`` and its row id (for ``complete``)."""
        names = self._columns(table, columns)
        return query.select([*names, score] if score else names).with_row_id(True)

    @staticmethod
    def _matches(found: pa.Table, score: str | None) -> list[Candidate]:
        matrix = None
        if "vector" in found.column_names:
            # Vectors as one array: to_list() would make 384 Python floats of each.
            vectors = found.column("vector").combine_chunks()
            matrix = vectors.flatten().to_numpy().reshape(len(found), vectors.type.list_size)
        scores = found.column(score).to_pylist() if score else [0.0] * len(found)
        refs = found.column("_rowid").to_pylist() if "_rowid" in found.column_names else None
        rows = found.drop_columns(
            [c for c in found.column_names if c.startswith("_") or c == "vector"]
        )
        return [
            Candidate(
                row,
                None if matrix is None else matrix[i],
                float(scores[i]),
                None if refs is None else refs[i],
            )
            for i, row in enumerate(rows.to_pylist())
        ]

    def text_matches(
        self, field: TextField, text: str, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        table = self._reader()
        if table is None or not text.strip():
            return []
        if field == "on_screen" and any(i.columns == ["on_screen"] for i in table.list_indices()):
            from lancedb.query import MatchQuery

            # A large table: its words, each within one misread letter (trigrams of common
            # words match most of a million rows: 0.1-2 s a query at 1M, against ~10 ms).
            query = table.search(MatchQuery(text.lower(), "on_screen", fuzziness=1))
        else:
            query = table.search(text, query_type="fts", fts_columns=TEXT_COLUMNS[field])
        query = self._select(table, query.limit(limit), columns, "_score")
        return self._matches(query.to_arrow(), "_score")

    def vector_matches(
        self, vector: np.ndarray, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        table = self._reader()
        if table is None:
            return []
        query = (
            table.search(np.asarray(vector, dtype=np.float32), query_type="vector")
            .distance_type("cosine")
            .limit(limit)
        )
        # Used only where the vector index is (ann_min_rows): an exact search ignores them.
        query = query.nprobes(self.nprobes).refine_factor(self.refine_factor)
        matches = self._matches(
            self._select(table, query, columns, "_distance").to_arrow(), "_distance"
        )
        # LanceDB's cosine distance is 1 - cosine similarity.
        return [replace(m, score=1.0 - m.score) for m in matches]

    def window(self, source_key: str, first: int, last: int) -> list[Candidate]:
        table = self._table()
        if table is None or last < first:
            return []
        return self.windows([(source_key, first, last)])

    def windows(
        self,
        ranges: Sequence[tuple[str, int, int]],
        columns: Columns = None,
        anchors: Mapping[tuple[str, int], Any] | None = None,
    ) -> list[Candidate]:
        ranges = [(key, max(int(first), 0), int(last)) for key, first, last in ranges]
        ranges = [r for r in ranges if r[2] >= r[1]]
        table = self._reader() if ranges else None
        if table is None:
            return []
        found = self._beside(table, ranges, columns, anchors or {})
        missing = [(k, b, b) for k, f, last in ranges for b in range(f, last + 1)]
        missing = [r for r in missing if r[:2] not in found]
        return [*found.values(), *self._where(table, _merged(missing), columns)]

    def _beside(
        self,
        table: Any,
        ranges: Sequence[tuple[str, int, int]],
        columns: Columns,
        anchors: Mapping[tuple[str, int], Any],
    ) -> dict[tuple[str, int], Candidate]:
        """The windows' rows found by row id, where their anchors' ids say they are.

        A video's buckets are written in order, so bucket ``b`` most often lies ``b - a`` rows
        past bucket ``a``: a take of those ids reads a few pages where a filter over the table
        searches its indexes (2-8x slower at 1M rows, here). Rows that are not where expected (a
        video rewritten out of order, split between files, or no such bucket) are left to
        ``_where``."""
        near: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for (key, bucket), ref in anchors.items():
            if ref is not None:
                near[key].append((bucket, int(ref)))
        guessed = set()
        for key, first, last in ranges:
            for b in range(first, last + 1) if near[key] else ():
                bucket, ref = min(near[key], key=lambda a: abs(a[0] - b))
                if ref + b - bucket >= 0:
                    guessed.add(ref + b - bucket)
        if not guessed:
            return {}
        taken = table.take_row_ids(sorted(guessed)).select(self._columns(table, columns))
        taken = taken.with_row_id()
        wanted = {(k, b) for k, f, last in ranges for b in range(f, last + 1)}
        return {m.key: m for m in self._matches(taken.to_arrow(), None) if m.key in wanted}

    def _where(
        self, table: Any, ranges: Sequence[tuple[str, int, int]], columns: Columns
    ) -> list[Candidate]:
        # One filter per bucket range, for all the videos that ask for it: the indexes answer
        # ``source_key IN (..) AND bucket`` in a range (3-10 ms at 1M rows); an OR of ranges
        # that differ is answered by scanning, through the whole table when fewer rows than
        # asked for exist (a window past a video's end: 0.1-0.5 s).
        by_range: dict[tuple[int, int], list[str]] = defaultdict(list)
        for key, first, last in ranges:
            by_range[(first, last)].append(key)
        found = []
        for (first, last), keys in by_range.items():
            where = (
                f"source_key IN ({_check_keys(keys)}) AND bucket >= {first} AND bucket <= {last}"
            )
            query = table.search().where(where).limit(len(keys) * (last - first + 1))
            found += self._matches(self._select(table, query, columns).to_arrow(), None)
        return found

    def complete(self, found: Sequence[Candidate], columns: Sequence[str]) -> list[Candidate]:
        todo = [c for c in found if c.lacks(columns)]
        table = self._reader() if todo else None
        if table is None:
            return list(found)
        read = list(dict.fromkeys(name for c in todo for name in c.lacks(columns)))
        more: dict[tuple[str, int], Candidate] = {}
        refs = [c.ref for c in todo if c.ref is not None]
        if refs:
            # By row id: the rows' own pages, not a filter over the table.
            taken = table.take_row_ids(refs).select(self._columns(table, read))
            taken = taken.to_arrow()
            more = {m.key: m for m in self._matches(taken, None)}
        # A row id is a position, which compaction changes: what it no longer finds, by key.
        if missing := [(k, b, b) for k, b in (c.key for c in todo) if (k, b) not in more]:
            more |= {m.key: m for m in self._where(table, _merged(missing), read)}
        return [c.with_columns(more[c.key]) if c.key in more else c for c in found]

    def rows(self, source_key: str | None = None) -> list[dict[str, Any]]:
        table = self._table()
        if table is None:
            return []
        count = table.count_rows()
        if count == 0:
            return []
        query = table.search().limit(count)
        if source_key is not None:
            query = query.where(f"source_key = {_check_keys([source_key])}")
        return [{k: v for k, v in r.items() if k != "vector"} for r in query.to_list()]


class WeaviateMomentsIndex(WeaviateConnection, MomentsIndex):
    """A Weaviate collection of buckets beside the chunks' (same server), object UUIDs from
    ``source_key/bucket`` so writing a bucket again is an upsert.

    Weaviate's BM25 neither stems ``said_terms`` nor ranks quite as LanceDB does; candidates are
    scored again by the query code either way. ``on_screen_terms`` uses its trigram tokenizer.
    """

    kind: ClassVar[str] = "weaviate"
    collection: str = "Moments"

    @property
    def location(self) -> str:
        return f"{self.url}#{self.collection}"

    def _properties(self) -> list[Any]:
        from weaviate.classes.config import DataType, Property, Tokenization

        types = {
            "string": DataType.TEXT,
            "int64": DataType.INT,
            "double": DataType.NUMBER,
            "list<string>": DataType.TEXT_ARRAY,
        }
        tokenization = {
            "said_terms": Tokenization.WORD,
            "on_screen_terms": Tokenization.TRIGRAM,
            "speaker_names": Tokenization.LOWERCASE,
            "entity_terms": Tokenization.WORD,
        }
        return [
            Property(
                name=name,
                data_type=types[kind],
                # keys, links and annotations are matched exactly or not at all
                tokenization=tokenization.get(name, Tokenization.FIELD)
                if kind in ("string", "list<string>")
                else None,
                index_searchable=(name in tokenization)
                if kind in ("string", "list<string>")
                else None,
            )
            for name, kind in MOMENT_FIELDS
        ]

    @staticmethod
    def _uuid(source_key: str, bucket: int) -> str:
        from weaviate.util import generate_uuid5

        return str(generate_uuid5(f"{source_key}/{bucket}"))

    def replace_source(
        self, source_key: str, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray
    ) -> IndexWrite:
        from weaviate.classes.query import Filter

        _check_keys([source_key])
        collection = self._collection(create=bool(rows))
        if collection is None:
            return IndexWrite(0, 0)
        with collection.batch.fixed_size(batch_size=self.batch_size) as batch:
            for row, vector in zip(rows, vectors, strict=True):
                batch.add_object(
                    properties={name: row.get(name) for name, _ in MOMENT_FIELDS},
                    uuid=self._uuid(source_key, int(row["bucket"])),
                    vector=np.asarray(vector, dtype=np.float32).tolist(),
                )
        if failed := collection.batch.failed_objects:
            raise RuntimeError(
                f"Weaviate rejected {len(failed)} of {len(rows)} buckets; "
                f"first: {failed[0].message}"
            )
        # Rows hold every bucket from 0: the stale ones are those past the new last bucket.
        stale = Filter.by_property("source_key").equal(source_key)
        if rows:
            stale = stale & Filter.by_property("bucket").greater_than(
                max(int(r["bucket"]) for r in rows)
            )
        deleted = collection.data.delete_many(where=stale)
        return IndexWrite(len(rows), int(deleted.successful))

    @staticmethod
    def _matches(found: Any, score: Any) -> list[Candidate]:
        return [Candidate(*hit) for hit in found_objects(found, score)]

    def text_matches(
        self, field: TextField, text: str, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None or not text.strip():
            return []
        found = collection.query.bm25(
            query=text,
            query_properties=[TEXT_COLUMNS[field]],
            limit=limit,
            include_vector=True,
            return_metadata=MetadataQuery(score=True),
        )
        return self._matches(found, lambda obj: float(obj.metadata.score or 0.0))

    def vector_matches(
        self, vector: np.ndarray, *, limit: int, columns: Columns = None
    ) -> list[Candidate]:
        from weaviate.classes.query import MetadataQuery

        collection = self._collection()
        if collection is None:
            return []
        found = collection.query.near_vector(
            near_vector=np.asarray(vector).tolist(),
            limit=limit,
            include_vector=True,
            return_metadata=MetadataQuery(distance=True),
        )
        # Weaviate's default distance, cosine: 1 - cosine similarity.
        return self._matches(found, lambda obj: 1.0 - float(obj.metadata.distance or 0.0))

    def window(self, source_key: str, first: int, last: int) -> list[Candidate]:
        from weaviate.classes.query import Filter

        _check_keys([source_key])
        collection = self._collection()
        if collection is None or last < first:
            return []
        found = collection.query.fetch_objects(
            filters=Filter.by_property("source_key").equal(source_key)
            & Filter.by_property("bucket").greater_or_equal(int(first))
            & Filter.by_property("bucket").less_or_equal(int(last)),
            limit=last - first + 1,
            include_vector=True,
        )
        return self._matches(found, lambda obj: 0.0)
