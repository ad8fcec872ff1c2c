"""The web chain end to end through Dagster: demo site -> partitions -> index -> search."""

import json
from collections import Counter
from pathlib import Path

import dagster as dg

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from media_assets.manifest import detect_kind
from media_assets.search import search
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.conftest import needs_chromium

pytestmark = needs_chromium
DEMO_MANIFEST = Path(__file__).resolve().parents[1] / "media_assets" / "demo" / "manifest.jsonl"


def demo_manifest(site: SiteServer, tmp_path: Path, kinds: tuple[str, ...] = ("web",)) -> Path:
    """The demo manifest on ``site``, only its entries of ``kinds`` (the web chain's tests leave
    the videos to tests/test_video.py)."""
    lines = DEMO_MANIFEST.read_text().replace("{base}", site.base_url).splitlines()
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines if _kind(json.loads(line)) in kinds))
    return path


def _kind(row: dict[str, object]) -> str:
    return str(row.get("kind") or detect_kind(str(row["url"])))


def test_demo_site_end_to_end_then_changed_and_gone_pages_replace_their_rows(
    site: SiteServer,
    site_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    instance: dg.DagsterInstance,
) -> None:
    defs = build_definitions(env)
    manifest = demo_manifest(site, tmp_path)
    report = ingest(manifest, defs, instance)

    # One batched run for seven URLs fails (two bad URLs); the five good ones run again alone.
    assert report.ok and [ok for _, ok in report.runs] == [False, True]
    assert report.statuses["web"] == Counter({"indexed": 5, "blocked_by_robots": 1, "failed": 1})
    bad = {
        partition_key(f"{site.base_url}/private/internal-notes.html"),
        partition_key(f"{site.base_url}/missing-page.html"),
    }
    assert report.failed_partitions == bad
    # The catalog tells the truth: good URLs materialized at every stage, bad ones not at all.
    for asset in ("rendered_page", "page_elements", "web_chunks", "web_index_rows"):
        materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == set(report_keys(manifest)) - bad, asset
    letters = {d.partition_key: d for d in deadletters.list_all(defs.resources["object_store"])}
    assert set(letters) == bad
    assert {d.error_class for d in letters.values()} == {"robots_disallow", "http_client_error"}
    assert all(d.asset == "rendered_page" and d.url for d in letters.values())
    # Nothing left to do: materialized URLs and URLs that failed for good are not run again.
    assert ingest(manifest, defs, instance).runs == []

    index, embedder = defs.resources["vector_index"], defs.resources["embedder"]
    docs_url = f"{site.base_url}/docs/getting-started.html"
    docs_key = partition_key(docs_url)
    hits = search("Pour exactly 500 millilitres of water through the funnel", index, embedder, k=3)
    assert hits[0].source_key == docs_key
    assert hits[0].deep_link == f"{docs_url}#calibration"
    assert hits[0].section == "Getting started with the RG-5 rain gauge > Calibration"
    table_hit = search("lantern battery capacity mAh", index, embedder, k=1, kind="web")[0]
    assert "5200 mAh" in table_hit.snippet and table_hit.deep_link.endswith("#specifications")

    before = {r["chunk_id"]: r for r in index.rows(docs_key)}
    page = site_dir / "docs" / "getting-started.html"
    html = page.read_text()
    html = html.replace("should count 127 tips", "should count 125 tips")
    html = html[: html.index('<h2 id="troubleshooting">')] + "</article></main></body></html>"
    page.write_text(html)
    news_key = partition_key(f"{site.base_url}/news/harbour-bridge.html")
    assert index.rows(news_key)
    (site_dir / "news" / "harbour-bridge.html").unlink()  # the page is gone: 404 from now on
    others = {k: len(index.rows(k)) for k in report_keys(manifest) if k not in (docs_key, news_key)}

    requests_before = sum(site.requests.values())
    rerun = ingest(manifest, defs, instance, force=True)  # nothing changed for Dagster's inputs
    assert rerun.ok and sum(site.requests.values()) == requests_before, "re-run fetched pages"
    for asset in ("rendered_page", "page_elements", "web_chunks", "web_embeddings"):
        assert metadata_of(instance, asset, docs_key)["work"] == "reused stored artifact", asset

    again = ingest(manifest, defs, instance, refresh=True)
    assert again.ok
    after = index.rows(docs_key)
    after_ids = [r["chunk_id"] for r in after]
    assert len(after_ids) == len(set(after_ids)), "duplicate rows for one chunk"
    assert not any("127 tips" in r["text"] or "Double counts" in r["text"] for r in after)
    assert any("125 tips" in r["text"] for r in after)
    assert len(after) == len(before) - 1
    unchanged = set(before) & set(after_ids)
    assert len(unchanged) == len(before) - 2  # only calibration changed, troubleshooting went
    assert {k: len(index.rows(k)) for k in others} == others
    assert index.rows(news_key) == [], "a page that is gone keeps no rows"
    assert again.statuses["web"]["failed"] == 2

    embeddings = ArtifactStore(
        defs.resources["object_store"], dg.AssetKey("web_embeddings"), {}
    ).read(docs_key)
    assert embeddings["embedded"] == 1 and embeddings["vectors_reused"] == len(after) - 1


def metadata_of(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    """The latest materialization's metadata for one partition, as the UI shows it."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert event and records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def report_keys(manifest: Path) -> list[str]:
    return [partition_key(json.loads(line)["url"]) for line in manifest.read_text().splitlines()]
