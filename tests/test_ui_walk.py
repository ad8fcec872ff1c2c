"""The operator's three uses, driven in the Dagster UI itself with Chromium: `dagster dev`
(webserver and daemon) on a fresh DAGSTER_HOME over local pages, the assertions on what the pages
show.

1. Failure lineage: a 404 in the manifest shows Failed on the partitions page; its failed run is
   one click away, and its step failure lists the URL, stage, error class and message.
2. Sensor: a URL appended to the manifest gives a tick that says what it did, and a partition
   the partitions page finds by a word of the URL ("winter-bees"), materialized.
3. Stale: a stage's code version bumped (``MEDIA_ASSETS_CODE_VERSIONS``) shows the partition
   unsynced; the stale sensor's "Preview tick result" then "Apply requests" runs just those, and
   they show fresh.

GraphQL (tests/test_daemon.py's `dagster dev` helpers) only tells the test when to look and
confirms a run's outcome. Each step leaves a screenshot; on failure they are copied to
``test-artifacts/ui/<test>/`` in the repository with the `dagster dev` log.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from media_assets.demo.server import SiteServer
from media_assets.stale import STALE_TAG
from media_assets.web.render import CHROMIUM_ARGS
from partitions.keys import partition_key
from tests.conftest import CHROMIUM, needs_chromium
from tests.test_daemon import DagsterDev, dagster_dev, wait_for, write_manifest

pytestmark = [pytest.mark.slow, needs_chromium]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
INTERVAL_S = 5
TIMEOUT_MS = 30_000  # a UI page loads in 1-5 s on 2 cores; more while runs share them
CODE_VERSION = """query Version($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { opVersion } } }"""
STALE_STATUS = """query Stale($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    staleStatusByPartition(partitions: $partitions) } } }"""


class Walk:
    """One Chromium tab on the UI, a numbered screenshot after each step."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page, self.shots, self.count = page, shots, 0
        self.started = time.monotonic()
        self.dagster: DagsterDev | None = None

    def goto(self, route: str) -> None:
        assert self.dagster is not None
        self.page.goto(f"http://127.0.0.1:{self.dagster.port}{route}")

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=path, animations="disabled")  # dialogs fully faded in
        print(f"{time.monotonic() - self.started:6.1f} s  {path.name}")
        return path

    def partition(self, asset: str, word: str, key: str) -> None:
        """The asset's partitions page, filtered by a word of the URL, the one match opened."""
        page = self.page
        self.goto(f"/assets/{asset}?view=partitions")
        page.get_by_placeholder("Filter by name").fill(word)
        # The list truncates keys in the middle; the hash's tail stays visible.
        page.get_by_text(key[-8:]).first.click()
        page.mouse.move(0, 0)  # no tooltip over the screenshot
        page.wait_for_url(f"**partition={key}*")
        expect(page.get_by_text(key, exact=True).filter(visible=True).first).to_be_visible()


def sensor_route(dagster: DagsterDev, name: str) -> str:
    selector = dagster.sensor(name)["selector"]
    repo, location = selector["repositoryName"], selector["repositoryLocationName"]
    where = location if repo == "__repository__" else f"{repo}@{location}"
    return f"/locations/{where}/sensors/{name}"


@contextmanager
def screenshots_kept_on_failure(walk: Walk, name: str, log: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        try:
            walk.shot("at-failure")
        except Exception as exc:  # the browser may be what failed
            print(f"no screenshot at failure: {exc}")
        kept = ARTIFACTS / name
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(walk.shots, kept)
        if log.exists():
            shutil.copy(log, kept / log.name)
        print(f"UI screenshots kept in {kept}")
        raise


def test_operator_walks_sensor_failure_and_stale_in_the_ui(
    site: SiteServer, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    missing = f"{site.base_url}/missing-page.html"
    bees = f"{site.base_url}/blog/winter-bees.html"
    missing_key, bees_key = partition_key(missing), partition_key(bees)
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, [missing])
    env = {
        **env,
        "MEDIA_ASSETS_MANIFEST": str(manifest),
        "MEDIA_ASSETS_SENSOR_INTERVAL_S": str(INTERVAL_S),
    }
    home = tmp_path / "dagster_home"
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--no-proxy-server"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        walk = Walk(page, shots)
        with screenshots_kept_on_failure(walk, request.node.name, tmp_path / "dagster-dev.log"):
            with dagster_dev(env, home) as dagster:
                walk.dagster = dagster
                dagster.gql("mutation { setNuxSeen }")  # else a community pop-up covers pages
                walk_failure(walk, dagster, manifest, missing, missing_key, bees)
                walk_sensor(walk, dagster, bees_key)
                node = dagster.gql(CODE_VERSION, key={"path": ["web_chunks"]})["assetNodeOrError"]
            # A change the code does not show, as the README has it: the stage's version bumped.
            bumped = {**env, "MEDIA_ASSETS_CODE_VERSIONS": f"web_chunks={node['opVersion']}.1"}
            with dagster_dev(bumped, home) as dagster:
                walk.dagster = dagster
                walk_stale(walk, dagster, bees_key)
        browser.close()


def walk_failure(
    walk: Walk, dagster: DagsterDev, manifest: Path, missing: str, key: str, bees: str
) -> None:
    """A 404: Failed on the partitions page, and one click to the run that says why."""
    page = walk.page
    [failed] = wait_for(
        lambda: dagster.finished_runs(pipelineName="web_ingest"), 90, "the 404's run", dagster
    )
    assert failed["status"] == "FAILURE"

    walk.partition("web_index_rows", "missing-page", key)
    expect(page.get_by_text("Failed (1)")).to_be_visible()
    expect(page.get_by_text("Missing (0)")).to_be_visible()
    banner = page.get_by_text("failed, and did not materialize this asset")
    expect(banner).to_be_visible()
    walk.shot("404-failed-on-partitions-page")
    # The next URL goes in now: its run proceeds while the failure is inspected.
    write_manifest(manifest, [missing, bees])

    page.get_by_role("link", name=failed["runId"][:8]).click()
    page.wait_for_url(f"**/runs/{failed['runId']}*")
    expect(page.get_by_text("Errored (1)")).to_be_visible()
    page.get_by_placeholder(re.compile(r"^Filter")).click()
    page.keyboard.type("type:STEP_FAILURE")
    failure = page.get_by_text("URLs failed at rendered_page")
    expect(failure).to_be_visible()
    expect(failure).to_contain_text(f"{missing}: [http_client_error] HTTP 404")
    walk.shot("failed-run-step-failure")
    page.get_by_role("row").filter(has=page.get_by_text("failures", exact=True)).get_by_text(
        "Show JSON"
    ).click()
    shown = page.get_by_role("dialog")
    for text in (missing, '"stage": "rendered_page"', "http_client_error", "HTTP 404", key):
        expect(shown).to_contain_text(text)
    walk.shot("failures-metadata")
    shown.get_by_role("button", name="Close").click()


def walk_sensor(walk: Walk, dagster: DagsterDev, key: str) -> None:
    """The appended URL: a tick that says what it read (the appended line alone) and did; its
    partition, found by a word of the URL, materialized."""
    page = walk.page
    wait_for(
        lambda: key in dagster.materialized("web_index_rows"), 90, "winter-bees indexed", dagster
    )
    walk.goto(sensor_route(dagster, "manifest_sensor"))
    latest = page.get_by_role("row").filter(has_text="1 run requested").first
    latest.get_by_role("button", name="View logs").click()
    expect(page.get_by_role("dialog")).to_contain_text("1 entry: 1 new URL in 1 run (line 2 of")
    walk.shot("manifest-sensor-tick-logs")
    page.get_by_role("dialog").get_by_role("button", name="Done").click()

    walk.partition("web_index_rows", "winter-bees", key)
    expect(page.get_by_text("Materialized", exact=True)).to_be_visible()
    walk.shot("winter-bees-materialized")


def walk_stale(walk: Walk, dagster: DagsterDev, key: str) -> None:
    """Unsynced after the bump; the stale sensor's preview runs just that partition; fresh."""
    page = walk.page
    walk.partition("web_chunks", "winter-bees", key)
    page.get_by_text("Unsynced").click()
    expect(page.get_by_text("has a new code version")).to_be_visible()
    walk.shot("web-chunks-unsynced")

    walk.goto(sensor_route(dagster, "stale_partitions_sensor"))
    page.get_by_role("button", name="Preview tick result").click()
    page.get_by_role("dialog").get_by_role("button", name="Continue").click()
    preview = page.get_by_role("dialog")
    expect(preview.get_by_text("Requested runs (1)")).to_be_visible()
    preview.get_by_role("button", name="Preview", exact=True).click()
    config = page.get_by_role("dialog").filter(has_text="Run configuration")
    expect(config).to_contain_text("media_assets/urls: 1")
    expect(config).to_contain_text(f"asset_partition_range_start: {key}")
    walk.shot("stale-sensor-preview-run")
    config.get_by_role("button", name="OK", exact=True).click()
    page.get_by_role("button", name="Apply requests & commit tick result").click()
    page.wait_for_url("**/runs?**")  # the launched runs, listed
    expect(page.get_by_text("media_assets/stale: web")).to_be_visible()
    walk.shot("stale-run-launched")

    [run] = wait_for(
        lambda: dagster.finished_runs(tags=[{"key": STALE_TAG, "value": "web"}]),
        120,
        "the stale run",
        dagster,
    )
    tags = run["tags"]
    assert run["status"] == "SUCCESS" and tags["media_assets/urls"] == "1"
    assert tags["dagster/asset_partition_range_start"] == key  # not the failed URL: not stale
    walk.partition("web_chunks", "winter-bees", key)
    expect(page.get_by_role("link", name=run["runId"][:8])).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True)).to_be_visible()
    statuses = dagster.gql(STALE_STATUS, key={"path": ["web_chunks"]}, partitions=[key])
    assert statuses["assetNodeOrError"]["staleStatusByPartition"] == ["FRESH"]
    page.wait_for_load_state("networkidle")  # an absence means something once the page has loaded
    expect(page.get_by_text("Unsynced")).to_have_count(0)
    walk.shot("web-chunks-fresh")
