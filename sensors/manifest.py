"""The manifest sensor: new manifest entries become partitions and batched runs; entries that
left the manifest become a removal run.

An evaluation changes nothing but its cursor: partitions are added through the ``SensorResult``
(applied by the daemon only when the tick succeeds), URLs are registered by the run that first
needs them (``registry.resolve``), and sources are removed by a ``remove_sources`` run. A preview
("Preview tick result") or a failed tick therefore leaves no trace.

A tick registers every new URL of its page as a partition (cheap), but requests runs for at most
``run_urls_per_tick`` URLs (``MEDIA_ASSETS_RUN_URLS_PER_TICK``): the daemon creates each run
inside the tick, planning every asset and partition of it (a few rows per URL), so that is where
a tick's time goes. The URLs left over wait in the cursor (``PendingRuns``: a range of the
partition set, a few keys each) and the next ticks request them, oldest first, before the runs of
their own new URLs: no URL is requested twice (a retried tick plans the same run key for the
same URLs from the same cursor) and none is lost. An evaluation that took much of the tick's
target (``ManifestSource.tick_target_s``) leaves the runs less of their budget (``run_budget``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import dagster as dg

from media_assets.batching import range_tags
from media_assets.jobs import ingest_jobs
from media_assets.manifest import (
    Manifest,
    ManifestError,
    manifest_page,
    parse_manifest_bytes,
    read_manifest_bytes,
)
from media_assets.names import JOB_BY_KIND, URLS_TAG
from media_assets.registry import MANIFEST_BYTES_TAG
from media_assets.removal import removal_run_config, remove_sources_job
from partitions import PARTITIONS_BY_KIND
from resources import run_settings
from resources.fetch import TICK_TARGET_S, ManifestSource

# Seconds between evaluations of the sensors (manifest and batch failure); tests use a few.
SENSOR_INTERVAL_S = run_settings().sensor_interval_s
# A last line without its line end is read once the file has been still this long.
SETTLED_S = 2.0

# Runs one tick requests per kind at most: more URLs than this many batches get larger batches.
# The daemon creates each run in the tick (its own database on SQLite, 0.1-0.7 s a run).
MAX_RUNS_PER_TICK = 20

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class PendingRuns:
    """New partitions of ``kind`` whose runs are not requested yet: ``count`` keys from ``first``
    to ``last`` in the partition set's order (new partitions are appended in manifest order), to
    run ``batch`` at a time, with the run keys and manifest byte range of the page that added
    them."""

    kind: str
    first: str
    last: str
    count: int
    batch: int
    run_key_prefix: str
    manifest_bytes: str

    @classmethod
    def of(cls, kind: str, keys: Sequence[str], batch: int, prefix: str, span: str) -> PendingRuns:
        return cls(kind, keys[0], keys[-1], len(keys), batch, prefix, span)

    def keys(self, ordered: Sequence[str], position: dict[str, int]) -> list[str] | None:
        """Its keys in the partition set ``ordered`` (``position``: key -> index); None when
        its first or last key is gone (deleted from the set by hand)."""
        start, end = position.get(self.first), position.get(self.last)
        if start is None or end is None or end < start:
            return None
        return list(ordered[start : end + 1])

    def rest(self, keys: Sequence[str]) -> PendingRuns | None:
        return replace(self, first=keys[0], last=keys[-1], count=len(keys)) if keys else None


@dataclass(frozen=True)
class ManifestCursor:
    """How far the sensor has read the manifest: ``offset`` bytes, up to line ``line``, whose
    SHA-256 is ``prefix``. A file whose first ``offset`` bytes changed was rewritten (truncated,
    replaced, edited): a new pass reads it again from the start (``reconcile``) and, at its end,
    removes the partitions whose URL left the manifest. Appended lines are simply the next page.

    The generation counts passes and goes into run keys: Dagster never launches a run key twice,
    and a URL that is removed and added back must run again.
    """

    generation: int = 0
    offset: int = 0
    line: int = 1
    prefix: str | None = None
    reconcile: bool = True
    legacy_digest: str | None = None  # a cursor from before paging: the whole file's SHA-256
    pending: tuple[PendingRuns, ...] = ()  # URLs registered whose runs are not requested yet

    @classmethod
    def parse(cls, cursor: str | None) -> ManifestCursor:
        if not cursor:
            return cls()
        if not cursor.startswith("{"):  # before the generation, the cursor was the bare digest
            return cls(legacy_digest=cursor)
        data = json.loads(cursor)
        if "offset" not in data:  # {"sha256", "generation"}: before paging
            return cls(generation=int(data["generation"]), legacy_digest=data["sha256"])
        return cls(
            generation=int(data["generation"]),
            offset=int(data["offset"]),
            line=int(data["line"]),
            prefix=data["prefix"],
            reconcile=bool(data["reconcile"]),
            pending=tuple(PendingRuns(**p) for p in data.get("pending", [])),
        )

    def against(self, data: bytes) -> ManifestCursor:
        """This cursor if ``data`` still starts with what it read, else the start of a new pass."""
        if self.legacy_digest is not None:
            if hashlib.sha256(data).hexdigest() == self.legacy_digest:
                return self.after(data, len(data), data.count(b"\n") + 1)
            return ManifestCursor(generation=self.generation + 1)
        if self.offset == 0 and self.prefix is None:
            return replace(self, generation=max(self.generation, 1))
        if len(data) < self.offset or _digest(data, self.offset) != self.prefix:
            # A new pass; runs still owed for partitions of the last one stay owed.
            return ManifestCursor(generation=self.generation + 1, pending=self.pending)
        return self

    def after(
        self, data: bytes, end: int, line: int, pending: Sequence[PendingRuns] | None = None
    ) -> ManifestCursor:
        """The cursor once ``data`` has been read up to byte ``end`` (line ``line``), with the
        runs still owed (``pending``; this cursor's when not given)."""
        return ManifestCursor(
            generation=max(self.generation, 1),
            offset=end,
            line=line,
            prefix=_digest(data, end),
            reconcile=self.reconcile and end < len(data),
            pending=self.pending if pending is None else tuple(pending),
        )

    def serialize(self) -> str:
        fields = ("generation", "offset", "line", "prefix", "reconcile")
        data: dict[str, object] = {name: getattr(self, name) for name in fields}
        if self.pending:
            data["pending"] = [asdict(p) for p in self.pending]
        return json.dumps(data)

    def run_key_prefix(self, start: int) -> str:
        """Run keys of the page at byte ``start`` of this pass."""
        return f"{self.generation}.{start}"


def _digest(data: bytes, end: int) -> str:
    return hashlib.sha256(memoryview(data)[:end]).hexdigest()


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless one: "1 new URL", "3 new URLs"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def batched_run_requests(
    job_name: str,
    keys: Sequence[str],
    batch_size: int,
    run_key_prefix: str,
    tags: dict[str, str] | None = None,
) -> list[dg.RunRequest]:
    """One run per ``batch_size`` consecutive new partitions, as a partition range.

    New dynamic partitions are appended in order, so consecutive keys form a contiguous range.
    """
    batches = [keys[start : start + batch_size] for start in range(0, len(keys), batch_size)]
    return [
        dg.RunRequest(
            run_key=f"{run_key_prefix}:{job_name}:{b[0]}:{b[-1]}:{len(b)}",
            job_name=job_name,
            tags={**range_tags(b), **(tags or {})},
        )
        for b in batches
    ]


@dataclass
class IngestPlan:
    added: dict[str, list[str]] = field(default_factory=dict)  # kind -> new partition keys
    removed: dict[str, list[str]] = field(default_factory=dict)  # kind -> keys to remove
    ingest_runs: list[dg.RunRequest] = field(default_factory=list)
    removal_run: dg.RunRequest | None = None
    bad_lines: int = 0
    pending: list[PendingRuns] = field(default_factory=list)  # runs owed after this tick
    lost: list[str] = field(default_factory=list)  # why owed runs could not be requested

    @property
    def run_requests(self) -> list[dg.RunRequest]:
        return [*self.ingest_runs, *([self.removal_run] if self.removal_run else [])]

    @property
    def partition_requests(self) -> list[dg.AddDynamicPartitionsRequest]:
        """Only additions: a removed source keeps its partition until its removal run has
        deleted its rows and artifacts, so a failed removal is still visible and can re-run."""
        return [PARTITIONS_BY_KIND[k].build_add_request(keys) for k, keys in self.added.items()]

    def summary(self) -> str:
        """What the tick does, in a line: "3 new URLs in 1 run, 1 removed", or with runs owed:
        "10000 new URLs, 1000 URLs in 20 runs, 9000 waiting for runs"."""
        new = sum(map(len, self.added.values()))
        removed = sum(map(len, self.removed.values()))
        runs = counted(len(self.ingest_runs), "run")
        requested = sum(int(r.tags[URLS_TAG]) for r in self.ingest_runs)
        waiting = sum(p.count for p in self.pending)
        if new and requested == new and not waiting:
            parts = [f"{counted(new, 'new URL')} in {runs}"]
        else:
            parts = [counted(new, "new URL")] if new else []
            parts += [f"{counted(requested, 'URL')} in {runs}"] if requested else []
            parts += [f"{waiting} waiting for runs"] if waiting else []
        parts += [f"{removed} removed"] if removed else []
        text = ", ".join(parts) or "no new or removed URLs"
        skipped = f" ({counted(self.bad_lines, 'bad line')} skipped)" if self.bad_lines else ""
        return text + skipped


def _owed_keys(
    owed: Sequence[PendingRuns], existing: Mapping[str, Collection[str]], plan: IngestPlan
) -> list[tuple[PendingRuns, list[str]]]:
    """Each owed range with its keys in the partition set (``existing`` holds each kind's keys
    in the set's order), less those being removed; a range whose ends are gone is reported in
    ``plan.lost``."""
    positions: dict[str, tuple[list[str], dict[str, int]]] = {}
    found = []
    for pending in owed:
        if pending.kind not in positions:
            ordered = list(existing.get(pending.kind, []))
            positions[pending.kind] = (ordered, {k: i for i, k in enumerate(ordered)})
        keys = pending.keys(*positions[pending.kind])
        if keys is None:
            plan.lost.append(
                f"{pending.count} {pending.kind} URLs ({pending.first}..{pending.last}) were "
                "waiting for runs but their partitions are gone: backfill the missing ones"
            )
            continue
        gone = set(plan.removed.get(pending.kind, ()))
        found.append((pending, [k for k in keys if k not in gone]))
    return found


def plan_ingest(
    manifest: Manifest,
    existing: Mapping[str, Collection[str]],
    batch_size: int,
    run_key_prefix: str = "",
    *,
    listing: Manifest | None = None,
    remove: bool = True,
    tags: dict[str, str] | None = None,
    run_urls: int | None = None,
    owed: Sequence[PendingRuns] = (),
) -> IngestPlan:
    """New entries of ``manifest`` (the whole file, or a page of it) become partitions and
    batched runs. With ``remove``, partitions whose URL is not in ``listing`` (the whole file;
    ``manifest`` itself when not given) go to one removal run: the manifest is the source of
    truth for what is indexed.

    Runs are requested for at most ``run_urls`` URLs (all when None; at least one batch), those
    ``owed`` by earlier ticks first (``existing`` then lists each kind's partition keys in the
    set's order); the rest is ``plan.pending``."""
    plan = IngestPlan(bad_lines=sum(p.severity == "error" for p in manifest.problems))
    listed = listing or manifest
    span = (tags or {}).get(MANIFEST_BYTES_TAG, "")
    fresh: list[tuple[PendingRuns, list[str]]] = []
    for kind in JOB_BY_KIND:
        seen = existing.get(kind, set())
        seen = seen if isinstance(seen, set | frozenset) else set(seen)
        new = [e.key for e in manifest.by_kind(kind) if e.key not in seen]
        gone = sorted(seen - {e.key for e in listed.by_kind(kind)}) if remove else []
        if gone:
            plan.removed[kind] = gone
        if new:
            plan.added[kind] = new
            now = len(new) if run_urls is None else min(len(new), run_urls)
            batch = max(batch_size, -(-now // MAX_RUNS_PER_TICK))
            fresh.append((PendingRuns.of(kind, new, batch, run_key_prefix, span), new))
    budget = run_urls
    for pending, keys in [*_owed_keys(owed, existing, plan), *fresh]:
        runs, left = _request(pending, keys, budget, first=not plan.ingest_runs)
        plan.ingest_runs += runs
        if budget is not None:
            budget -= sum(int(r.tags[URLS_TAG]) for r in runs)
        if rest := pending.rest(left):
            plan.pending.append(rest)
    if plan.removed:
        plan.removal_run = dg.RunRequest(
            run_key=f"{run_key_prefix}:{remove_sources_job.name}",
            job_name=remove_sources_job.name,
            run_config=removal_run_config(plan.removed),
            tags={URLS_TAG: str(sum(map(len, plan.removed.values())))},
        )
    return plan


def run_budget(run_urls: int, spent_s: float, target_s: float = TICK_TARGET_S) -> int:
    """URLs whose runs a tick requests after an evaluation of ``spent_s``: all ``run_urls`` while
    the evaluation took under a quarter of the tick's ``target_s``, then the share of the target
    it left (at least one URL: a tick's first batch always moves)."""
    if spent_s < target_s / 4:
        return run_urls
    return max(1, int(run_urls * max(0.0, 1 - spent_s / target_s)))


def _request(
    pending: PendingRuns, keys: list[str], budget: int | None, *, first: bool
) -> tuple[list[dg.RunRequest], list[str]]:
    """Runs for the batches of ``keys`` that fit in ``budget`` URLs (a tick's ``first`` batch
    always does, so a budget below a batch still moves), and the keys left."""
    room = len(keys) if budget is None else max(budget, 0)
    take = len(keys) if room >= len(keys) else room // pending.batch * pending.batch
    if first and not take:
        take = min(pending.batch, len(keys))
    tags = {MANIFEST_BYTES_TAG: pending.manifest_bytes} if pending.manifest_bytes else {}
    runs = batched_run_requests(
        JOB_BY_KIND[pending.kind], keys[:take], pending.batch, pending.run_key_prefix, tags
    )
    return runs, keys[take:]


@dg.sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[*ingest_jobs.values(), remove_sources_job],
    description="Turns new manifest entries into URL partitions and batched runs, and entries "
    "that left the manifest into a removal run.",
)
def manifest_sensor(
    context: dg.SensorEvaluationContext, manifest: ManifestSource
) -> dg.SensorResult | dg.SkipReason:
    if not manifest.path:
        return dg.SkipReason(
            "no manifest configured: set MEDIA_ASSETS_MANIFEST to a .jsonl or .csv"
        )
    started = time.monotonic()
    try:
        data = read_manifest_bytes(manifest.path)
        settled = time.time() - Path(manifest.path).stat().st_mtime >= SETTLED_S
    except (ManifestError, OSError) as exc:
        return dg.SkipReason(str(exc))
    cursor = ManifestCursor.parse(context.cursor).against(data)
    if cursor.offset >= len(data) and not cursor.reconcile and not cursor.pending:
        return dg.SensorResult(skip_reason="manifest unchanged", cursor=cursor.serialize())
    # Partitions under removal still exist: planning now would miss a URL added back meanwhile.
    removing = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=remove_sources_job.name, statuses=IN_FLIGHT), limit=1
    )
    if removing:
        return dg.SkipReason(f"manifest changed; waiting for removal run {removing[0].run_id}")
    try:
        page = manifest_page(
            data,
            manifest.path,
            cursor.offset,
            cursor.line,
            manifest.page_lines,
            take_tail=settled,
        )
        # The pass that read the file from its start ends by removing what left it.
        ends_pass = cursor.reconcile and page.complete
        listing = None
        if ends_pass and page.start > 0:
            listing = parse_manifest_bytes(data, manifest.path)
    except ManifestError as exc:
        return dg.SkipReason(str(exc))
    for problem in page.manifest.problems:
        verdict = "skipped" if problem.severity == "error" else "warning:"
        context.log.warning(f"{verdict} {manifest.path} {problem}")
    existing = {  # in the set's order: owed runs are ranges of it
        kind: context.instance.get_dynamic_partitions(p.name)
        for kind, p in PARTITIONS_BY_KIND.items()
    }
    plan = plan_ingest(
        page.manifest,
        existing,
        manifest.batch_size,
        cursor.run_key_prefix(page.start),
        listing=listing,
        remove=ends_pass,
        tags={MANIFEST_BYTES_TAG: f"{page.start}-{page.end}"},
        run_urls=run_budget(
            manifest.run_urls_per_tick, time.monotonic() - started, manifest.tick_target_s
        ),
        owed=cursor.pending,
    )
    for lost in plan.lost:
        context.log.warning(lost)
    summary = plan.summary()
    following = cursor.after(data, page.end, page.next_line, plan.pending)
    last = page.next_line - 1
    lines = f"lines {page.line}-{last}" if last > page.line else f"line {page.line}"
    lines = lines if page.end > page.start else "no new lines"
    n = len(page.manifest.entries)
    context.log.info(
        f"{n} {'entry' if n == 1 else 'entries'}: {summary} ({lines} of {manifest.path})"
    )
    if not plan.run_requests:
        return dg.SensorResult(skip_reason=f"{summary} ({lines})", cursor=following.serialize())
    return dg.SensorResult(
        run_requests=plan.run_requests,
        dynamic_partitions_requests=plan.partition_requests,
        cursor=following.serialize(),
    )


__all__ = [
    "SENSOR_INTERVAL_S",
    "IngestPlan",
    "ManifestCursor",
    "PendingRuns",
    "batched_run_requests",
    "counted",
    "manifest_sensor",
    "plan_ingest",
    "run_budget",
]
