"""The web chain end to end through Dagster: demo site -> partitions -> index -> search.

One ingest of the demo site is shared by the module (it is the expensive part); each test checks
one behaviour of it. Then the pages change and the module moves on: a forced re-run, a refresh,
and finally the later stages run alone over a URL that failed. Tests run in file order; each
phase's tests say which state they need (``Phases``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import IngestReport, ingest
from media_assets.search import search
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import Phases, demo_manifest, needs_chromium

pytestmark = needs_chromium
WEB_STAGES = ("rendered_page", "page_elements", "web_chunks", "web_index_rows")
INGESTED, CHANGED, STAGES_ALONE = "ingested", "pages changed, re-run", "later stages run alone"


@dataclass
class DemoWeb:
    site: SiteServer
    site_dir: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    manifest: Path
    report: IngestReport
    phases: Phases = field(default_factory=lambda: Phases(INGESTED))

    def key(self, path: str) -> str:
        return partition_key(f"{self.site.base_url}{path}")

    @property
    def keys(self) -> list[str]:
        return report_keys(self.manifest)

    @property
    def bad(self) -> set[str]:
        return {self.key("/private/internal-notes.html"), self.key("/missing-page.html")}


@pytest.fixture(scope="module")
def demo(
    module_site: SiteServer,
    module_site_dir: Path,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> DemoWeb:
    defs = build_definitions(module_env)
    manifest = demo_manifest(module_site, module_tmp)
    report = ingest(manifest, defs, module_instance)
    return DemoWeb(module_site, module_site_dir, defs, module_instance, manifest, report)


@pytest.fixture
def ingested(demo: DemoWeb) -> DemoWeb:
    demo.phases.expect(INGESTED)
    return demo


def test_one_batched_run_fails_on_bad_urls_and_the_good_ones_run_again_alone(
    ingested: DemoWeb,
) -> None:
    # One batched run for seven URLs fails (two bad URLs); the five good ones run again alone.
    report = ingested.report
    assert report.ok and [ok for _, ok in report.runs] == [False, True]
    assert report.statuses["web"] == Counter({"indexed": 5, "blocked_by_robots": 1, "failed": 1})
    assert report.failed_partitions == ingested.bad


def test_catalog_has_good_urls_at_every_stage_and_bad_ones_nowhere(ingested: DemoWeb) -> None:
    for asset in WEB_STAGES:
        materialized = ingested.instance.get_materialized_partitions(dg.AssetKey(asset))
        assert materialized == set(ingested.keys) - ingested.bad, asset


def test_bad_urls_are_dead_lettered_at_the_render_with_their_class(ingested: DemoWeb) -> None:
    store = ingested.defs.resources["object_store"]
    letters = {d.partition_key: d for d in deadletters.list_all(store)}
    assert set(letters) == ingested.bad
    assert {d.error_class for d in letters.values()} == {"robots_disallow", "http_client_error"}
    assert all(d.asset == "rendered_page" and d.url for d in letters.values())


def test_nothing_materialized_or_failed_for_good_is_run_again(ingested: DemoWeb) -> None:
    assert ingest(ingested.manifest, ingested.defs, ingested.instance).runs == []


def test_search_lands_on_the_section_with_its_deep_link(ingested: DemoWeb) -> None:
    index, embedder = ingested.defs.resources["vector_index"], ingested.defs.resources["embedder"]
    docs_url = f"{ingested.site.base_url}/docs/getting-started.html"
    hits = search("Pour exactly 500 millilitres of water through the funnel", index, embedder, k=3)
    assert hits[0].source_key == partition_key(docs_url)
    assert hits[0].deep_link == f"{docs_url}#calibration"
    assert hits[0].section == "Getting started with the RG-5 rain gauge > Calibration"


def test_a_table_cell_is_found_with_its_section_link(ingested: DemoWeb) -> None:
    index, embedder = ingested.defs.resources["vector_index"], ingested.defs.resources["embedder"]
    table_hit = search("lantern battery capacity mAh", index, embedder, k=1, kind="web")[0]
    assert "5200 mAh" in table_hit.snippet and table_hit.deep_link.endswith("#specifications")


# --- the pages change: a forced re-run, then a refresh -------------------------------------


@dataclass
class Changed:
    docs_key: str
    news_key: str
    docs_rows_before: dict[str, dict[str, Any]]
    news_rows_before: list[dict[str, Any]]
    others_before: dict[str, int]  # rows per untouched page
    requests_before: int
    rerun: IngestReport
    requests_after_rerun: int
    work_on_rerun: dict[str, str]  # asset -> how the docs page's artifact was made
    refreshed: IngestReport


@pytest.fixture(scope="module")
def changed(demo: DemoWeb) -> Changed:
    """Calibration edited and troubleshooting cut from the docs page, the news page deleted;
    then a forced re-run (nothing changed for Dagster's inputs) and a refresh."""
    index = demo.defs.resources["vector_index"]
    docs_key = demo.key("/docs/getting-started.html")
    news_key = demo.key("/news/harbour-bridge.html")
    docs_rows_before = {r["chunk_id"]: r for r in index.rows(docs_key)}
    news_rows_before = index.rows(news_key)
    page = demo.site_dir / "docs" / "getting-started.html"
    html = page.read_text().replace("should count 127 tips", "should count 125 tips")
    html = html[: html.index('<h2 id="troubleshooting">')] + "</article></main></body></html>"
    page.write_text(html)
    (demo.site_dir / "news" / "harbour-bridge.html").unlink()  # the page is gone: 404 from now on
    demo.phases.advance(CHANGED)
    others = {k: len(index.rows(k)) for k in demo.keys if k not in (docs_key, news_key)}

    requests_before = sum(demo.site.requests.values())
    rerun = ingest(demo.manifest, demo.defs, demo.instance, force=True)
    requests_after_rerun = sum(demo.site.requests.values())
    work = {
        asset: metadata_of(demo.instance, asset, docs_key)["work"]
        for asset in ("rendered_page", "page_elements", "web_chunks", "web_embeddings")
    }
    refreshed = ingest(demo.manifest, demo.defs, demo.instance, refresh=True)
    return Changed(
        docs_key,
        news_key,
        docs_rows_before,
        news_rows_before,
        others,
        requests_before,
        rerun,
        requests_after_rerun,
        work,
        refreshed,
    )


def test_forced_rerun_with_unchanged_inputs_fetches_no_page(changed: Changed) -> None:
    assert changed.rerun.ok
    assert changed.requests_after_rerun == changed.requests_before, "re-run fetched pages"


def test_forced_rerun_reuses_every_stored_artifact(changed: Changed) -> None:
    for asset, work in changed.work_on_rerun.items():
        assert work == "reused stored artifact", asset


def test_refresh_replaces_the_changed_pages_rows_without_duplicates(
    demo: DemoWeb, changed: Changed
) -> None:
    assert changed.refreshed.ok
    after = demo.defs.resources["vector_index"].rows(changed.docs_key)
    after_ids = [r["chunk_id"] for r in after]
    assert len(after_ids) == len(set(after_ids)), "duplicate rows for one chunk"
    assert not any("127 tips" in r["text"] or "Double counts" in r["text"] for r in after)
    assert any("125 tips" in r["text"] for r in after)


def test_refresh_keeps_unchanged_chunks_and_drops_the_cut_section(
    demo: DemoWeb, changed: Changed
) -> None:
    before = changed.docs_rows_before
    after_ids = [r["chunk_id"] for r in demo.defs.resources["vector_index"].rows(changed.docs_key)]
    assert len(after_ids) == len(before) - 1
    unchanged = set(before) & set(after_ids)
    assert len(unchanged) == len(before) - 2  # only calibration changed, troubleshooting went


def test_refresh_leaves_the_other_pages_rows_alone(demo: DemoWeb, changed: Changed) -> None:
    index = demo.defs.resources["vector_index"]
    assert {k: len(index.rows(k)) for k in changed.others_before} == changed.others_before


def test_a_page_that_is_gone_keeps_no_rows(demo: DemoWeb, changed: Changed) -> None:
    assert changed.news_rows_before
    assert demo.defs.resources["vector_index"].rows(changed.news_key) == []
    assert changed.refreshed.statuses["web"]["failed"] == 2


def test_only_the_changed_chunk_is_embedded_again(demo: DemoWeb, changed: Changed) -> None:
    rows = demo.defs.resources["vector_index"].rows(changed.docs_key)
    embeddings = ArtifactStore(
        demo.defs.resources["object_store"], dg.AssetKey("web_embeddings"), {}
    ).read(changed.docs_key)
    assert embeddings["embedded"] == 1 and embeddings["vectors_reused"] == len(rows) - 1


# --- later stages over a URL that failed -----------------------------------------------------


@pytest.fixture(scope="module")
def stages_alone(demo: DemoWeb) -> dict[str, dict[str, Any] | None]:
    """Each stage after the render run on its own for the 404 page, as an operator selecting
    them in the UI would: its record there, per stage. (A whole-chain run never gets this far:
    the batch stops at the stage that failed, so the URL's later stages stay missing.)"""
    key = demo.key("/missing-page.html")
    job = demo.defs.resolve_job_def("web_ingest")
    store = demo.defs.resources["object_store"]
    demo.phases.advance(STAGES_ALONE)
    records = {}
    for asset in ("page_elements", "web_chunks", "web_embeddings", "web_index_rows"):
        job.execute_in_process(
            instance=demo.instance,
            partition_key=key,
            asset_selection=[dg.AssetKey(asset)],
            raise_on_error=False,
        )
        records[asset] = ArtifactStore(store, dg.AssetKey(asset), {}).read_or_none(key)
    return records


def test_a_failed_url_shows_a_skip_naming_the_failed_stage_in_every_later_stage(
    demo: DemoWeb, stages_alone: dict[str, dict[str, Any] | None]
) -> None:
    url = f"{demo.site.base_url}/missing-page.html"
    render = ArtifactStore(
        demo.defs.resources["object_store"], dg.AssetKey("rendered_page"), {}
    ).read(partition_key(url))
    assert render["status"] == "failed" and render["error"]
    for asset, record in stages_alone.items():
        assert record is not None, f"{asset} wrote no record for the failed URL"
        assert record["status"] == "skipped", asset
        assert record["error_class"] == "upstream_failed", asset
        # Named after the stage that failed, not the skip just before it.
        assert record["error"] == f"rendered_page failed: {render['error']}", asset
        assert record["source_url"] == url, asset


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
