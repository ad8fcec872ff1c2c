"""The manifest sensor pages through a long manifest under the sensor daemon's own iteration:
every line registered once over several ticks, runs requested for a budget of URLs a tick with
the rest owed in the cursor, appended lines picked up alone, a rewritten manifest read again from
its start with what left it removed."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from media_assets import registry
from media_assets.dagster_compat import (
    EventLogEntry,
    SqliteEventLogStorage,
    TickStatus,
    partition_range_of_run,
)
from media_assets.instance import local_instance_config
from media_assets.manifest import parse_manifest, read_manifest
from media_assets.postgres_events import BatchingPostgresEventLogStorage
from resources import partition_checks
from resources.fetch import TICK_TARGET_S
from resources.storage import LocalObjectStore
from sensors.manifest import (
    MAX_RUNS_PER_TICK,
    IngestPlan,
    ManifestCursor,
    plan_ingest,
    run_budget,
)
from tests.helpers import SensorDaemon
from tests.postgres import postgres_bin, running_postgres

PAGE_LINES = 100
URLS = 300
BATCH_SIZE = 25
RUN_URLS = 50  # two runs a tick: a page registers 100 URLs, 50 of them wait for a later tick


def write_lines(path: Path, urls: list[str], mode: str = "w") -> None:
    with path.open(mode) as file:
        file.writelines(json.dumps({"url": u, "kind": "web"}) + "\n" for u in urls)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SensorDaemon, Path]]:
    with sensor_daemon(tmp_path_factory.mktemp("scale")) as running:
        yield running


@contextmanager
def sensor_daemon(folder: Path, **env: str) -> Iterator[tuple[SensorDaemon, Path]]:
    """The sensor daemon over a manifest of ``URLS`` pages in ``folder``, read ``PAGE_LINES`` a
    tick; ``env`` sets more of the code location's variables."""
    manifest = folder / "manifest.jsonl"
    write_lines(manifest, [f"https://example.com/page/{i}" for i in range(URLS)])
    patch = pytest.MonkeyPatch()
    patch.setenv("MEDIA_ASSETS_MANIFEST", str(manifest))
    patch.setenv("MEDIA_ASSETS_PAGE_LINES", str(PAGE_LINES))
    patch.setenv("MEDIA_ASSETS_SENSOR_INTERVAL_S", "1")
    patch.setenv("MEDIA_ASSETS_BATCH_SIZE", str(BATCH_SIZE))
    patch.setenv("MEDIA_ASSETS_RUN_URLS_PER_TICK", str(RUN_URLS))
    patch.setenv("MEDIA_ASSETS_DATA", str(folder / "data"))
    for name, value in env.items():
        patch.setenv(name, value)
    # Runs wait in the queue (no queue daemon here): the test is about what the ticks plan.
    queued = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
        }
    }
    home = folder / "home"
    home.mkdir()
    overrides = {**local_instance_config(home), **queued}
    try:
        with (
            dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance,
            SensorDaemon(instance) as d,
        ):
            yield d, manifest
    finally:
        patch.undo()


def web_partitions(instance: dg.DagsterInstance) -> list[str]:
    return instance.get_dynamic_partitions("web_pages")


def requested_keys(instance: dg.DagsterInstance) -> list[str]:
    """Partition keys of every ingest run requested so far (a key twice: a duplicate request)."""
    ordered = web_partitions(instance)
    keys = []
    for run in instance.get_runs(filters=dg.RunsFilter(job_name="web_ingest")):
        start = run.tags["dagster/asset_partition_range_start"]
        end = run.tags["dagster/asset_partition_range_end"]
        keys += ordered[ordered.index(start) : ordered.index(end) + 1]
    return keys


def tick_until_read(daemon: SensorDaemon, limit: int = 40) -> list:
    """Ticks of the manifest sensor until one finds nothing more to read; returns the new ones."""
    before = seen = len(daemon.ticks("manifest_sensor"))
    for _ in range(limit):
        daemon.tick()
        ticks = daemon.ticks("manifest_sensor")
        # A loaded machine can make an iteration find the sensor not yet due: no new tick, and
        # the last one is still the previous test's "manifest unchanged".
        if len(ticks) == seen:
            continue
        seen = len(ticks)
        assert ticks[-1].status != TickStatus.FAILURE, ticks[-1].error
        if ticks[-1].skip_reason == "manifest unchanged":
            return ticks[before:-1]
    reasons = [(t.status, t.skip_reason, t.cursor) for t in daemon.ticks("manifest_sensor")]
    raise AssertionError(f"the sensor still had lines to read after {limit} ticks: {reasons}")


def added(ticks: list) -> list[str]:
    return [
        key
        for tick in ticks
        for result in tick.dynamic_partitions_request_results
        for key in result.added_partitions or []
    ]


def test_a_long_manifest_is_read_a_page_a_tick_without_loss_or_duplicate(daemon) -> None:
    d, manifest = daemon
    expected = [e.key for e in read_manifest(manifest)[0].entries]
    ticks = tick_until_read(d)
    # Every URL registered by the fourth tick; runs for RUN_URLS a tick, the rest owed.
    pages = URLS // PAGE_LINES
    assert [len(added([t])) for t in ticks] == [PAGE_LINES] * pages + [0] * (len(ticks) - pages)
    assert len(ticks) == URLS // RUN_URLS
    assert all(len(t.run_ids) == RUN_URLS // BATCH_SIZE for t in ticks)
    assert web_partitions(d.instance) == expected  # in manifest order: runs cover ranges
    requested = requested_keys(d.instance)
    assert sorted(requested) == sorted(expected)  # each key in exactly one run


def test_appended_lines_alone_are_read_next(daemon) -> None:
    d, manifest = daemon
    before = web_partitions(d.instance)
    new = [f"https://example.com/appended/{i}" for i in range(160)]
    write_lines(manifest, [*new[:3], "https://example.com/page/7"], "a")  # one known again
    write_lines(manifest, new[3:], "a")
    ticks = tick_until_read(d)
    keys = [e.key for e in read_manifest(manifest)[0].entries]
    assert added(ticks[:2]) == keys[len(before) :]  # 161 lines: a full page, then the rest
    assert web_partitions(d.instance) == keys
    assert sorted(requested_keys(d.instance)) == sorted(keys)
    runs = d.instance.get_runs(filters=dg.RunsFilter(job_name="remove_sources"))
    assert runs == []  # appending removes nothing


def test_a_rewritten_manifest_is_read_again_and_what_left_it_is_removed(daemon) -> None:
    d, manifest = daemon
    kept = [f"https://example.com/page/{i}" for i in range(200)]
    fresh = [f"https://example.com/fresh/{i}" for i in range(40)]
    write_lines(manifest, [*fresh, *kept])  # replaced: same size class, another start
    previous = set(web_partitions(d.instance))
    ticks = tick_until_read(d)
    assert len(ticks) == 3
    listed = {e.key for e in read_manifest(manifest)[0].entries}
    assert set(added(ticks)) == listed - previous
    [removal] = d.instance.get_runs(filters=dg.RunsFilter(job_name="remove_sources"))
    assert removal.run_id in ticks[-1].run_ids  # requested once the pass reached the end
    removed = removal.run_config["ops"]["forget_sources"]["config"]["keys"]["web"]
    assert set(removed) == previous - listed and len(removed) == URLS - 200 + 160
    keys = requested_keys(d.instance)
    assert len(keys) == len(set(keys))  # no partition in two ingest runs


def test_a_page_of_many_new_urls_gets_larger_batches_not_more_runs() -> None:
    text = "".join(json.dumps({"url": f"https://example.com/{i}"}) + "\n" for i in range(10_000))
    plan = plan_ingest(parse_manifest(text, "jsonl"), {}, batch_size=50, remove=False)
    assert len(plan.ingest_runs) == MAX_RUNS_PER_TICK
    assert {r.tags["media_assets/urls"] for r in plan.ingest_runs} == {"500"}
    small = plan_ingest(parse_manifest(text[: text.index("/900")], "jsonl"), {}, 50, remove=False)
    assert len(small.ingest_runs) == 18  # under the cap: batches as configured


def test_a_burst_of_partition_checks_reads_the_set_once_and_sees_its_own_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    stock_read = SqliteEventLogStorage.get_dynamic_partitions

    def get_dynamic_partitions(self: SqliteEventLogStorage, name: str) -> Sequence[str]:
        reads.append(name)
        return stock_read(self, name)

    monkeypatch.setattr(SqliteEventLogStorage, "get_dynamic_partitions", get_dynamic_partitions)
    monkeypatch.setattr(partition_checks, "SNAPSHOT_S", 60.0)  # a burst however slow the machine
    keys = [f"k{i}" for i in range(200)]
    overrides = local_instance_config(tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        instance.add_dynamic_partitions("pages", keys[:150])
        # As the daemon applies a sensor's request: every key checked, one by one.
        found = [instance.has_dynamic_partition("pages", k) for k in keys]
        assert found == [True] * 150 + [False] * 50 and reads == ["pages"]
        instance.delete_dynamic_partition("pages", keys[0])
        instance.add_dynamic_partitions("pages", keys[150:])
        assert not instance.has_dynamic_partition("pages", keys[0])  # its own change, at once
        assert instance.has_dynamic_partition("pages", keys[199])


def test_a_partition_check_in_a_burst_holds_when_the_read_outlasts_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of 100,000 keys on a loaded machine can take longer than the snapshot lives: the
    keys it read still answer the check that asked for them (they once answered "missing", and
    the daemon failed to create a run over partitions added ticks before)."""
    clock = [0.0]
    monkeypatch.setattr(partition_checks.time, "monotonic", lambda: clock[0])
    stock_read = SqliteEventLogStorage.get_dynamic_partitions

    def slow_read(self: SqliteEventLogStorage, name: str) -> Sequence[str]:
        clock[0] += 2 * partition_checks.SNAPSHOT_S
        return stock_read(self, name)

    monkeypatch.setattr(SqliteEventLogStorage, "get_dynamic_partitions", slow_read)
    overrides = local_instance_config(tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        instance.add_dynamic_partitions("pages", ["a", "b"])
        checks = [instance.has_dynamic_partition("pages", "a") for _ in range(40)]
        assert all(checks) and clock[0] > 0  # the burst's reads ran, and each answered


def run_keys_of(plan: IngestPlan, ordered: list[str]) -> list[str]:
    """The partition keys of a plan's ingest runs, range by range over ``ordered``."""
    keys = []
    for run in plan.ingest_runs:
        start, end = partition_range_of_run(run.tags) or ("", "")
        keys += ordered[ordered.index(start) : ordered.index(end) + 1]
    return keys


def test_runs_past_a_ticks_budget_are_owed_in_the_cursor_and_requested_once() -> None:
    urls = [f"https://example.com/owed/{i}" for i in range(230)]
    text = "".join(json.dumps({"url": u}) + "\n" for u in urls)
    data = text.encode()
    manifest = parse_manifest(text, "jsonl")
    keys = [e.key for e in manifest.entries]
    first = plan_ingest(manifest, {}, 50, "1.0", run_urls=100, remove=False)
    assert first.added == {"web": keys} and len(first.ingest_runs) == 2
    assert first.summary() == "230 new URLs, 100 URLs in 2 runs, 130 waiting for runs"
    # The daemon added every key; the cursor carries what is owed, through its text form.
    cursor = ManifestCursor.parse(
        ManifestCursor().after(data, len(data), 231, first.pending).serialize()
    )
    assert sum(p.count for p in cursor.pending) == 130
    nothing_new = parse_manifest("", "jsonl")
    second = plan_ingest(
        nothing_new, {"web": keys}, 50, "1.9", run_urls=100, owed=cursor.pending, remove=False
    )
    retried = plan_ingest(
        nothing_new, {"web": keys}, 50, "1.9", run_urls=100, owed=cursor.pending, remove=False
    )
    assert [r.run_key for r in retried.ingest_runs] == [r.run_key for r in second.ingest_runs]
    assert second.added == {} and len(second.ingest_runs) == 2
    # The manifest is rewritten without the last 10 URLs: they are removed, not run.
    kept = parse_manifest("".join(text.splitlines(keepends=True)[:220]), "jsonl")
    third = plan_ingest(kept, {"web": keys}, 50, "2.0", run_urls=100, owed=second.pending)
    assert third.removed == {"web": keys[220:]} and third.pending == []
    requested = [k for plan in (first, second, third) for k in run_keys_of(plan, keys)]
    assert sorted(requested) == sorted(keys[:220])  # each kept URL in one run
    # Partitions deleted by hand under an owed range: reported, never requested.
    lost = plan_ingest(nothing_new, {"web": keys[:100]}, 50, "3.0", owed=first.pending)
    assert lost.ingest_runs == [] and "backfill" in lost.lost[0]


def test_a_run_registers_its_urls_from_its_page_of_the_manifest(tmp_path: Path) -> None:
    lines = [json.dumps({"url": f"https://example.com/r/{i}"}) + "\n" for i in range(6)]
    head = "".join(lines[:2]).encode()
    page = "".join(lines[2:4]).encode()
    # Past the page the file is unreadable as a whole (a NUL byte): only the page can serve.
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(head + page + b"\x00" + "".join(lines[4:]).encode())
    wanted = [e.key for e in parse_manifest("".join(lines[2:4]), "jsonl").entries]
    store = LocalObjectStore(root=str(tmp_path / "store"))

    @dg.asset
    def registers() -> list[str]:
        return sorted(registry.register_from_manifest(store, wanted, str(manifest)))

    tags = {registry.MANIFEST_BYTES_TAG: f"{len(head)}-{len(head) + len(page)}"}
    with dg.instance_for_test() as instance:
        result = dg.materialize([registers], instance=instance, tags=tags)
        assert result.output_for_node("registers") == sorted(wanted)
        untagged = dg.materialize([registers], instance=instance)
        assert untagged.output_for_node("registers") == []  # the whole file: not a manifest
    assert registry.lookup(store, wanted[0]).url == "https://example.com/r/2"


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL not installed: run scripts/setup.sh")
def test_postgres_event_log_writes_a_runs_plans_in_one_batch_and_marks_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_postgres() as server:
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        one_by_one: list[object] = []  # planned events that took the stock, per-event path
        stock = BatchingPostgresEventLogStorage.store_event

        def store_event(self: BatchingPostgresEventLogStorage, event: EventLogEntry) -> None:
            if event.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
                one_by_one.append(event)
            stock(self, event)

        monkeypatch.setattr(BatchingPostgresEventLogStorage, "store_event", store_event)
        # dagster-postgres ships psycopg2; plain postgresql:// would ask SQLAlchemy for psycopg 3
        db = {"postgres_url": server.url.replace("postgresql://", "postgresql+psycopg2://")}
        events = {
            "module": "media_assets.postgres_events",
            "class": "BatchingPostgresEventLogStorage",
        }
        overrides = {
            "run_storage": {
                "module": "dagster_postgres.run_storage",
                "class": "PostgresRunStorage",
                "config": db,
            },
            "event_log_storage": {**events, "config": db},
            "schedule_storage": {
                "module": "dagster_postgres.schedule_storage",
                "class": "PostgresScheduleStorage",
                "config": db,
            },
        }
        pages = dg.DynamicPartitionsDefinition(name="pages")

        @dg.asset(partitions_def=pages)
        def first() -> None:
            raise RuntimeError("every partition of the run fails")

        @dg.asset(partitions_def=pages, deps=[first])
        def second() -> None: ...

        keys = [f"p{i}" for i in range(40)]
        job = dg.define_asset_job("both", [first, second], partitions_def=pages)
        defs = dg.Definitions(assets=[first, second], jobs=[job])
        with dg.instance_for_test(overrides=overrides) as instance:
            assert type(instance.event_log_storage).__name__ == "BatchingPostgresEventLogStorage"
            instance.add_dynamic_partitions("pages", keys)
            result = defs.get_job_def("both").execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": "p0",
                    "dagster/asset_partition_range_end": "p39",
                },
                raise_on_error=False,
            )
            assert not result.success
            planned = instance.get_event_records(
                dg.EventRecordsFilter(
                    event_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                    asset_key=dg.AssetKey("second"),
                ),
                limit=1000,
            )
            partitions = [
                r.event_log_entry.dagster_event.event_specific_data.partition for r in planned
            ]
            assert sorted(partitions) == sorted(keys) and one_by_one == []
            status = instance.get_status_by_partition(dg.AssetKey("first"), keys, pages)
            assert status is not None and set(status.values()) == {dg.AssetPartitionStatus.FAILED}


def test_under_the_daemon_a_slow_evaluation_moves_one_batch_a_tick_and_loses_none(
    tmp_path: Path,
) -> None:
    # A target no evaluation keeps under a quarter of: every tick is "slow", so each requests
    # only its first batch (not RUN_URLS // BATCH_SIZE of them) and owes the rest.
    with sensor_daemon(tmp_path, MEDIA_ASSETS_TICK_TARGET_S="0.0001") as (d, manifest):
        ticks = tick_until_read(d, limit=URLS // BATCH_SIZE + 10)
        assert [len(t.run_ids) for t in ticks] == [1] * (URLS // BATCH_SIZE)
        expected = [e.key for e in read_manifest(manifest)[0].entries]
        assert sorted(requested_keys(d.instance)) == sorted(expected)  # each key in one run


def test_a_slow_evaluation_leaves_the_runs_the_rest_of_the_ticks_target() -> None:
    assert run_budget(500, 0.3) == 500, "a quick evaluation keeps the whole budget"
    assert run_budget(500, TICK_TARGET_S / 2) == 250
    assert run_budget(500, TICK_TARGET_S * 3) == 1, "the first batch still moves"
    # Same batches whatever the budget, so a retried tick requests the same run keys.
    text = "".join(f'{{"url": "https://example.org/{i}"}}\n' for i in range(400))
    manifest = parse_manifest(text, "jsonl")
    full = plan_ingest(manifest, {}, 50, "1.0", run_urls=run_budget(400, 0.1), remove=False)
    slow = plan_ingest(manifest, {}, 50, "1.0", run_urls=run_budget(400, 6.0), remove=False)
    assert len(slow.ingest_runs) < len(full.ingest_runs)
    assert {r.run_key for r in slow.ingest_runs} < {r.run_key for r in full.ingest_runs}
