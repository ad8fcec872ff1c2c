"""Stage outputs are checked against their JSON Schemas; a violation fails that URL alone."""

from pathlib import Path

import dagster as dg

import media_assets.web.chunk as chunk_module
from media_assets import deadletters
from media_assets.contracts import violation
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from partitions.keys import partition_key
from tests.conftest import needs_chromium
from tests.test_end_to_end import demo_manifest

CHUNK = {
    "chunk_id": "0123456789abcdef",
    "source_key": "fedcba9876543210",
    "source_url": "https://example.com/a",
    "kind": "web",
    "text": "Some text.",
    "deep_link": "https://example.com/a#s",
    "content_sha256": "0" * 64,
    "pipeline_version": "0.1.0",
    "speakers": [],
    "section": None,
}


def test_conforming_and_violating_records() -> None:
    record = {"status": "ok", "source_url": "https://example.com/a", "chunks": [CHUNK]}
    assert violation("web_chunks", record) is None
    broken = {**record, "chunks": [{**CHUNK, "text": ""}]}
    assert "chunks/0/text" in violation("web_chunks", broken)
    assert "kind" in violation("web_chunks", {**record, "chunks": [{**CHUNK, "kind": "pdf"}]})
    assert violation("no_such_asset", {"anything": 1}) is None


@needs_chromium
def test_a_violation_dead_letters_that_url_and_the_rest_materialize(
    site: SiteServer, tmp_path: Path, env: dict[str, str], instance: dg.DagsterInstance, monkeypatch
) -> None:
    real = chunk_module.chunk_page
    broken_url = f"{site.base_url}/app/index.html"

    def chunk_page_with_a_bug(*args, **kwargs):
        chunks = real(*args, **kwargs)
        if kwargs["source_url"] == broken_url:
            chunks[0].text = ""  # an empty chunk breaks chunk.json
        return chunks

    monkeypatch.setattr("media_assets.assets.web.chunk_page", chunk_page_with_a_bug)
    defs = build_definitions(env)
    report = ingest(demo_manifest(site, tmp_path), defs, instance)
    key = partition_key(broken_url)
    assert report.ok and key in report.failed_partitions
    (letter,) = deadletters.for_partition(defs.resources["object_store"], key)
    assert letter.asset == "web_chunks" and letter.error_class == "schema_violation"
    assert "chunks/0/text" in letter.message
    assert key in instance.get_materialized_partitions(dg.AssetKey("page_elements"))
    assert key not in instance.get_materialized_partitions(dg.AssetKey("web_chunks"))
    assert len(instance.get_materialized_partitions(dg.AssetKey("web_index_rows"))) == 4
