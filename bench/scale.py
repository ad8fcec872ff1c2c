"""The control plane at 100,000 URLs, on the local SQLite instance and on PostgreSQL.

    .venv/bin/python bench/scale.py [--urls 100000] [--storage sqlite postgres] [--render 10]

A synthetic manifest of ``--urls`` small local pages (the first ``--render`` of them exist and are
ingested for real first, so status and metrics have rendered rows). Then, per storage:

- the manifest sensor under the sensor daemon's own iteration (tests/helpers.py ``SensorDaemon``:
  the code location in a gRPC server, partitions added and runs submitted as the daemon does;
  runs wait in a queued run coordinator, nothing dequeues them) until every line is read and
  registered as a partition, and one tick more: ``tick_s`` is the longest tick from the instance's
  tick records, start to end. A tick requests runs for ``--run-urls`` URLs
  (``MEDIA_ASSETS_RUN_URLS_PER_TICK``); the rest are owed in the cursor, for later ticks;
- registering the URLs: ``register_s`` adds every key to a fresh partition set through
  ``registry.add_partitions`` (chunked; SQLite refuses one statement with all of them, shown);
- ``media-assets status`` (a process of its own, start-up included) once every URL is in the
  registry, as it is once the queued runs have run (a batch's registration each): the first
  builds and stores the table, a second (printed) brings the stored one up to date;
- one Prometheus scrape of ``media-assets metrics``' collector over HTTP;
- the GraphQL query of the UI's asset partitions page for ``rendered_page``, against
  ``dagster-webserver`` on the instance (the second request; the first is printed too).

``eval_s`` is the sensor's own evaluation (what the 60 s limit bounds) from each tick's cursor;
``--no-sensor`` adds the partitions directly instead (tick_s prints as nan), for sizes whose
ticks take hours on a loaded machine.

Last lines, one per storage: storage=<> urls=<n> tick_s=<max> eval_s=<max> register_s=<>
status_s=<> scrape_s=<> ui_partitions_s=<>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg
import httpx
import yaml

from media_assets import registry
from media_assets.dagster_compat import TickStatus
from media_assets.definitions import build_definitions
from media_assets.demo.server import serve
from media_assets.ingest import ingest
from media_assets.instance import local_instance_config
from media_assets.manifest import read_manifest
from media_assets.metrics import serve_metrics
from resources import build_resources
from resources.fetch import RUN_URLS_PER_TICK
from tests.helpers import CHROMIUM, SensorDaemon, write_articles
from tests.postgres import LocalPostgres, postgres_bin

ROOT = Path(__file__).resolve().parents[1]
QUEUED = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")
BATCH = 50  # URLs a run registers
# What the UI's asset page asks for its Partitions tab (dagster-webserver 1.13's
# AssetPartitionsStatusQuery/PartitionHealthQuery): every key, and the statuses as ranges.
UI_PARTITIONS = """
query AssetPartitions($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    id partitionKeysByDimension { name partitionKeys type }
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses {
        materializedPartitions materializingPartitions failedPartitions }
    } } }
}"""


def write_manifest(path: Path, base_url: str, sample: list[str], urls: int) -> None:
    """The sample's pages, then pages that do not exist (never rendered here) up to ``urls``."""
    rest = (f"/page-{i}.html" for i in range(urls - len(sample)))
    with path.open("w") as file:
        file.writelines(json.dumps({"url": base_url + p}) + "\n" for p in [*sample, *rest])


def instance_config(storage: str, home: Path, postgres: LocalPostgres | None) -> dict[str, Any]:
    """The local instance's ``dagster.yaml``; or production's (deploy/dagster.yaml) PostgreSQL
    storages on the local server, with their event log that writes a run's plans in one statement
    (``storage="postgres-stock"``: dagster-postgres' own)."""
    if storage == "sqlite":
        return {**local_instance_config(home), "run_coordinator": QUEUED}
    assert postgres is not None
    deploy = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config = {"postgres_db": dict(deploy["event_log_storage"]["config"]["postgres_db"])}
    config["postgres_db"].update(
        hostname="127.0.0.1", port=postgres.port, db_name="postgres", username="postgres"
    )
    config["postgres_db"]["password"] = ""
    storages = {name: {**deploy[name], "config": config} for name in STORAGES}
    if storage == "postgres-stock":
        storages["event_log_storage"].update(
            module="dagster_postgres.event_log", **{"class": "PostgresEventLogStorage"}
        )
    return {**storages, "run_coordinator": QUEUED, "telemetry": {"enabled": False}}


@contextmanager
def webserver(env: dict[str, str], log: Path) -> Iterator[httpx.Client]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml"]
    process = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if client.get("/server_info").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield client
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def ui_partitions(client: httpx.Client) -> tuple[float, float, int]:
    """Seconds of the partitions page's query (first, second) and how many keys it listed."""
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        response = client.post(
            "/graphql",
            json={"query": UI_PARTITIONS, "variables": {"key": {"path": ["rendered_page"]}}},
        )
        seconds.append(time.perf_counter() - started)
        body = response.json()
        assert "errors" not in body, body["errors"]
    node = body["data"]["assetNodeOrError"]
    assert "partitionKeysByDimension" in node, f"the code location did not load: {node}"
    keys = len(node["partitionKeysByDimension"][0]["partitionKeys"])
    return seconds[0], seconds[1], keys


def scrape(env: dict[str, str], instance: dg.DagsterInstance) -> float:
    defs = build_definitions(env)
    server = serve_metrics(defs, instance, 0)
    try:
        started = time.perf_counter()
        text = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=600).text
        seconds = time.perf_counter() - started
    finally:
        server.shutdown()
    assert "media_assets_urls" in text
    return seconds


def evaluations(env: dict[str, str], instance: dg.DagsterInstance, ticks: list[Any]) -> list[float]:
    """Seconds of the sensor function's own evaluation from each tick's starting cursor (what
    the 60 s limit bounds; the daemon then adds the partitions and creates the runs)."""
    defs = build_definitions(env)
    sensor = defs.get_sensor_def("manifest_sensor")
    cursors = [None, *(t.cursor for t in ticks[:-1])]
    seconds = []
    for cursor in cursors:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
        ) as context:
            started = time.perf_counter()
            sensor(context)
            seconds.append(time.perf_counter() - started)
    return seconds


def register_partitions(instance: dg.DagsterInstance, keys: list[str], storage: str) -> float:
    if storage == "sqlite":
        try:  # what the chunks avoid
            instance.add_dynamic_partitions("bench_unchunked", keys)
            print(f"  unchunked add_dynamic_partitions of {len(keys)} keys: accepted")
        except Exception as exc:
            print(f"  unchunked add_dynamic_partitions of {len(keys)} keys: {str(exc)[:90]}")
    started = time.perf_counter()
    added = registry.add_partitions(instance, "bench_register", keys)
    seconds = time.perf_counter() - started
    assert added == len(keys) == len(instance.get_dynamic_partitions("bench_register"))
    return seconds


def sensor_ticks(
    args: argparse.Namespace, env: dict[str, str], instance: dg.DagsterInstance
) -> tuple[float, list[float]]:
    """The manifest sensor under the daemon's iteration until every line is read and registered,
    and one tick more (one that only requests owed runs): the longest tick, and each evaluation
    alone. The runs still owed then would take ``urls / run_urls`` ticks in all."""
    started = time.perf_counter()
    with SensorDaemon(instance) as daemon:
        print(f"  code location served in {time.perf_counter() - started:.1f} s")
        registered_in = None
        for _ in range(args.urls // args.page_lines + 5):
            daemon.tick()
            ticks = daemon.ticks("manifest_sensor")
            last = ticks[-1]
            assert last.status != TickStatus.FAILURE, last.error
            if registered_in is not None or last.skip_reason == "manifest unchanged":
                break
            if len(instance.get_dynamic_partitions("web_pages")) == args.urls:
                registered_in = len(ticks)
        ticks = [
            t
            for t in daemon.ticks("manifest_sensor")
            if t.run_ids or any(r.added_partitions for r in t.dynamic_partitions_request_results)
        ]
    durations = [t.end_timestamp - t.timestamp for t in ticks]
    partitions = instance.get_dynamic_partitions("web_pages")
    runs = instance.get_runs(dg.RunsFilter(job_name="web_ingest"))
    requested = sum(int(r.tags["media_assets/urls"]) for r in runs)
    print(
        f"  {len(ticks)} ticks added {len(partitions)} partitions (all by tick {registered_in}) "
        f"and {len(runs)} runs for {requested} URLs (the rest owed, {args.run_urls} a tick); "
        f"ticks (s): {', '.join(f'{d:.1f}' for d in durations)}"
    )
    assert len(partitions) == args.urls, f"{len(partitions)} partitions of {args.urls}"
    evals = evaluations(env, instance, ticks)
    print(f"  evaluations alone (s): {', '.join(f'{e:.1f}' for e in evals)}")
    return max(durations), evals


def sensor_skipped(
    env: dict[str, str], instance: dg.DagsterInstance, manifest: Path
) -> tuple[float, list[float]]:
    """``--no-sensor``: the partitions added directly, for what the other figures cost at a
    size whose ticks would take hours on a loaded machine (tick_s prints as nan); eval_s is the
    first page's evaluation against all of them."""
    keys = [e.key for e in read_manifest(manifest)[0].entries]
    registry.add_partitions(instance, "web_pages", keys)
    evals = evaluations(env, instance, [None])
    print(f"  {len(keys)} partitions added directly; first page evaluated in {evals[0]:.1f} s")
    return float("nan"), evals


def run_storage(
    storage: str, args: argparse.Namespace, work: Path, manifest: Path, base_env: dict[str, str]
) -> str:
    folder = work / storage
    home = folder / "home"
    home.mkdir(parents=True)
    postgres = None
    if storage.startswith("postgres"):
        folder.chmod(0o755)
        postgres = LocalPostgres(folder / "pg")
        postgres.start()
    try:
        (home / "dagster.yaml").write_text(
            yaml.safe_dump(instance_config(storage, home, postgres), sort_keys=False)
        )
        env = {**base_env, "DAGSTER_HOME": str(home), "MEDIA_ASSETS_DATA": str(folder / "data")}
        os.environ.update(env)  # the code server the daemon starts reads it
        with dg.DagsterInstance.from_config(str(home)) as instance:
            sample = work / "sample.jsonl"
            if args.render:
                started = time.perf_counter()
                report = ingest(sample, build_definitions(env), instance)
                print(
                    f"  rendered sample: {args.render} URLs in "
                    f"{time.perf_counter() - started:.1f} s,"
                    f" {len(report.failed_partitions)} failed"
                )
            if args.no_sensor:
                tick_s, evals = sensor_skipped(env, instance, manifest)
            else:
                tick_s, evals = sensor_ticks(args, env, instance)
            entries = read_manifest(manifest)[0].entries
            register_s = register_partitions(instance, [e.key for e in entries], storage)

            # Every URL in the registry, as the runs leave it once they have all run.
            started = time.perf_counter()
            store = build_resources(env)["object_store"]
            for start in range(0, len(entries), BATCH):  # as the runs do, a batch each
                registry.register(store, entries[start : start + BATCH])
            print(
                f"  registry of {args.urls} URLs written in {time.perf_counter() - started:.1f} s"
            )
            status, status_s = cli_status(env)
            print("  status: " + " | ".join(status.strip().splitlines()[:2]))
            again, again_s = cli_status(env)
            assert again == status, "a second status with nothing changed printed otherwise"
            print(f"  status again (the stored table, nothing changed): {again_s:.2f} s")
            scrape_s = scrape(env, instance)
            with webserver(env, folder / "webserver.log") as client:
                first, ui_s, listed = ui_partitions(client)
            print(f"  UI partitions query: {first:.2f} s cold, {ui_s:.2f} s again, {listed} keys")
    finally:
        if postgres is not None:
            postgres.stop()
    return (
        f"storage={storage} urls={args.urls} tick_s={tick_s:.2f} eval_s={max(evals):.2f} "
        f"register_s={register_s:.2f} "
        f"status_s={status_s:.2f} scrape_s={scrape_s:.2f} ui_partitions_s={ui_s:.2f}"
    )


def cli_status(env: dict[str, str]) -> tuple[str, float]:
    """What `media-assets status` prints, run as a person runs it, and its seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "media_assets.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--page-lines", type=int, default=10_000)
    parser.add_argument(
        "--run-urls", type=int, default=RUN_URLS_PER_TICK, help="MEDIA_ASSETS_RUN_URLS_PER_TICK"
    )
    parser.add_argument("--render", type=int, default=10, help="URLs ingested for real first")
    parser.add_argument(
        "--no-sensor", action="store_true", help="add the partitions directly, no sensor ticks"
    )
    parser.add_argument(
        "--storage",
        nargs="+",
        default=["postgres", "sqlite"],
        choices=["sqlite", "postgres", "postgres-stock"],
    )
    args = parser.parse_args()
    storages = [s for s in args.storage if "postgres" not in s or postgres_bin() is not None]
    if len(storages) < len(args.storage):
        print("PostgreSQL not installed (apt-get install postgresql): SQLite only")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        (work / "site").mkdir()
        paths = write_articles(work / "site", args.render)
        with serve(work / "site") as site:
            manifest = work / "manifest.jsonl"
            write_manifest(manifest, site.base_url, paths, args.urls)
            sample = work / "sample.jsonl"
            sample.write_text("".join(json.dumps({"url": site.base_url + p}) + "\n" for p in paths))
            base_env = {
                "MEDIA_ASSETS_MANIFEST": str(manifest),
                "MEDIA_ASSETS_PAGE_LINES": str(args.page_lines),
                "MEDIA_ASSETS_RUN_URLS_PER_TICK": str(args.run_urls),
                "MEDIA_ASSETS_SENSOR_INTERVAL_S": "1",
                "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
                "MEDIA_ASSETS_CHROMIUM": CHROMIUM,
                "DAGSTER_EVENT_BATCH_SIZE": "1000",
            }
            for storage in storages:
                print(f"{storage}:", flush=True)
                lines.append(run_storage(storage, args, work, manifest, {**os.environ, **base_env}))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
