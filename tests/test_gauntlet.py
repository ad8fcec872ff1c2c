"""The gauntlet (media_assets/demo/site/gauntlet/): pages that break naive renderers, ingested
through Dagster as a manifest of them is, each ending indexed with its text or with a status that
says why not.

One ingest is shared by the module; each test checks one page. The silent third-party host is the
demo server's (another loopback address, allow-listed here as a third party would be public).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from playwright.sync_api import sync_playwright

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import IngestReport, ingest, url_statuses
from media_assets.web import blocklist
from media_assets.web.render import CHROMIUM_ARGS
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import CHROMIUM, local_instance, needs_chromium, write_manifest

pytestmark = needs_chromium

PDF_TEXT = "Quarterly tide gauge report: the harbour gauge drifted by four millimetres"
# Each page, and words of its article that must reach the index.
GAUNTLET = {
    "third-party-hangs.html": "breeding redshanks have returned to the estuary",
    "polls-forever.html": "flat-bottomed landing craft",
    "meta-refresh.html": "hearting stones packed tight by hand",
    "js-redirect.html": "working through permutations called changes",
    "lazy-on-scroll.html": "The lazy section arrives only after scrolling",
    "iframe-article.html": "sunken, greasy cappings",
    "cookie-wall.html": "the top gate of one chamber is the bottom gate of the next",
    "history-api.html": "leaving a hinge of bark and sapwood",
}
# Files the web chain may index, or refuse with a status naming their type.
DOCUMENTS = {"notes.txt": ("text/plain", "a single archer's dart"), "report.pdf": ("pdf", PDF_TEXT)}


@dataclass
class Gauntlet:
    site: SiteServer
    defs: dg.Definitions
    report: IngestReport
    statuses: dict[str, str]

    def key(self, name: str) -> str:
        return partition_key(f"{self.site.base_url}/gauntlet/{name}")

    def record(self, asset: str, name: str) -> dict[str, Any]:
        store = self.defs.resources["object_store"]
        return ArtifactStore(store, dg.AssetKey(asset), {}).read(self.key(name))

    def indexed_text(self, name: str) -> str:
        rows = self.defs.resources["vector_index"].rows(self.key(name))
        return " ".join(" ".join(row["text"].split()) for row in rows)


def write_pdf(path: Path) -> None:
    """A one-page PDF with a text layer, printed by Chromium (no binary fixture)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content(f"<h1>Tide gauge</h1><p>{PDF_TEXT} over the winter.</p>")
        page.pdf(path=str(path))
        browser.close()


@pytest.fixture(scope="module")
def gauntlet(
    module_site: SiteServer, module_site_dir: Path, module_tmp: Path, module_env: dict[str, str]
) -> Iterator[Gauntlet]:
    write_pdf(module_site_dir / "gauntlet" / "report.pdf")
    names = [*GAUNTLET, *DOCUMENTS]
    manifest = write_manifest(
        module_tmp / "gauntlet.jsonl", [f"{module_site.base_url}/gauntlet/{n}" for n in names]
    )
    silent_host = module_site.hang_origin.removeprefix("http://").split(":")[0]
    env = {**module_env, "MEDIA_ASSETS_ALLOW_HOSTS": f"127.0.0.1,{silent_host}"}
    defs = build_definitions(env)
    with local_instance(module_tmp / "dagster_home") as instance:
        report = ingest(manifest, defs, instance)
        keys = {n: partition_key(f"{module_site.base_url}/gauntlet/{n}") for n in names}
        statuses = url_statuses(defs.resources["object_store"], "web", list(keys.values()))
        yield Gauntlet(module_site, defs, report, {n: statuses[k] for n, k in keys.items()})


@pytest.mark.parametrize("name", GAUNTLET)
def test_page_is_indexed_with_its_text(gauntlet: Gauntlet, name: str) -> None:
    assert gauntlet.statuses[name] == "indexed", gauntlet.record("rendered_page", name)
    assert GAUNTLET[name] in gauntlet.indexed_text(name)


def test_hanging_third_party_script_costs_seconds_and_trackers_are_not_asked(
    gauntlet: Gauntlet,
) -> None:
    render = gauntlet.record("rendered_page", "third-party-hangs.html")
    assert gauntlet.site.hang_connections >= 1  # the silent host was really waited on
    assert render["attempts"] == 1  # captured at once, not retried as a timeout
    if blocklist.package_lists():
        assert render["blocked_requests"] >= 1  # the tag manager, answered without a look-up


def test_in_page_navigations_end_where_the_page_did(gauntlet: Gauntlet) -> None:
    base = f"{gauntlet.site.base_url}/gauntlet"
    for name, final in (
        ("meta-refresh.html", "refreshed-article.html"),
        ("js-redirect.html", "redirected-article.html"),
        ("history-api.html", "history/hedge-laying"),
    ):
        assert gauntlet.record("rendered_page", name)["final_url"] == f"{base}/{final}"


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_indexed_or_refused_naming_its_type(gauntlet: Gauntlet, name: str) -> None:
    kind, words = DOCUMENTS[name]
    if gauntlet.statuses[name] == "indexed":
        assert words in gauntlet.indexed_text(name)
        return
    render = gauntlet.record("rendered_page", name)
    assert render["status"] != "ok" and kind in render["error"], render
