"""The moments index past its vector-index threshold: the indexes are built by the index itself,
and upserts by (source_key, bucket), deletes, windows and both kinds of search stay exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resources.moments_index import MOMENT_FIELDS, VECTOR_INDEX, LanceDBMomentsIndex

DIMENSION = 16
BUCKETS = 300  # per video
SLIDES = ["Harvest", "Beekeeping", "Extraction", "Swarming"]


def key(n: int) -> str:
    return f"talk-{n:016x}"


def rows(n: int, buckets: int = BUCKETS, said: str = "") -> list[dict[str, Any]]:
    out = []
    for b in range(buckets):
        sentence = said or f"sentence {n} {b // 5} about topic{(n * 7 + b // 5) % 40}"
        row: dict[str, Any] = {name: None for name, _ in MOMENT_FIELDS}
        row.update(
            source_key=key(n),
            bucket=b,
            source_url=f"https://videos.example.com/{n}",
            start_s=float(b),
            end_s=float(b + 1),
            context=sentence,
            said_terms=sentence,
            on_screen=f"{SLIDES[n % len(SLIDES)]} Overview",
            on_screen_terms=f"{SLIDES[n % len(SLIDES)].lower()} overview",
            speaker_names=f"speaker{n % 3}",
            speakers=[f"speaker{n % 3}"],
            annotations="{}",
        )
        out.append(row)
    return out


def vectors(n: int, buckets: int = BUCKETS) -> np.ndarray:
    v = np.random.default_rng(n).normal(size=(buckets, DIMENSION)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vector_indexes(index: LanceDBMomentsIndex) -> list[str]:
    table = index.open_table()
    return [i.name for i in table.list_indices() if i.columns == ["vector"]]


@pytest.fixture
def index(tmp_path: Path) -> LanceDBMomentsIndex:
    # IVF_PQ needs a few hundred rows to train its codebooks: the threshold is set just above,
    # and partitions are made small, as they would be for a large table; each video's write is
    # reindexed, as a large table's is once enough rows are new.
    return LanceDBMomentsIndex(
        uri=str(tmp_path / "index"),
        ann_min_rows=2 * BUCKETS,
        rows_per_partition=25,
        reindex_rows=BUCKETS,
    )


def test_the_vector_index_is_built_past_the_threshold_and_retrained_as_the_table_grows(
    index: LanceDBMomentsIndex,
) -> None:
    index.replace_source(key(0), rows(0), vectors(0))
    assert vector_indexes(index) == []  # 300 rows: an exact search
    index.replace_source(key(1), rows(1), vectors(1))
    assert vector_indexes(index) == [f"{VECTOR_INDEX}_p24"]  # 600 rows / 25 a partition
    for n in range(2, 7):
        index.replace_source(key(n), rows(n), vectors(n))
    # 2,100 rows: still the 24 partitions, the new rows added to them.
    assert vector_indexes(index) == [f"{VECTOR_INDEX}_p24"]
    stats = index.open_table().index_stats(f"{VECTOR_INDEX}_p24")
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (2100, 0)
    index.replace_source(key(7), rows(7), vectors(7))
    # 2,400 rows, 4 times those it was trained on: trained again, the old index gone.
    assert vector_indexes(index) == [f"{VECTOR_INDEX}_p96"]


def test_upserts_by_source_and_bucket_stay_exact_with_every_index(
    index: LanceDBMomentsIndex,
) -> None:
    for n in range(3):
        index.replace_source(key(n), rows(n), vectors(n))
    assert vector_indexes(index)  # 900 rows: indexed
    # Video 1 again, shorter and with new words and vectors: updated in place, the rest deleted.
    new = vectors(101, 250)
    write = index.replace_source(key(1), rows(1, 250, said="completely rewritten words"), new)
    assert (write.upserted, write.deleted) == (250, 50)
    assert sorted(int(r["bucket"]) for r in index.rows(key(1))) == list(range(250))
    assert index.open_table().count_rows() == 850
    # The new words are found, the old ones are gone; other videos are untouched.
    found = index.text_matches("said", "rewritten", limit=300)
    assert {c.key for c in found} == {(key(1), b) for b in range(250)}
    assert not [
        c for c in index.text_matches("said", "topic7", limit=300) if c.row["source_key"] == key(1)
    ]
    assert len(index.rows(key(0))) == len(index.rows(key(2))) == BUCKETS
    # Each new vector finds its own bucket first, through the index (refined on full vectors).
    for b in (0, 123, 249):
        best = index.vector_matches(new[b], limit=5)[0]
        assert best.key == (key(1), b) and best.score == pytest.approx(1.0, abs=1e-5)
    assert index.delete_sources([key(1)]) == 250
    assert index.vector_matches(new[123], limit=5)[0].row["source_key"] != key(1)


def test_windows_of_several_videos_come_in_one_call(index: LanceDBMomentsIndex) -> None:
    for n in range(3):
        index.replace_source(key(n), rows(n), vectors(n))
    found = index.windows([(key(0), -3, 2), (key(2), 298, 305), (key(1), 10, 9)])
    assert sorted(c.key for c in found) == [
        *[(key(0), b) for b in range(3)],
        *[(key(2), b) for b in (298, 299)],
    ]
    by_key = {c.key: c for c in found}
    assert np.allclose(by_key[(key(2), 299)].vector, vectors(2)[299])


def test_rows_written_since_the_last_reindex_are_found_before_it(tmp_path: Path) -> None:
    index = LanceDBMomentsIndex(
        uri=str(tmp_path / "index"), ann_min_rows=600, rows_per_partition=25, reindex_rows=600
    )
    for n in range(3):
        index.replace_source(key(n), rows(n), vectors(n))
    new = vectors(100)
    index.replace_source(key(0), rows(0, said="words written later"), new)
    # 300 rows are new: under reindex_rows, so they are not indexed yet...
    assert index.unindexed_rows(index.open_table()) == 300
    # ...and still found, by words and by vector, while the rows it replaced are not.
    found = index.text_matches("said", "later", limit=400)
    assert {c.key for c in found} == {(key(0), b) for b in range(BUCKETS)}
    assert not [c for c in index.text_matches("said", "topic0", limit=400) if c.key[0] == key(0)]
    best = index.vector_matches(new[42], limit=3)[0]
    assert best.key == (key(0), 42) and best.score == pytest.approx(1.0, abs=1e-5)
    assert len(index.rows(key(0))) == BUCKETS and index.open_table().count_rows() == 900
    # The next write brings them to exactly reindex_rows: every row is indexed again.
    index.replace_source(key(1), rows(1), vectors(1))
    stats = index.open_table().index_stats("said_terms_idx")
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (900, 0)
    assert index.unindexed_rows(index.open_table()) == 0
    assert {c.key for c in index.text_matches("said", "later", limit=400)} == {
        (key(0), b) for b in range(BUCKETS)
    }


def test_a_large_table_finds_text_on_screen_by_its_words_despite_a_misread_letter(
    index: LanceDBMomentsIndex,
) -> None:
    index.replace_source(key(0), rows(0), vectors(0))
    index.replace_source(key(1), rows(1), vectors(1))
    columns = [i.columns for i in index.open_table().list_indices()]
    assert ["on_screen"] in columns and ["bucket"] in columns and ["source_key"] in columns
    # as find_moments asks: normalised (lower case)
    found = index.text_matches("on_screen", "beekeepinq", limit=BUCKETS)
    assert {c.key[0] for c in found} == {key(1)} and len(found) == BUCKETS
