"""The sensors under Dagster's own daemon: `dagster dev` in a subprocess on a fresh DAGSTER_HOME,
local pages, and every assertion made through GraphQL (what the UI shows) or the index.

Calling a sensor function in a test skips the checks the daemon makes of its result (targets,
run keys, partition requests); only a daemon catches those.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from media_assets import deadletters, registry
from media_assets.batching import range_tags
from media_assets.demo.server import SiteServer
from media_assets.instance import ensure_local_instance
from partitions.keys import partition_key
from resources import build_resources
from sensors.failures import RETRY_OF_TAG
from tests.conftest import needs_chromium, write_articles

pytestmark = [pytest.mark.slow, needs_chromium]

REPO = Path(__file__).resolve().parents[1]
INTERVAL_S = 5  # the daemon's sensor loop runs every 5 s at best anyway
T = TypeVar("T")
IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}

SENSORS = """
query {
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
    sensors { name sensorState { id status
      typeSpecificData { ... on SensorData { lastCursor } }
      ticks(limit: 200) { status skipReason runIds error { message }
        logEvents { events { message } } } } } } } }
}"""
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results {
    runId jobName status runConfigYaml tags { key value } assetSelection { path }
    creationTime startTime endTime } } }
}"""
PARTITION_STATUSES = """
query Statuses($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { assetPartitionStatuses {
    ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } }
}"""
DRY_RUN = """
mutation DryRun($selector: SensorSelector!, $cursor: String) {
  sensorDryRun(selectorData: $selector, cursor: $cursor) {
    ... on DryRunInstigationTick { evaluationResult {
      skipReason error { message } runRequests { jobName runConfigYaml }
      dynamicPartitionsRequests { partitionKeys type } } }
    ... on PythonError { message }
  }
}"""
STOP = """mutation Stop($id: String!) { stopSensor(id: $id) {
  ... on StopSensorMutationResult { instigationState { status } }
  ... on PythonError { message } } }"""
LAUNCH = """mutation Launch($params: ExecutionParams!) { launchRun(executionParams: $params) {
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
START = """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""


class DagsterDev:
    """`dagster dev` (webserver, daemon, code server) in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = log
        dagster = Path(sys.executable).parent / "dagster"
        command = [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "-p", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one signal to the group stops webserver, daemon and runs
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_ready(self, timeout_s: float = 120) -> None:
        def loaded() -> bool:
            try:
                nodes = self.gql(SENSORS)["repositoriesOrError"].get("nodes", [])
            except httpx.HTTPError:
                return False
            return any(n["sensors"] for n in nodes)

        wait_for(loaded, timeout_s, "the code location to load", self)

    def sensor(self, name: str) -> dict[str, Any]:
        for repo in self.gql(SENSORS)["repositoriesOrError"]["nodes"]:
            for sensor in repo["sensors"]:
                if sensor["name"] == name:
                    selector = {
                        "repositoryName": repo["name"],
                        "repositoryLocationName": repo["location"]["name"],
                        "sensorName": name,
                    }
                    return {**sensor, "selector": selector}
        raise AssertionError(f"no sensor {name}")

    def runs(self, **filter: Any) -> list[dict[str, Any]]:
        results = self.gql(RUNS, filter=filter)["runsOrError"]["results"]
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in results]

    def finished_runs(self, **filter: Any) -> list[dict[str, Any]]:
        """The runs that match, once there are some and none is queued or running."""
        runs = self.runs(**filter)
        return runs if runs and all(r["status"] not in IN_FLIGHT for r in runs) else []

    def materialized(self, asset: str) -> set[str]:
        return self.partitions(asset)["materializedPartitions"]

    def partitions(self, asset: str) -> dict[str, set[str]]:
        """The partitions page's view of ``asset``: materialized and failed partition keys."""
        node = self.gql(PARTITION_STATUSES, key={"path": [asset]})["assetNodeOrError"]
        return {k: set(v) for k, v in node["assetPartitionStatuses"].items()}

    def diagnosis(self) -> str:
        """What a timeout message needs: the runs so far and the end of the server's log."""
        runs = [(r["jobName"], r["runId"], r["status"]) for r in self.runs()]
        return (
            f"runs: {runs}\n--- dagster dev log ---\n{self.log.read_text(errors='replace')[-4000:]}"
        )

    def stop(self) -> None:
        self.client.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def wait_for(
    check: Callable[[], T], timeout_s: float, what: str, dagster: DagsterDev | None = None
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            details = f"\n{dagster.diagnosis()}" if dagster else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{details}")
        time.sleep(0.5)


@contextmanager
def dagster_dev(env: dict[str, str], home: Path) -> Iterator[DagsterDev]:
    ensure_local_instance(home)
    dagster = DagsterDev(
        {**os.environ, **env, "DAGSTER_HOME": str(home)}, home.parent / "dagster-dev.log"
    )
    try:
        dagster.wait_ready()
        yield dagster
    finally:
        dagster.stop()


def write_manifest(path: Path, urls: list[str]) -> None:
    # Written whole and renamed: the sensor must never read half a manifest.
    partial = path.with_suffix(".part")
    partial.write_text("".join(json.dumps({"url": u}) + "\n" for u in urls))
    partial.replace(path)


def tick_messages(sensor: dict[str, Any]) -> list[str]:
    ticks = sensor["sensorState"]["ticks"]
    return [e["message"] for t in ticks for e in t["logEvents"]["events"]]


def test_sensors_ingest_append_remove_and_retry_under_the_daemon(
    site: SiteServer, site_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    urls = [f"{site.base_url}{p}" for p in write_articles(site_dir, 5)]
    missing = f"{site.base_url}/missing-page.html"
    keys = [partition_key(u) for u in urls]
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(manifest, urls[:2])
    env = {
        **env,
        "MEDIA_ASSETS_MANIFEST": str(manifest),
        "MEDIA_ASSETS_SENSOR_INTERVAL_S": str(INTERVAL_S),
    }
    resources = build_resources(env)
    index, store = resources["vector_index"], resources["object_store"]

    def indexed(wanted: list[str]) -> bool:
        return all(index.rows(k) for k in wanted)

    with dagster_dev(env, tmp_path / "dagster_home") as dagster:
        # The first tick: partitions, one batched run, rows in the index.
        wait_for(lambda: indexed(keys[:2]), 120, "the first two URLs in the index", dagster)
        assert set(keys[:2]) <= dagster.materialized("web_index_rows")
        first = wait_for(
            lambda: dagster.finished_runs(
                tags=[{"key": "dagster/sensor_name", "value": "manifest_sensor"}]
            ),
            30,
            "the first run to finish",
            dagster,
        )
        assert [r["status"] for r in first] == ["SUCCESS"]
        assert first[0]["tags"]["media_assets/urls"] == "2"
        sensor = wait_for(
            lambda: (
                (s := dagster.sensor("manifest_sensor"))
                and "manifest unchanged" in [t["skipReason"] for t in s["sensorState"]["ticks"]]
                and s
            ),
            3 * INTERVAL_S + 10,
            "a tick that finds the manifest unchanged",
            dagster,
        )
        assert any("2 new URLs in 1 run" in m for m in tick_messages(sensor))

        # An appended URL reaches the index within one interval plus its run.
        appended_at, appended_wall = time.monotonic(), time.time()
        write_manifest(manifest, urls[:3])
        wait_for(lambda: indexed(keys[2:3]), INTERVAL_S + 60, "the appended URL", dagster)
        latency = time.monotonic() - appended_at
        [run] = wait_for(
            lambda: dagster.finished_runs(
                tags=[{"key": "dagster/asset_partition_range_start", "value": keys[2]}]
            ),
            30,
            "the appended URL's run to finish",
            dagster,
        )
        print(
            f"appended URL indexed {latency:.1f} s after the manifest changed (interval "
            f"{INTERVAL_S} s): run requested after {run['creationTime'] - appended_wall:.1f} s, "
            f"started {run['startTime'] - run['creationTime']:.1f} s later, "
            f"ran {run['endTime'] - run['startTime']:.1f} s"
        )
        assert registry.lookup(store, keys[2]).url == urls[2]  # registered by its run
        messages = tick_messages(dagster.sensor("manifest_sensor"))
        assert any("1 new URL in 1 run" in m for m in messages)

        # A preview of a tick that would remove a URL changes nothing.
        sensor = dagster.sensor("manifest_sensor")
        dagster.gql(STOP, id=sensor["sensorState"]["id"])
        write_manifest(manifest, [urls[0], urls[2]])
        preview = dagster.gql(
            DRY_RUN,
            selector=sensor["selector"],
            cursor=sensor["sensorState"]["typeSpecificData"]["lastCursor"],
        )["sensorDryRun"]["evaluationResult"]
        assert [r["jobName"] for r in preview["runRequests"]] == ["remove_sources"]
        assert keys[1] in preview["runRequests"][0]["runConfigYaml"]
        assert index.rows(keys[1]) and registry.lookup(store, keys[1]).url == urls[1]
        assert keys[1] in dagster.materialized("web_index_rows")
        assert dagster.runs(pipelineName="remove_sources") == []

        # The tick itself: a removal run in the history, and the source gone.
        dagster.gql(START, selector=sensor["selector"])
        removal = wait_for(
            lambda: [
                r for r in dagster.runs(pipelineName="remove_sources") if r["status"] == "SUCCESS"
            ],
            INTERVAL_S + 60,
            "a successful removal run",
            dagster,
        )
        assert len(removal) == 1 and keys[1] in removal[0]["runConfigYaml"]
        assert index.rows(keys[1]) == []
        assert not store.exists(f"rendered_page/{keys[1]}.json")
        with pytest.raises(registry.UnknownPartitionError):
            registry.lookup(store, keys[1])
        assert keys[1] not in dagster.materialized("web_index_rows")
        assert indexed([keys[0], keys[2]])
        assert any("1 removed" in m for m in tick_messages(dagster.sensor("manifest_sensor")))

        # A batch with a 404: its run fails, the batch-failure sensor requests the others again.
        write_manifest(manifest, [urls[0], urls[2], urls[3], missing, urls[4]])
        wait_for(lambda: indexed(keys[3:5]), 2 * INTERVAL_S + 120, "the 404's neighbours", dagster)
        assert index.rows(partition_key(missing)) == []
        letters = deadletters.for_partition(store, partition_key(missing))
        assert [d.error_class for d in letters] == ["http_client_error"]
        failed = [r for r in dagster.runs(pipelineName="web_ingest") if r["status"] == "FAILURE"]
        assert len(failed) == 1

        def finished_retries(run_id: str) -> list[dict[str, Any]]:
            return dagster.finished_runs(tags=[{"key": RETRY_OF_TAG, "value": run_id}])

        retries = wait_for(
            lambda: finished_retries(failed[0]["runId"]),
            60,
            "the re-requested runs to finish",
            dagster,
        )
        assert len(retries) == 2 and {r["status"] for r in retries} == {"SUCCESS"}
        # What the partitions page shows: the 404 Failed (not missing) on every stage of its
        # chain, its neighbours materialized.
        for asset in ("rendered_page", "web_index_rows"):
            shown = dagster.partitions(asset)
            assert partition_key(missing) in shown["failedPartitions"], (asset, shown)
            assert set(keys[3:5]) <= shown["materializedPartitions"] - shown["failedPartitions"]
        watcher = dagster.sensor("batch_failure_sensor")
        assert any(
            t["status"] == "SUCCESS" and set(t["runIds"]) == {r["runId"] for r in retries}
            for t in watcher["sensorState"]["ticks"]
        )

        # A run the UI launches on the implicit asset job (as a backfill does: a partition range,
        # some stages only) that fails on the 404: the good URLs run again, for those stages.
        stages = [{"path": ["rendered_page"]}, {"path": ["page_elements"]}]
        selector = {**sensor["selector"], "pipelineName": "__ASSET_JOB", "assetSelection": stages}
        del selector["sensorName"]
        tags = range_tags([keys[3], partition_key(missing), keys[4]])
        launched = dagster.gql(
            LAUNCH,
            params={
                "selector": selector,
                "mode": "default",
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            },
        )["launchRun"]
        ui_run = launched["run"]["runId"]
        retries = wait_for(
            lambda: finished_retries(ui_run), 4 * INTERVAL_S + 90, "the UI run's retries", dagster
        )
        assert [r["status"] for r in dagster.runs(runIds=[ui_run])] == ["FAILURE"]
        assert len(retries) == 2 and {r["status"] for r in retries} == {"SUCCESS"}
        assert {r["jobName"] for r in retries} == {"web_ingest"}
        for retry in retries:
            assert sorted(a["path"] for a in retry["assetSelection"]) == sorted(
                s["path"] for s in stages
            )

        for name in ("manifest_sensor", "batch_failure_sensor"):
            ticks = dagster.sensor(name)["sensorState"]["ticks"]
            assert not [t["error"] for t in ticks if t["status"] == "FAILURE"], name
