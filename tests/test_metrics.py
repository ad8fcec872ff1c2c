"""Prometheus metrics: scrape the endpoint after a batch and read the exposition format back."""

from pathlib import Path

import dagster as dg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from media_assets.metrics import serve_metrics
from tests.helpers import needs_chromium, write_articles

pytestmark = needs_chromium


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_after_a_batch_with_one_bad_url(
    site: SiteServer,
    site_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    instance: dg.DagsterInstance,
) -> None:
    urls = [site.base_url + p for p in write_articles(site_dir, 3)] + [f"{site.base_url}/gone"]
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text("".join(f'{{"url": "{u}"}}\n' for u in urls))
    defs = build_definitions(env)
    ingest(manifest, defs, instance)
    instance.add_dynamic_partitions("web_pages", ["f" * 16])  # registered, never run: backlog

    server = serve_metrics(defs, instance, 0)
    try:
        text = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/metrics").text
    finally:
        server.shutdown()
    got = samples(text)
    assert got[("media_assets_urls", (("kind", "web"), ("state", "indexed")))] == 3
    assert got[("media_assets_urls", (("kind", "web"), ("state", "failed")))] == 1
    dead = ("media_assets_dead_letters", (("asset", "rendered_page"),
                                          ("error_class", "http_client_error")))  # fmt: skip
    assert got[dead] == 1
    count = got[("media_assets_stage_seconds_per_url_count", (("stage", "web_chunks"),))]
    assert count == 3  # one materialization per good partition
    inf = ("media_assets_stage_seconds_per_url_bucket", (("le", "+Inf"), ("stage", "web_chunks")))
    assert got[inf] == count
    missing = (
        "media_assets_backlog_partitions",
        (("stage", "web_index_rows"), ("state", "missing")),
    )
    assert got[missing] == 2  # the 404 and the partition never run
    stale = ("media_assets_backlog_partitions", (("stage", "web_index_rows"), ("state", "stale")))
    assert got[stale] == 0
    assert ("media_assets_fetch_retries_total", (("kind", "web"),)) in got
