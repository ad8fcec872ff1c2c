"""What crashes and bad URLs cost: 50 URLs ingested while the process is killed (SIGKILL) at
random points 10 times and resumed, against a clean run; and a batch with 5% failing URLs
against one with none, in one run of this script.

    .venv/bin/python bench/resume_cost.py [--urls 50] [--kills 10] [--seed 1]

repeated_steps counts (asset, partition) pairs computed more than once over all the runs (a step
reused from its checkpoint is not computed). A killed process's start-up and the step it was in
when killed belong to the kill, not to resuming: resumed_ratio is the wall time of all the
processes less the killed processes' start-ups (process start to first step) and steps in flight,
over the clean run's (time_ratio, printed before it, keeps them); the clean run is run before and
after the kills and their mean taken, so that a machine whose load changes over the minutes this
takes weighs less. startup_ratio is a process's start-up to its first step over that of a bare
one-asset Dagster job on a default instance started right after it: the median of those pairs'
ratios, over the processes that reached a step.

A step pod on Kubernetes (``k8s_job_executor``) runs ``dagster api execute_step``, which loads the
code location by its pointer (``media_assets.definitions``, ``defs``) and the instance, then runs
one step: pod_startup_ratio is that command's start-up to its step (``page_elements`` of the
clean run's batch) over the same command running the bare job's step, the median of 3 pairs'.
Last line:
    repeated_steps=<n> resumed_ratio=<value> failing_batch_ratio=<value> startup_ratio=<value>
    pod_startup_ratio=<value>
"""

from __future__ import annotations

import argparse
import os
import random
import runpy
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg

from bench.common import write_spa_site
from media_assets.assets import web_assets
from media_assets.batching import range_tags
from media_assets.dagster_compat import step_pod_command
from media_assets.definitions import build_definitions
from media_assets.demo.server import serve
from media_assets.ingest import ingest
from media_assets.names import JOB_BY_KIND, PARTITION_SET_BY_KIND
from resources import build_resources


def computed_steps(home: Path) -> Counter[tuple[str, str]]:
    """(asset, partition) -> times it was computed, from the materializations' metadata."""
    os.environ["DAGSTER_HOME"] = str(home)
    counts: Counter[tuple[str, str]] = Counter()
    with dg.DagsterInstance.get() as instance:
        for assets_def in web_assets:
            for key in assets_def.keys:
                records = instance.fetch_materializations(key, limit=10_000).records
                for record in records:
                    event = record.asset_materialization
                    work = event.metadata.get("work")
                    if work is not None and work.value == "computed":
                        counts[(key.to_user_string(), event.partition)] += 1
    return counts


def artifacts_written(data: Path) -> int:
    """Stage records written so far (the registry and dead letters not counted)."""
    folder = data / "artifacts"
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*.json") if p.relative_to(folder).parts[0][0] != "_")


def unmaterialized(home: Path, urls: int) -> dict[str, int]:
    """Assets with fewer than ``urls`` materialized partitions, and how many they have."""
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        counts = {
            key.to_user_string(): len(instance.get_materialized_partitions(key))
            for assets_def in web_assets
            for key in assets_def.keys
        }
    return {asset: n for asset, n in counts.items() if n != urls}


def step_starts(home: Path) -> list[float]:
    """Wall-clock times at which steps started, over every run of the instance."""
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        records = instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_START), limit=100_000
        )
        return sorted(r.timestamp for r in records)


# A bare one-asset job, materialized as `media-assets ingest` materializes: in the process, on the
# instance DAGSTER_HOME names.
BARE_JOB = """
import dagster as dg

@dg.asset
def one() -> int:
    return 1

if __name__ == "__main__":
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([one], instance=instance).success
"""


# The same asset as the code location a step pod loads (the definitions' ``defs``).
BARE_DEFS = """
import dagster as dg

@dg.asset
def one() -> int:
    return 1

defs = dg.Definitions(assets=[one], jobs=[dg.define_asset_job("bare", [one])])
"""
ROOT = Path(__file__).resolve().parents[1]


def pod_startup(
    job: dg.JobDefinition,
    code: str,
    step: str,
    env: dict[str, str],
    tags: dict[str, str] | None = None,
) -> float:
    """Seconds from the start of ``dagster api execute_step`` (the command a step pod runs) to
    its step's start, for a new run of ``job`` whose code location is ``defs`` of ``code``."""
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        run_id, command = step_pod_command(instance, job, code, str(ROOT), step, tags)
        begin = time.time()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_START
        ).records
    assert records, f"no step started: {done.stderr[-2000:]}"
    return records[0].timestamp - begin


def pod_startups(
    work: Path, env: dict[str, str], keys: list[str], tries: int = 3
) -> tuple[list[float], list[float]]:
    """Start-ups of step pods of the code location (``page_elements`` over the clean run's batch
    ``keys``) and of the bare job's, alternated so that each pair meets the same load."""
    job = build_definitions(env).resolve_job_def(JOB_BY_KIND["web"])
    (work / "bare_pod").mkdir()
    bare_file = work / "bare_pod" / "bare_defs.py"
    bare_file.write_text(BARE_DEFS)
    bare_job = runpy.run_path(str(bare_file))["defs"].resolve_job_def("bare")
    ours, bare = [], []
    for n in range(tries):
        ours.append(
            pod_startup(job, "media_assets.definitions", "page_elements", env, range_tags(keys))
        )
        home = work / "bare_pod" / f"home-{n}"
        home.mkdir()
        env_bare = {**os.environ, "DAGSTER_HOME": str(home)}
        bare.append(pod_startup(bare_job, str(bare_file), "one", env_bare))
    return ours, bare


def startups(windows: list[tuple[float, float, bool]], starts: list[float]) -> list[float | None]:
    """Seconds from each process's start to its first step (None if it reached none)."""
    found: list[float | None] = []
    for begin, end, _ in windows:
        inside = [t for t in starts if begin <= t <= end]
        found.append(inside[0] - begin if inside else None)
    return found


def bare_startup(work: Path, n: int) -> float:
    """Start-up to the first step of a bare one-asset job in a fresh process: measured right
    after each ingest process, so that the two meet the same load on a shared machine."""
    home = work / f"bare-{n}"
    home.mkdir()
    script = home / "bare_job.py"
    script.write_text(BARE_JOB)
    begin = time.time()
    subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=True,
        capture_output=True,
        cwd=home,
    )
    (seconds,) = startups([(begin, time.time(), True)], step_starts(home))
    assert seconds is not None, "the bare job's step never started"
    return seconds


def paired_ratio(ours: Sequence[float | None], bare: Sequence[float]) -> float:
    """Median over the pairs measured one after the other of our start-up over the bare one."""
    return statistics.median(o / b for o, b in zip(ours, bare, strict=True) if o is not None)


def split_lost_time(
    windows: list[tuple[float, float, bool]], starts: list[float]
) -> tuple[float, float]:
    """For the killed processes: (start-up until their first step, the step in flight when
    killed, i.e. from its start to the kill)."""
    startup = in_flight = 0.0
    for begin, end, finished in windows:
        inside = [t for t in starts if begin <= t <= end]
        if finished:
            continue
        if not inside:
            startup += end - begin  # killed before any step started
            continue
        startup += inside[0] - begin
        in_flight += end - inside[-1]
    return startup, in_flight


def run_cli(
    manifest: Path, env: dict[str, str], kill_after_artifacts: int | None
) -> tuple[float, bool]:
    """Run `media-assets ingest`; SIGKILL it once it has written that many more artifacts."""
    data = Path(env["MEDIA_ASSETS_DATA"])
    target = artifacts_written(data) + kill_after_artifacts if kill_after_artifacts else None
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "media_assets.cli", "ingest", str(manifest)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while process.poll() is None:
        if target is not None and artifacts_written(data) >= target:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return time.perf_counter() - started, False
        time.sleep(0.02)
    return time.perf_counter() - started, process.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=50)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = write_spa_site(work / "site", args.urls)
        with serve(work / "site") as site:
            manifest = work / "manifest.jsonl"
            manifest.write_text("".join(f'{{"url": "{site.base_url}{p}"}}\n' for p in paths))

            def env_for(name: str) -> dict[str, str]:
                (work / name / "home").mkdir(parents=True)
                return {
                    **os.environ,
                    "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
                    "MEDIA_ASSETS_DATA": str(work / name / "data"),
                    "DAGSTER_HOME": str(work / name / "home"),
                }

            clean_env = env_for("clean")
            clean_begin = time.time()
            clean_s, ok = run_cli(manifest, clean_env, None)
            assert ok, "the clean run failed"
            clean_window = (clean_begin, clean_begin + clean_s, True)
            bare = [bare_startup(work, 0)]

            crash_env = env_for("crash")
            # Kill points spread over the whole chain: after 1 to 5*urls/kills new artifacts.
            span = max(2, 5 * args.urls // args.kills)
            total_s, kills, finished = 0.0, 0, False
            windows: list[tuple[float, float, bool]] = []
            while not finished:
                kill_after = rng.randint(1, span) if kills < args.kills else None
                begin = time.time()
                seconds, finished = run_cli(manifest, crash_env, kill_after)
                windows.append((begin, begin + seconds, finished))
                bare.append(bare_startup(work, len(bare)))
                total_s += seconds
                kills += not finished
            # The clean run again, on a machine whose load may have changed meanwhile: the
            # resumed ingest is compared with the mean of the runs before and after it.
            again_s, ok = run_cli(manifest, env_for("clean_again"), None)
            assert ok, "the second clean run failed"
            crash_starts = step_starts(Path(crash_env["DAGSTER_HOME"]))
            startup_s, in_flight_s = split_lost_time(windows, crash_starts)
            ingest_startups = startups(
                [clean_window], step_starts(Path(clean_env["DAGSTER_HOME"]))
            ) + startups(windows, crash_starts)
            clean_steps = computed_steps(Path(clean_env["DAGSTER_HOME"]))
            crash_steps = computed_steps(Path(crash_env["DAGSTER_HOME"]))
            repeated = sum(n - 1 for n in crash_steps.values() if n > 1)
            missing = unmaterialized(Path(crash_env["DAGSTER_HOME"]), args.urls)
            os.environ["DAGSTER_HOME"] = clean_env["DAGSTER_HOME"]
            with dg.DagsterInstance.get() as instance:
                keys = instance.get_dynamic_partitions(PARTITION_SET_BY_KIND["web"])
            pods, bare_pods = pod_startups(work, clean_env, keys)

            failing_ratio = failing_batch_ratio(work, site.base_url, paths)
    clean_s = (clean_s + again_s) / 2
    print(
        f"clean run: {clean_s:.1f} s (mean of two, one before and one after the kills); "
        f"with {kills} kills: {total_s:.1f} s over {kills + 1} "
        f"processes; steps computed: clean {sum(clean_steps.values())}, crash "
        f"{sum(crash_steps.values())} (the rest reused checkpoints of killed runs); "
        f"assets short of {args.urls} materialized partitions: {missing or 'none'}"
    )
    print(
        f"killed processes: {startup_s:.1f} s starting up before their first step, "
        f"{in_flight_s:.1f} s in the step in flight when killed; all processes over the clean "
        f"run (the kills' costs kept): time_ratio={total_s / clean_s:.3f}"
    )
    reached = [s for s in ingest_startups if s is not None]
    print(
        f"start-up to the first step: ingest {statistics.median(reached):.2f} s (median of "
        f"{len(reached)} processes), bare one-asset job {statistics.median(bare):.2f} s (one "
        f"after each); `dagster api execute_step` (a step pod) to its step: ours "
        f"{statistics.median(pods):.2f} s, the bare job's {statistics.median(bare_pods):.2f} s "
        f"(medians of {len(pods)}, alternated); ratios are medians over those pairs"
    )
    print(
        f"repeated_steps={repeated} "
        f"resumed_ratio={(total_s - in_flight_s - startup_s) / clean_s:.3f} "
        f"failing_batch_ratio={failing_ratio:.3f} "
        f"startup_ratio={paired_ratio(ingest_startups, bare):.2f} "
        f"pod_startup_ratio={paired_ratio(pods, bare_pods):.2f}"
    )
    return 0 if not missing else 1


def failing_batch_ratio(work: Path, base_url: str, paths: list[str]) -> float:
    """Ingest time of a batch where 5% of URLs 404, over the same batch with none failing."""
    failing = [p if i % 20 != 7 else f"/missing-{i}.html" for i, p in enumerate(paths)]
    timings = {}
    for name, batch in (("none_failing", paths), ("five_percent_failing", failing)):
        manifest = work / f"{name}.jsonl"
        manifest.write_text("".join(f'{{"url": "{base_url}{p}"}}\n' for p in batch))
        env = {"MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1", "MEDIA_ASSETS_DATA": str(work / name)}
        build_resources(env)["embedder"].embed_documents(["warm up"])
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            report = ingest(manifest, build_definitions(env), instance)
            timings[name] = time.perf_counter() - started
        print(
            f"{name}: {timings[name]:.1f} s, {len(report.runs)} runs, "
            f"{len(report.failed_partitions)} dead-lettered"
        )
    return timings["five_percent_failing"] / timings["none_failing"]


if __name__ == "__main__":
    raise SystemExit(main())
