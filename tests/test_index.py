"""The VectorIndex contract. Every backend runs the same suite; a backend that needs a server
this machine cannot run is skipped with the reason."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from resources import index_from, object_store_from
from resources.embedder import SentenceTransformerEmbedder
from resources.index import FTS_OPTIONS, LanceDBIndex, VectorIndex
from resources.weaviate_index import WeaviateIndex

KEY_A, KEY_B = "a" * 16, "b" * 16


@pytest.fixture(params=["lancedb", "lancedb-on-s3", "weaviate"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "lancedb":
        yield LanceDBIndex(uri=str(tmp_path / "index"))
    elif request.param == "lancedb-on-s3":
        env = request.getfixturevalue("s3_env")
        object_store_from(env, tmp_path).put("probe", b"")  # creates the bucket
        yield index_from(
            {
                **env,
                "MEDIA_ASSETS_INDEX_URI": f"s3://{env['MEDIA_ASSETS_S3_BUCKET']}/"
                f"{env['MEDIA_ASSETS_S3_PREFIX']}/index",
            },
            tmp_path,
        )
    elif request.param == "weaviate":
        url = os.environ.get("WEAVIATE_URL")
        if not url:
            pytest.skip("WEAVIATE_URL not set: no Weaviate server can be installed on this machine")
        weaviate_index = WeaviateIndex(url=url, collection=f"Test{uuid.uuid4().hex[:12]}")
        yield weaviate_index
        weaviate_index._connect().collections.delete(weaviate_index.collection)


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def rows_for(key: str, texts: dict[str, str]) -> list[dict]:
    return [
        {
            "source_key": key,
            "chunk_id": cid,
            "source_url": f"https://example.com/{key}",
            "kind": "web",
            "title": "t",
            "section": None,
            "text": text,
            "deep_link": f"https://example.com/{key}#{cid}",
            "start_s": None,
            "end_s": None,
            "speakers": [],
            "content_sha256": cid,
            "pipeline_version": "test",
            "embedding_model": "m",
        }
        for cid, text in texts.items()
    ]


def write(
    index: VectorIndex, embedder: SentenceTransformerEmbedder, key: str, texts: dict[str, str]
):
    rows = rows_for(key, texts)
    return index.replace_sources(rows, embedder.embed_documents([r["text"] for r in rows]), [key])


def test_upsert_by_composite_key_and_tombstone_stale_rows(index: VectorIndex, embedder) -> None:
    write(index, embedder, KEY_A, {"c1": "bees cluster in winter", "c2": "honey stores matter"})
    write(index, embedder, KEY_B, {"c1": "a lantern with a red night mode"})
    result = write(index, embedder, KEY_A, {"c1": "bees cluster in winter", "c3": "mice in hives"})
    assert result.upserted == 2 and result.deleted == 1
    assert sorted(r["chunk_id"] for r in index.rows(KEY_A)) == ["c1", "c3"]
    assert [r["chunk_id"] for r in index.rows(KEY_B)] == ["c1"]  # same chunk id, other source
    assert len(index.rows()) == 3


def test_empty_replacement_and_delete_remove_a_source(index: VectorIndex, embedder) -> None:
    write(index, embedder, KEY_A, {"c1": "one"})
    write(index, embedder, KEY_B, {"c1": "two", "c2": "three"})
    assert index.replace_sources([], np.zeros((0, 0), dtype=np.float32), [KEY_A]).deleted == 1
    assert index.delete_sources([KEY_B]) == 2
    assert index.rows() == []


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_search_modes_find_the_right_chunk(index: VectorIndex, embedder, mode: str) -> None:
    write(
        index,
        embedder,
        KEY_A,
        {
            "c1": "Honeybees shiver to keep the winter cluster warm.",
            "c2": "Sourdough starter doubles within six hours.",
        },
    )
    write(index, embedder, KEY_B, {"c1": "The harbour swing bridge reopened to cyclists."})
    query = "winter cluster honeybees"
    hits = index.search(query, embedder.embed_query(query), k=2, mode=mode)  # type: ignore[arg-type]
    assert hits[0].row["source_key"] == KEY_A and hits[0].row["chunk_id"] == "c1"
    assert "vector" not in hits[0].row
    assert hits[0].score >= hits[-1].score
    # Relevance on one scale for every query and backend: an unrelated query scores lower.
    assert all(0.0 <= hit.score <= 1.0 for hit in hits)
    other = "quarterly corporate tax filing"
    unrelated = index.search(other, embedder.embed_query(other), k=1, mode=mode)  # type: ignore[arg-type]
    assert not unrelated or unrelated[0].score < hits[0].score - 0.2
    only_video = index.search(query, embedder.embed_query(query), kind="video", mode=mode)  # type: ignore[arg-type]
    assert only_video == []


def test_keys_are_validated_before_they_reach_a_filter(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="partition keys"):
        index.delete_sources(["x' OR '1'='1"])


def test_vectors_of_another_length_are_refused_naming_both(index: VectorIndex, embedder) -> None:
    assert index.dimension() is None
    write(index, embedder, KEY_A, {"c1": "bees"})
    assert index.dimension() == 384
    index.check_dimension(384, "all-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="holds 384-dimensional vectors but cohere:x makes 1024"):
        index.check_dimension(1024, "cohere:x")


def test_lancedb_text_index_takes_every_write_and_follows_its_settings(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = LanceDBIndex(uri=str(tmp_path / "index"))
    write(index, embedder, KEY_A, {"c1": "a red lantern"})
    write(index, embedder, KEY_B, {"c1": "lanterns along the harbour"})
    table = index._table()
    (text_index,) = [i for i in table.list_indices() if i.columns == ["text"]]
    # The second write's rows are in the index, scored with the same statistics as the first's.
    assert table.index_stats(text_index.name).num_unindexed_rows == 0

    def found(query: str) -> set[str]:
        return {hit.row["source_key"] for hit in index.search(query, None, k=5, mode="text")}

    assert found("lanterns") == {KEY_A, KEY_B}  # stemmed: lantern = lanterns
    monkeypatch.setitem(FTS_OPTIONS, "stem", False)
    write(index, embedder, KEY_A, {"c1": "a red lantern"})  # the next write rebuilds the index
    assert found("lanterns") == {KEY_B}
