"""Stale partitions as the UI shows them, and materializing just those.

Every assertion on staleness reads what the UI reads: ``staleStatusByPartition`` on the asset node,
answered by Dagster's GraphQL schema over the project's ``workspace.yaml``, its code location
served from a gRPC subprocess as under ``dagster dev``, one request context per query as the
webserver makes one per HTTP request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_graphql.test.utils import define_out_of_process_workspace, execute_dagster_graphql

from media_assets.assets import CHAINS
from media_assets.assets.common import REFRESH_TAG
from media_assets.batching import range_tags
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import QUIET_LOGS, ingest
from media_assets.instance import local_instance_config
from media_assets.stale import STALE_TAG
from partitions.keys import partition_key
from tests.conftest import needs_chromium, write_articles

pytestmark = [pytest.mark.slow, needs_chromium]

REPO = Path(__file__).resolve().parents[1]
WEB = CHAINS["web"]
Gql = Callable[..., dict[str, Any]]

STALE = """
query Stale($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    staleStatusByPartition(partitions: $partitions)
    staleCausesByPartition(partitions: $partitions) {
      key { path } partitionKey reason category dependency { path } } } }
}"""
REPOSITORIES = """
query { repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""
DRY_RUN = """
mutation DryRun($selector: SensorSelector!) {
  sensorDryRun(selectorData: $selector, cursor: null) {
    ... on DryRunInstigationTick { evaluationResult {
      skipReason error { message } runRequests { jobName runConfigYaml tags { key value } } } }
    ... on PythonError { message }
  }
}"""
LAUNCH_ALL = """
mutation LaunchAll($params: [ExecutionParams!]!) {
  launchMultipleRuns(executionParamsList: $params) {
    ... on LaunchMultipleRunsResult { launchMultipleRunsResult {
      __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }
    ... on PythonError { message }
  }
}"""


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The command line's local instance, launching runs as soon as they are submitted: under
    ``dagster dev`` the daemon takes them from the queue, and no daemon runs here."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    overrides = {
        **local_instance_config(home),
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
    }
    with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as test_instance:
        yield test_instance


@contextmanager
def dagster_ui(instance: dg.DagsterInstance) -> Iterator[Gql]:
    """GraphQL as the webserver answers it; the code location loads from the environment."""
    workspace = define_out_of_process_workspace(str(REPO / "workspace.yaml"), None, instance)
    with workspace as process:

        def gql(query: str, **variables: Any) -> dict[str, Any]:
            result = execute_dagster_graphql(process.create_request_context(), query, variables)
            assert not result.errors, result.errors
            return result.data

        yield gql


def stale_status(gql: Gql, keys: list[str]) -> dict[str, dict[str, str]]:
    """Each web stage's status per partition: what the partition pages show."""
    statuses = {}
    for stage in WEB:
        node = gql(STALE, key={"path": [stage]}, partitions=keys)["assetNodeOrError"]
        statuses[stage] = dict(zip(keys, node["staleStatusByPartition"], strict=True))
    return statuses


def only(keys: list[str], stale: dict[str, set[str]]) -> dict[str, dict[str, str]]:
    """The statuses expected when exactly ``stale`` (stage -> partitions) are stale."""
    return {
        stage: {k: "STALE" if k in stale.get(stage, set()) else "FRESH" for k in keys}
        for stage in WEB
    }


def launch_all_from_sensor_preview(gql: Gql, sensor: str) -> list[dict[str, Any]]:
    """The sensor page's "Preview tick result", then "Launch all": the run requests, launched."""
    (repo,) = gql(REPOSITORIES)["repositoriesOrError"]["nodes"]
    selector = {
        "repositoryName": repo["name"],
        "repositoryLocationName": repo["location"]["name"],
    }
    tick = gql(DRY_RUN, selector={**selector, "sensorName": sensor})["sensorDryRun"]
    result = tick["evaluationResult"]
    assert result["error"] is None and result["skipReason"] is None, result
    requests = result["runRequests"]
    params = [
        {
            "selector": {**selector, "jobName": request["jobName"]},
            "runConfigData": yaml.safe_load(request["runConfigYaml"]) or {},
            "executionMetadata": {"tags": request["tags"]},
        }
        for request in requests
    ]
    launched = gql(LAUNCH_ALL, params=params)["launchMultipleRuns"]["launchMultipleRunsResult"]
    assert all(r["__typename"] == "LaunchRunSuccess" for r in launched), launched
    return requests


def wait_for_runs(instance: dg.DagsterInstance, timeout_s: float = 240) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={STALE_TAG: "web"}))
        if runs and all(r.is_finished for r in runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(f"stale runs still going after {timeout_s} s")


def latest_metadata(instance: dg.DagsterInstance, stage: str, key: str) -> dict[str, Any]:
    """The metadata of the partition's latest materialization, as the partition page shows it."""
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(stage), asset_partitions=[key]), limit=1
    ).records
    event = record.asset_materialization
    assert event is not None
    return {name: value.value for name, value in event.metadata.items()}


def test_stale_partitions_are_exactly_the_affected_ones_and_materialize_from_ui_and_terminal(
    site: SiteServer,
    site_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = write_articles(site_dir, 4)
    urls = [site.base_url + path for path in paths]
    manifest = tmp_path / "urls.txt"
    manifest.write_text("".join(f"{url}\n" for url in urls))
    for name, value in env.items():  # the code location (and the runs it launches) reads these
        monkeypatch.setenv(name, value)
    keys = [partition_key(url) for url in urls]
    changed = keys[1]

    assert ingest(manifest, build_definitions(env), instance).ok
    assert instance.get_dynamic_partitions("web_pages") == keys
    with dagster_ui(instance) as gql:
        assert stale_status(gql, keys) == only(keys, {})

    # Page 1 changes; every page is rendered again in one batched step (rendered_page alone, as
    # an operator materializing that asset would). Only page 1's content changed, so only its
    # page_elements is stale: the three others kept their data versions inside the same step.
    (site_dir / "article-1.html").write_text(
        "<html><head><title>Article 1</title></head><body><main><h1>Article 1, revised</h1>"
        "<p>The harbour now publishes its tide tables every morning, computed from forty "
        "harmonic constituents instead of the seven it used before.</p></main></body></html>"
    )
    job = build_definitions(env).resolve_job_def("web_ingest")
    refreshed = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("rendered_page")],
        tags={**range_tags(keys), REFRESH_TAG: "true"},
        run_config=QUIET_LOGS,
    )
    assert refreshed.success
    with dagster_ui(instance) as gql:
        assert stale_status(gql, keys) == only(keys, {"page_elements": {changed}})
        node = gql(STALE, key={"path": ["page_elements"]}, partitions=[changed])["assetNodeOrError"]
        (causes,) = node["staleCausesByPartition"]  # the root cause, as the UI lists it
        assert causes == [
            {
                "key": {"path": ["rendered_page"]},
                "partitionKey": changed,
                "reason": "has a new data version",
                "category": "DATA",
                "dependency": None,
            }
        ]

        # From the UI: the stale sensor's preview asks for exactly that partition, in one run of
        # the web chain; "Launch all" runs it, and nothing is stale any more.
        (request,) = launch_all_from_sensor_preview(gql, "stale_partitions_sensor")
        tags = {t["key"]: t["value"] for t in request["tags"]}
        assert request["jobName"] == "web_ingest"
        assert tags.items() >= {**range_tags([changed]), STALE_TAG: "web"}.items()
        (run,) = wait_for_runs(instance)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert stale_status(gql, keys) == only(keys, {})

    # A new code version for web_chunks: all its partitions are stale, nothing else is (Dagster
    # does not call downstream stale before web_chunks is made again).
    chunks = dg.AssetKey("web_chunks")
    version = build_definitions(env).resolve_assets_def(chunks).code_versions_by_key[chunks]
    bumped = {**env, "MEDIA_ASSETS_CODE_VERSIONS": f"web_chunks={version}.1"}
    monkeypatch.setenv("MEDIA_ASSETS_CODE_VERSIONS", bumped["MEDIA_ASSETS_CODE_VERSIONS"])
    with dagster_ui(instance) as gql:
        assert stale_status(gql, keys) == only(keys, {"web_chunks": set(keys)})
        node = gql(STALE, key={"path": ["web_chunks"]}, partitions=[keys[0]])["assetNodeOrError"]
        assert node["staleCausesByPartition"][0][0]["category"] == "CODE"

        # From the terminal: `media-assets ingest --stale` runs exactly those, once; the chunks
        # come out the same, so no chunk goes to the embedding model again.
        report = ingest(manifest, build_definitions(bumped), instance, stale=True)
        assert report.ok and report.stale_partitions == set(keys)
        assert len(report.runs) == 1
        assert stale_status(gql, keys) == only(keys, {})
    for key in keys:
        assert latest_metadata(instance, "web_chunks", key)["work"] == "computed"
        # Reused whole, or every vector reused by its chunk's content hash.
        embeddings = latest_metadata(instance, "web_embeddings", key)
        assert embeddings["work"] == "reused stored artifact" or embeddings["embedded"] == 0

    # Nothing stale: --stale runs nothing.
    assert ingest(manifest, build_definitions(bumped), instance, stale=True).runs == []
