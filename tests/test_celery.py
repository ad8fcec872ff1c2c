"""Steps on several machines, for real: a Redis broker, one Celery worker per queue (``gpu``,
``cpu``) sharing only the broker, S3 and a PostgreSQL instance, a video batch and a web batch run
through Dagster with the celery executor, and where each step ran read back from the run's own
events (dagster-celery records the worker's name on the engine event that starts each step in a
worker). The executor setting and the one rule behind both executors' tags need no broker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from media_assets import registry
from media_assets.assets import CHAINS
from media_assets.batching import range_tags
from media_assets.definitions import build_definitions, reconstructable_job
from media_assets.demo.server import SiteServer, folder_hook
from media_assets.executors import BROKER_ENV, CELERY_QUEUE_TAG, EXECUTOR_ENV, QUEUES
from media_assets.k8s import K8S_CONFIG_TAG
from media_assets.manifest import read_manifest
from media_assets.names import JOB_BY_KIND
from partitions import PARTITIONS_BY_KIND
from tests.helpers import deploy_storage, needs_chromium, pipeline_env, write_manifest
from tests.postgres import LocalPostgres, running_postgres
from tests.seaweed import SeaweedS3, free_ports

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
GPU_STEPS = {"transcript", "speaker_turns", "frame_text"}  # speech, speakers, vision
WORKER_EVENT = "Celery worker"  # dagster_celery.tasks: the engine event's metadata key
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "media_assets.celery_app", "worker"]
# One step at a time per worker; no gossip or mingle with other workers: faster to be ready.
WORKER_OPTIONS = [
    "--concurrency=1",
    "--prefetch-multiplier=1",
    "--without-gossip",
    "--without-mingle",
    "--loglevel=INFO",
]

needs_redis = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists(),
    reason="redis-server not installed: scripts/setup.sh installs Debian's redis-server",
)
# Redis, two workers and two batches: 2-3 minutes on 2 cores, 6 when other work shares them.
distributed = pytest.mark.timeout(600)


# Without a broker: the configuration that picks the executor, and the one rule both read.
# Then with one: a Redis server and a worker per queue, shared by the module's tests.


def test_the_executor_is_chosen_by_configuration() -> None:
    env = {"MEDIA_ASSETS_DATA": "/tmp/unused"}
    assert build_definitions(env).resolve_job_def("web_ingest").executor_def.name == "in_process"
    celery = {**env, EXECUTOR_ENV: "celery", BROKER_ENV: "redis://broker-host:6379/0"}
    job = build_definitions(celery).resolve_job_def("video_ingest")
    assert job.executor_def.name == "celery_queues"
    multiprocess = build_definitions({**env, EXECUTOR_ENV: "multiprocess"})
    assert multiprocess.resolve_job_def("web_ingest").executor_def.name == "multiprocess"
    with pytest.raises(ValueError, match=BROKER_ENV):
        build_definitions({**env, EXECUTOR_ENV: "celery"})
    with pytest.raises(ValueError, match=f"{EXECUTOR_ENV}='kubernetes'.*in_process"):
        build_definitions({**env, EXECUTOR_ENV: "kubernetes"})


@pytest.mark.parametrize("job_name", ["web_ingest", "video_ingest"])
def test_every_step_has_the_same_place_on_kubernetes_and_on_celery(job_name: str) -> None:
    job = build_definitions({"MEDIA_ASSETS_DATA": "/tmp/unused"}).resolve_job_def(job_name)
    places: dict[str, tuple[str, str]] = {}  # step -> (node pool, celery queue)
    for node in job.graph.nodes:
        pool = json.loads(node.tags[K8S_CONFIG_TAG])["pod_spec_config"]["node_selector"]
        places[node.name] = (pool["media-assets/pool"], node.tags[CELERY_QUEUE_TAG])
    assert all(k8s == queue for k8s, queue in places.values()), places
    on_gpu = {name for name, (_, queue) in places.items() if queue == "gpu"}
    assert on_gpu == (GPU_STEPS if job_name == "video_ingest" else set())


def stop(process: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM (a Celery worker finishes its task and leaves), then SIGKILL after ``grace_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(
    ready: Callable[[], object], what: str, processes: list[subprocess.Popen[bytes]], limit_s: float
) -> None:
    """Until ``ready()`` is true, failing early if one of ``processes`` exits."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            pytest.fail(f"{what}: a process exited with {[p.poll() for p in processes]}")
        try:
            if ready():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.3)
    pytest.fail(f"{what}: not ready after {limit_s} s")


@pytest.fixture(scope="module")
def broker(module_tmp: Path) -> Iterator[str]:
    """A Redis server on a free loopback port, nothing written to disk."""
    import redis

    (port,) = free_ports(1)
    log = (module_tmp / "redis.log").open("wb")
    options = f"--port {port} --bind 127.0.0.1 --appendonly no --dir {module_tmp}".split()
    server = subprocess.Popen(
        [REDIS_SERVER, *options, "--save", ""], stdout=log, stderr=subprocess.STDOUT
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_for(client.ping, "redis-server", [server], limit_s=20)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop(server)
        log.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def celery_env(
    module_tmp: Path, broker: str, seaweed: SeaweedS3, postgres: LocalPostgres
) -> Iterator[dict[str, str]]:
    """What every machine shares, as on separate machines: the broker, artifacts and the index in
    S3, the instance in PostgreSQL (deploy/dagster.yaml's storage). Set in this process too: the
    run's orchestration here loads the job again from the environment, as the workers do."""
    bucket, prefix = "media-assets-test", module_tmp.name
    env = {
        **pipeline_env(module_tmp / "orchestrator"),
        EXECUTOR_ENV: "celery",
        BROKER_ENV: broker,
        "MEDIA_ASSETS_S3_BUCKET": bucket,
        "MEDIA_ASSETS_S3_PREFIX": prefix,
        "MEDIA_ASSETS_S3_ENDPOINT": seaweed.endpoint,
        "MEDIA_ASSETS_INDEX_URI": f"s3://{bucket}/{prefix}/index",
        "AWS_ACCESS_KEY_ID": "test",  # SeaweedFS accepts any key
        "AWS_SECRET_ACCESS_KEY": "test",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "postgres",
        "DAGSTER_PG_USERNAME": "postgres",
        "DAGSTER_PG_PASSWORD": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def pg_instance(celery_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides=deploy_storage()) as instance:
        yield instance


@dataclass
class Workers:
    names: dict[str, str]  # queue -> worker node name
    queues: dict[str, set[str]]  # worker node name -> queues it consumes
    logs: dict[str, Path]

    def tail(self) -> str:
        return "\n".join(f"--- {q} worker\n{p.read_text()[-3000:]}" for q, p in self.logs.items())


@pytest.fixture(scope="module")
def workers(celery_env: dict[str, str], broker: str, module_tmp: Path) -> Iterator[Workers]:
    """One worker per queue, each consuming only its queue, one step at a time."""
    from celery import Celery

    logs = {queue: module_tmp / f"worker-{queue}.log" for queue in QUEUES}
    # Each worker in a folder of its own, with its own data folder: only the shared services in
    # the environment connect them.
    machines = {queue: module_tmp / f"{queue}-machine" for queue in QUEUES}
    for folder in machines.values():
        folder.mkdir()
    processes = [
        subprocess.Popen(
            [*CELERY_WORKER, "-Q", queue, "-n", f"{queue}@%h", *WORKER_OPTIONS],
            env={**os.environ, **celery_env, **pipeline_env(machines[queue])},
            cwd=machines[queue],
            stdout=logs[queue].open("wb"),
            stderr=subprocess.STDOUT,
        )
        for queue in QUEUES
    ]
    client = Celery(broker=broker, backend=broker)
    active: dict[str, list[dict[str, object]]] = {}

    def both_answer() -> bool:
        active.update(client.control.inspect(timeout=1.0).active_queues() or {})
        return len(active) == len(QUEUES)

    try:
        wait_for(both_answer, "celery workers", processes, limit_s=90)
        queues = {name: {str(q["name"]) for q in served} for name, served in active.items()}
        names = {queue: name for name in queues for queue in QUEUES if name.startswith(queue)}
        yield Workers(names, queues, logs)
    finally:
        client.close()
        for process in processes:
            stop(process)


@dataclass
class Batch:
    run_id: str
    success: bool
    keys: list[str]
    steps_started: set[str]
    worker_of: dict[str, str]  # step -> the worker that executed it
    queue_of: dict[str, str]  # step -> the queue it was submitted to


def run_batch(
    kind: str, urls: list[str], instance: dg.DagsterInstance, tmp: Path, env: dict[str, str]
) -> Batch:
    """Register ``urls`` and run their batch with the celery executor, as the run worker of a
    sensor-launched run does (the job loaded again by reference, not executed in process)."""
    manifest, _ = read_manifest(write_manifest(tmp / f"{kind}.jsonl", urls, kind=kind))
    registry.register(build_definitions(env).resources["object_store"], manifest.entries)
    keys = [entry.key for entry in manifest.entries]
    instance.add_dynamic_partitions(PARTITIONS_BY_KIND[kind].name, keys)
    job = reconstructable_job(JOB_BY_KIND[kind])
    with dg.execute_job(job, instance=instance, tags=range_tags(keys)) as result:
        run_id, success = result.run_id, result.success
    started = {
        str(e.step_key)
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if e.step_key
    }
    worker_of: dict[str, str] = {}
    queue_of: dict[str, str] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        metadata = event.engine_event_data.metadata
        if WORKER_EVENT in metadata:
            worker_of[event.step_key] = str(metadata[WORKER_EVENT].value)
        message = entry.user_message
        if message.startswith("Submitting celery task") and ' to queue "' in message:
            queue_of[event.step_key] = message.rsplit(' to queue "', 1)[1].rstrip('".')
    return Batch(run_id, success, keys, started, worker_of, queue_of)


@dataclass
class Runs:
    video: Batch
    web: Batch
    workers: Workers
    instance: dg.DagsterInstance


@pytest.fixture(scope="module")
def runs(
    workers: Workers,
    celery_env: dict[str, str],
    module_site: SiteServer,
    demo_media: Path,
    module_tmp: Path,
    pg_instance: dg.DagsterInstance,
) -> Runs:
    module_site.add_hook(folder_hook("/media/", demo_media))
    base = module_site.base_url
    # Audio only: speech recognition and speakers do real work on the gpu worker; on-screen
    # text runs there too, with no frames to read (a talk's slides would cost a minute of OCR).
    video = run_batch(
        "video", [f"{base}/media/swarm-notes.m4a"], pg_instance, module_tmp, celery_env
    )
    web = run_batch(
        "web",
        [f"{base}/docs/getting-started.html", f"{base}/blog/winter-bees.html"],
        pg_instance,
        module_tmp,
        celery_env,
    )
    for batch in (video, web):
        assert batch.success, f"run {batch.run_id} failed\n{workers.tail()}"
    return Runs(video, web, workers, pg_instance)


@needs_redis
@distributed
def test_each_worker_consumes_only_its_own_queue(workers: Workers) -> None:
    assert workers.queues == {workers.names[q]: {q} for q in QUEUES}


@needs_redis
@needs_chromium
@distributed
def test_gpu_steps_ran_on_the_gpu_worker_and_no_other_step_did(runs: Runs) -> None:
    gpu, cpu = runs.workers.names["gpu"], runs.workers.names["cpu"]
    video = runs.video
    # Every step of the chain started in a worker, none in this (orchestrating) process.
    assert video.steps_started == set(CHAINS["video"]) >= GPU_STEPS
    assert set(video.worker_of) == video.steps_started
    on_gpu = {step for step, worker in video.worker_of.items() if worker == gpu}
    assert on_gpu == GPU_STEPS
    assert {video.worker_of[step] for step in video.steps_started - GPU_STEPS} == {cpu}
    assert {step for step, queue in video.queue_of.items() if queue == "gpu"} == GPU_STEPS


@needs_redis
@needs_chromium
@distributed
def test_a_web_batch_runs_entirely_on_the_cpu_worker(runs: Runs) -> None:
    web = runs.web
    assert web.steps_started and set(web.worker_of) == web.steps_started
    assert set(web.worker_of.values()) == {runs.workers.names["cpu"]}
    assert set(web.queue_of.values()) == {"cpu"}


@needs_redis
@needs_chromium
@distributed
def test_the_workers_materialized_every_stage_of_both_batches(runs: Runs) -> None:
    for kind, batch in (("video", runs.video), ("web", runs.web)):
        for asset in CHAINS[kind]:
            done = runs.instance.get_materialized_partitions(dg.AssetKey(asset))
            assert set(batch.keys) <= done, f"{asset} not materialized for {kind}"
