"""Stage outputs are checked against their JSON Schemas; a violation fails that URL alone and
shows, with its URL and field, on the asset's ``schema`` check."""

from pathlib import Path

import dagster as dg

import media_assets.web.chunk as chunk_module
from media_assets import deadletters
from media_assets.assets import CHAINS
from media_assets.assets.common import SCHEMA_CHECK
from media_assets.contracts import violation
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from partitions.keys import partition_key
from tests.helpers import demo_manifest, needs_chromium

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
    broken = violation("web_chunks", {**record, "chunks": [{**CHUNK, "text": ""}]})
    assert broken is not None and broken.field == "chunks/0/text"
    assert str(broken).startswith("schema web_chunks.json violated at chunks/0/text: ")
    wrong_kind = violation("web_chunks", {**record, "chunks": [{**CHUNK, "kind": "pdf"}]})
    assert wrong_kind is not None and wrong_kind.field == "chunks/0/kind"
    assert violation("no_such_asset", {"anything": 1}) is None


def test_every_url_asset_has_a_schema_check(env: dict[str, str]) -> None:
    assets = {a.key: a for a in build_definitions(env).assets}  # type: ignore[union-attr]
    for stage in [s for chain in CHAINS.values() for s in chain]:
        checks = assets[dg.AssetKey(stage)].check_keys
        assert dg.AssetCheckKey(dg.AssetKey(stage), SCHEMA_CHECK) in checks, stage


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

    monkeypatch.setattr(chunk_module, "chunk_page", chunk_page_with_a_bug)
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

    # The Checks tab: the batch with the bad URL failed the check, naming the URL and field;
    # the good URLs, run again without it, pass.
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("web_chunks"), SCHEMA_CHECK), limit=20
    )
    # Newest first; runs that stopped before web_chunks leave only a planned record.
    evaluations = [
        e for r in history if r.event and (e := r.event.asset_check_evaluation) is not None
    ]
    failed = [e for e in evaluations if not e.passed]
    assert len(failed) == 1
    violations = failed[0].metadata["violations"].value
    assert violations == [
        {
            "url": broken_url,
            "partition": key,
            "field": "chunks/0/text",
            "problem": letter.message,
        }
    ]
    assert f"{broken_url} at chunks/0/text" in str(failed[0].description)
    assert failed[0].metadata["urls_conforming"].value == 4  # its batch's good URLs
    rerun = evaluations[: evaluations.index(failed[0])]
    assert rerun and all(e.passed and e.metadata["violations"].value == [] for e in rerun)
    assert sum(e.metadata["urls_conforming"].value for e in rerun) == 4
    # Stages the bad record never reached, and those it passed, report no violation.
    for stage in ("rendered_page", "page_elements", "web_index_rows"):
        record = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey(stage), SCHEMA_CHECK)
        )
        assert record and record.event and record.event.asset_check_evaluation.passed, stage
