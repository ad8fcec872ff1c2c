"""Every use of Dagster internals (``dagster._...``, private tags, patched instance methods), in one
place, each behind one function or class named for the capability it gives.

Dagster 1.13 has no public API for these; ``tests/test_dagster_compat.py`` exercises each one on a
real instance, so that a Dagster upgrade that changes them fails there, naming the capability,
rather than somewhere deep in a batched run. Nothing here runs on import.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    INPUT_EVENT_POINTER_TAG_PREFIX,
    NULL_EVENT_POINTER,
    CachingStaleStatusResolver,
    StaleStatus,
    get_input_event_pointer_tag,
)
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events.log import EventLogEntry
from dagster._core.loader import LoadingContext
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

__all__ = [
    "AssetGraph",
    "BatchingSqliteEventLogStorage",
    "EventLogEntry",
    "Provenance",
    "ReconstructableJob",
    "SqliteEventLogStorage",
    "StaleStatusReader",
    "TickStatus",
    "daemon_workspace",
    "data_version_of",
    "enable_event_batching",
    "in_progress_statuses",
    "latest_storage_ids_by_partition",
    "partition_of_run",
    "partition_range_of_run",
    "partition_range_tags",
    "partition_reads_cached",
    "run_sensor_iteration",
    "sensor_ticks",
    "step_pod_command",
    "with_data_version",
    "write_events_together",
]

# The asset graph of a repository or Definitions (``defs.resolve_asset_graph()``,
# ``context.repository_def.asset_graph``): its public objects have no public type.
AssetGraph = BaseAssetGraph
# ``EventLogEntry`` (imported above) is what an event log storage stores; not exported either.
# ``ReconstructableJob`` (imported above) is what ``dg.build_reconstructable_job`` returns: a
# pointer other processes follow to load a job; Dagster does not export its type.

EVENT_BATCH_SIZE_VAR = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "1000"


# --- runs over a range of partitions ------------------------------------------------------------


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover the partitions ``first`` to ``last`` (inclusive, in the
    partition set's order).

    Relies on ``dagster/asset_partition_range_start|end`` (``dagster._core.storage.tags``): what a
    backfill with a single-run or multi-run policy puts on its runs. ``RunRequest`` takes only one
    ``partition_key``; these tags are the only way a sensor or ``execute_in_process`` asks for a
    range.
    """
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def partition_range_of_run(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(first, last) partition of a run launched over a range (``partition_range_tags``), or None.

    Relies on the same private tags; ``DagsterRun`` has no public accessor for its range.
    """
    first = tags.get(ASSET_PARTITION_RANGE_START_TAG)
    last = tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return (first, last) if first is not None and last is not None else None


def partition_of_run(tags: Mapping[str, str]) -> str | None:
    """The partition of a run launched for one partition (a sensor's ``RunRequest`` with a
    ``partition_key``, a UI launch of one partition), or None.

    Relies on ``dagster/partition`` (``dagster._core.storage.tags.PARTITION_NAME_TAG``), which
    ``DagsterRun`` has no public accessor for.
    """
    return tags.get(PARTITION_NAME_TAG)


def in_progress_statuses() -> list[dg.DagsterRunStatus]:
    """Run statuses Dagster counts as in progress (started, not finished).

    Relies on ``IN_PROGRESS_RUN_STATUSES`` (``dagster._core.storage.dagster_run``): a list spelled
    out here would drift silently from Dagster's when it adds a status.
    """
    return list(IN_PROGRESS_RUN_STATUSES)


# --- data versions and provenance --------------------------------------------------------------


def data_version_of(event: dg.AssetMaterialization) -> str | None:
    """The data version a materialization recorded, None when it recorded none.

    Relies on ``DATA_VERSION_TAG`` (``dagster/data_version``): Dagster stores an event's data
    version as this tag and exports no constant or accessor for it on ``AssetMaterialization``.
    """
    return event.tags.get(DATA_VERSION_TAG) if event.tags else None


def with_data_version(tags: Mapping[str, str], version: str) -> dict[str, str]:
    """``tags`` for an ``AssetMaterialization`` that records ``version`` as its data version.

    Relies on ``DATA_VERSION_TAG``: a step's ``Output(data_version=...)`` sets one version for
    every partition it materializes (dagster-io/dagster#34013); a partition's own version can only
    be given on a materialization of its own, through this tag, as ``DataVersionsByPartition``
    does for observations.
    """
    return {**tags, DATA_VERSION_TAG: version}


@dataclass(frozen=True)
class Provenance:
    """What a materialization was made from: the code version and, per upstream asset, the
    storage id of the upstream event it read (None: that upstream had none).

    Relies on the tags Dagster writes on every materialization (``dagster/code_version``,
    ``dagster/input_event_pointer/<key>``, ``NULL_EVENT_POINTER``); the stale-status resolver
    reads the same tags, and no public API exposes them.
    """

    code_version: str | None
    inputs: dict[dg.AssetKey, int | None]
    # The upstream assets recorded are exactly the ones asked about.
    same_inputs: bool

    @classmethod
    def of(cls, tags: Mapping[str, str], parents: Iterable[dg.AssetKey]) -> Provenance:
        pointers = {get_input_event_pointer_tag(parent): parent for parent in parents}
        recorded = {k for k in tags if k.startswith(INPUT_EVENT_POINTER_TAG_PREFIX)}
        inputs = {
            parent: None if tags[tag] == NULL_EVENT_POINTER else int(tags[tag])
            for tag, parent in pointers.items()
            if tag in tags
        }
        return cls(tags.get(CODE_VERSION_TAG), inputs, recorded == set(pointers))


def latest_storage_ids_by_partition(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, int]:
    """Storage id of each partition's newest materialization (of those that have one), in one
    query.

    Relies on ``EventLogStorage.get_latest_storage_id_by_partition``: ``fetch_materializations``
    pages through every event of the asset, thousands for a set of URL partitions run many times.
    """
    return dict(
        instance.event_log_storage.get_latest_storage_id_by_partition(
            asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
        )
    )


class _Loading(LoadingContext):
    """One request's worth of cached loads, as the webserver keeps per GraphQL request."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


class StaleStatusReader:
    """Whether a partition of an asset is stale, exactly as the UI's ``staleStatusByPartition``
    says (one reader per question: it caches what it loads).

    Relies on ``CachingStaleStatusResolver`` and ``LoadingContext`` (``dagster._core``), the
    resolver behind the UI: Dagster has no public Python API for a partition's stale status, and
    reading it with the UI's own code keeps the two in agreement.
    """

    def __init__(self, instance: dg.DagsterInstance, asset_graph: AssetGraph) -> None:
        self._resolver = CachingStaleStatusResolver(instance, asset_graph, _Loading(instance))

    def is_stale(self, asset_key: dg.AssetKey, partition: str | None = None) -> bool:
        return self._resolver.get_status(asset_key, partition) == StaleStatus.STALE


# --- how a run's events are written --------------------------------------------------------------


def enable_event_batching(env: MutableMapping[str, str] | None = None) -> None:
    """Have Dagster hand a step's events for many partitions to the event log as one batch
    (unless the environment already says otherwise), for the processes that create and execute
    runs: every process that builds the local instance (``BatchingSqliteEventLogStorage``: the
    daemon and webserver create runs and write their planned events) and every process that loads
    the code location (``media_assets/definitions.py``, for other instances).

    Relies on ``DAGSTER_EVENT_BATCH_SIZE``, read by ``DagsterInstance`` for each event
    (``_get_event_batch_size``): the only switch for batched writes, and not documented.
    """
    (os.environ if env is None else env).setdefault(EVENT_BATCH_SIZE_VAR, EVENT_BATCH_SIZE)


# A batched run plans every partition of its range for each asset (one event each, so that a
# failed run marks exactly its partitions failed) and then materializes them: both in batches.
_BATCHED = {
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_OBSERVATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
}


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, writing a batch of partition events in one transaction each
    for the run's database and the index database, as PostgreSQL's storage does; other events take
    the stock path.

    Relies on ``SqliteEventLogStorage``'s internals (``run_connection``, ``index_transaction``,
    ``prepare_insert_event[_batch]``, ``_store_asset_event_tags``, ``_store_asset_event``): the
    stock SQLite storage writes a batch event by event, each with a fresh engine and commit
    (about 11 ms an event, a fifth of a 100-page ingest), and has no hook to do otherwise.
    """

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> BatchingSqliteEventLogStorage:
        # Built from dagster.yaml in each process that uses the instance: without batching
        # enabled there, Dagster never hands this storage a batch.
        enable_event_batching()
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        together = [e for e in events if e.dagster_event_type in _BATCHED]
        if len({e.run_id for e in events}) != 1 or not together:
            super().store_event_batch(events)
            return
        # Other events of the batch (asset check plans, …) take the stock path.
        if others := [e for e in events if e.dagster_event_type not in _BATCHED]:
            super().store_event_batch(others)
        self._store_together(together)

    def _store_together(self, events: Sequence[EventLogEntry]) -> None:
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        with self.index_transaction() as conn:
            ids = [
                conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0]
                for event in events
            ]
            _index_asset_events(self, conn, events, ids)


def _index_asset_events(
    storage: SqlEventLogStorage, conn: Any, events: Sequence[EventLogEntry], ids: Sequence[int]
) -> None:
    """The asset tables' part of storing ``events`` (stored with ``ids``): their tags, and each
    asset's latest event, the last of the batch for each."""
    storage._store_asset_event_tags(conn, events, ids)
    latest = {e.dagster_event.asset_key: (e, i) for e, i in zip(events, ids, strict=True)}
    for event, event_id in latest.values():
        storage._store_asset_event(conn, event, event_id)


def write_events_together(storage: SqlEventLogStorage, events: Sequence[EventLogEntry]) -> None:
    """Store ``events`` in one INSERT (returning their ids) and one transaction for their tags
    and each asset's latest event, on a storage with one database (PostgreSQL's).

    Relies on ``SqlEventLogStorage`` internals (``_connect``, ``prepare_insert_event_batch``,
    ``SqlEventLogStorageTable``, ``index_transaction``, ``_store_asset_event_tags``,
    ``_store_asset_event``): dagster-postgres writes a batch of planned events one by one, each
    on a new connection (``media_assets/postgres_events.py``), and has no hook to do otherwise.
    """
    with storage._connect() as conn:
        statement = storage.prepare_insert_event_batch(events)
        result = conn.execute(statement.returning(SqlEventLogStorageTable.c.id))
        ids = [int(row[0]) for row in result.fetchall()]
    with storage.index_transaction() as conn:
        _index_asset_events(storage, conn, events, ids)


@dataclass
class PartitionReads:
    """How a ``partition_reads_cached`` block served dynamic-partition reads."""

    from_storage: int = 0
    from_memory: int = 0
    _cache: dict[str, Sequence[str]] = field(default_factory=dict, repr=False)


@contextmanager
def partition_reads_cached(instance: dg.DagsterInstance) -> Iterator[PartitionReads]:
    """Within the block, serve repeated reads of a dynamic partition set from memory.

    ``add_asset_metadata(partition_key=...)`` checks the key against the run's range by reading
    the partition set from the instance, three queries per call in Dagster 1.13 (about 14 ms on
    SQLite, most of a batched step's overhead); the set does not change while a step adds its
    metadata. Relies on Dagster calling ``instance.get_dynamic_partitions`` and
    ``has_dynamic_partition`` for that check: they are shadowed on this instance object for the
    block (there is no public cache), and the originals restored after.
    """
    reads = PartitionReads()
    read_all = instance.get_dynamic_partitions

    def get_dynamic_partitions(partitions_def_name: str) -> Sequence[str]:
        if partitions_def_name in reads._cache:
            reads.from_memory += 1
        else:
            reads.from_storage += 1
            reads._cache[partitions_def_name] = read_all(partitions_def_name)
        return reads._cache[partitions_def_name]

    def has_dynamic_partition(partitions_def_name: str, partition_key: str) -> bool:
        return partition_key in get_dynamic_partitions(partitions_def_name)

    # Instance attributes shadow the class's methods; deleting them restores the originals.
    instance.get_dynamic_partitions = get_dynamic_partitions  # type: ignore[method-assign]
    instance.has_dynamic_partition = has_dynamic_partition  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        del instance.get_dynamic_partitions
        del instance.has_dynamic_partition


# --- the sensor daemon's own loop, for tests and benchmarks ----------------------------------
# ``TickStatus`` (imported above, ``dagster._core.scheduler.instigation``) is what a tick record's
# ``status`` holds; Dagster exports neither it nor the daemon's loop.


@contextmanager
def daemon_workspace(
    instance: dg.DagsterInstance, module_name: str, working_directory: str, location_name: str
) -> Iterator[Any]:
    """The workspace the sensor daemon sees: the code location ``module_name`` served from a gRPC
    subprocess (which reads ``os.environ`` when it starts), over ``instance``.

    Relies on ``dagster._core.test_utils.create_test_daemon_workspace_context`` and
    ``dagster._core.workspace.load_target.ModuleTarget``. Only tests and benchmarks call it, and
    only they pay for importing the daemon's modules.
    """
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name=module_name,
        attribute=None,
        working_directory=working_directory,
        location_name=location_name,
    )
    with create_test_daemon_workspace_context(target, instance) as workspace:
        yield workspace


def run_sensor_iteration(workspace: Any, logger: logging.Logger) -> None:
    """One iteration of the sensor daemon's loop in this process: every running sensor that is
    due is evaluated, its partition requests applied, its runs submitted and its tick recorded.

    Relies on ``dagster._daemon.sensor.execute_sensor_iteration`` (a generator the daemon drains).
    """
    from dagster._daemon.sensor import execute_sensor_iteration

    list(execute_sensor_iteration(workspace, logger, None, None))


def sensor_ticks(instance: dg.DagsterInstance, sensor_name: str) -> list[Any]:
    """The tick records of the sensor ``sensor_name``, oldest first (``status`` a ``TickStatus``).

    Relies on ``dagster._core.definitions.run_request.InstigatorType`` to find the sensor's state.
    """
    from dagster._core.definitions.run_request import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.name == sensor_name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            return sorted(ticks, key=lambda t: t.timestamp)
    return []


# --- a step pod's command, for the start-up benchmark and its test ---------------------------


def step_pod_command(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    code: str,
    working_directory: str,
    step: str,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, list[str]]:
    """A new run of ``job`` in ``instance``, made as a step-delegating executor's orchestrating
    process makes it, and the command a step pod of ``k8s_job_executor`` runs for its ``step``
    (``dagster api execute_step``): the run's id and that command. The step's process loads the
    code location by pointer, ``defs`` of ``code`` (a module name, or a ``.py`` file), with
    ``working_directory`` on its path.

    Relies on ``dagster._core.definitions.reconstruct.ReconstructableRepository``,
    ``dagster._core.execution.api.create_execution_plan`` and ``dagster._grpc.types.
    ExecuteStepArgs``. Only tests and benchmarks call it.
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import create_execution_plan
    from dagster._grpc.types import ExecuteStepArgs

    repository = (
        ReconstructableRepository.for_file(code, "defs", working_directory)
        if code.endswith(".py")
        else ReconstructableRepository.for_module(code, "defs", working_directory)
    )
    origin = repository.get_reconstructable_job(job.name).get_python_origin()
    plan = create_execution_plan(job, tags=tags, instance_ref=instance.get_ref())
    run = instance.create_run_for_job(
        job,
        execution_plan=plan,
        tags=tags,
        job_code_origin=origin,
        status=dg.DagsterRunStatus.STARTED,
    )
    args = ExecuteStepArgs(
        job_origin=origin,
        run_id=run.run_id,
        step_keys_to_execute=[step],
        instance_ref=instance.get_ref(),
    )
    command = list(args.get_command_args())
    if command[0] == "dagster":  # the image's console script; here the one beside this Python
        command[0] = str(Path(sys.executable).with_name("dagster"))
    return run.run_id, command
