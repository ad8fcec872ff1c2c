"""What every URL-partitioned asset shares: batching, checkpoints, readable metadata, data
versions from content hashes, the schema check, and one body for each shape of stage:
``source_stage`` (reads the URLs themselves), ``run_stage`` (one record per URL from its input's)
and ``batch_stage`` (the whole batch's records at once).

Every artifact is a record with ``status`` (``ok`` or why not), ``source_url`` and, when not ok,
``error`` (``media_assets/records.py``). A URL that fails stops its chain at that stage: the step
checkpoints the others and fails, so Dagster shows the URL failed. A stage run on its own over a
URL whose upstream record is not ok writes a ``skipped`` record naming the stage that failed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from media_assets import contracts, deadletters, registry
from media_assets.assets import versions
from media_assets.chunks import sha256_text
from media_assets.dagster_compat import partition_reads_cached
from media_assets.executors import step_tags
from media_assets.names import REFRESH_TAG, Status
from media_assets.records import (
    ARTIFACT_HEADER,
    SCHEMA_VIOLATION,
    Record,
    failed,
    is_ok,
    skipped,
    without_header,
)
from media_assets.retry import TRANSIENT_CLASSES
from resources.fetch import BATCH_SIZE
from resources.io_manager import ArtifactStore
from resources.storage import ObjectStore

# What a batched asset body hands Dagster: its output, its check, its partitions' own versions.
StageEvents = Iterator[dg.Output | dg.AssetMaterialization | dg.AssetCheckResult]
# Backfills launched from the UI group partitions into runs this large instead of one run each.
BATCH_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=BATCH_SIZE)
PREVIEW_CHARS = 400
SCHEMA_CHECK = "schema"
# Definition metadata naming the fields that say how a record was made (timings, attempts), not
# what it holds: they do not count toward its content hash, so they never make anything stale.
MEASUREMENTS = "measurement_fields"


@contextmanager
def beta_allowed() -> Iterator[None]:
    """Dagster's beta warnings silenced inside the block only, not for the whole process:
    ``backfill_policy`` and ``Output(data_version=...)`` are beta, and the batching and the
    per-partition data versions they give are the point of this project."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        yield


def url_asset(
    *,
    partitions_def: dg.PartitionsDefinition,
    code_version: str,
    kinds: set[str],
    group_name: str,
    sidecars: Mapping[str, str] | None = None,
    measurements: Collection[str] = (),
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``dg.asset`` with the settings every URL-partitioned stage shares, placed on the GPU or
    CPU node pool by its concurrency ``pool`` when it runs on Kubernetes; its ``schema`` asset
    check reports each batch's JSON Schema violations, with URL and field, on the Checks tab."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        name = kwargs.get("name") or fn.__name__
        check = dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=name,
            description=f"Each URL's artifact conforms to media_assets/schemas/{name}.json. A "
            "violation fails that URL for good (dead letter); the batch's violations are listed "
            "with their URL and field.",
        )

        # A body returns its stage's events (``batch_output``). Handed to Dagster as a generator
        # function, they are taken as they come whatever the body's return annotation says: an
        # asset with a check has two outputs, which a single annotation cannot describe.
        @functools.wraps(fn)
        def events(*args: Any, **kw: Any) -> StageEvents:
            yield from fn(*args, **kw)

        with beta_allowed():
            return dg.asset(
                op_tags=step_tags(kwargs.get("pool")),
                partitions_def=partitions_def,
                code_version=code_version,
                kinds=kinds,
                group_name=group_name,
                backfill_policy=BATCH_POLICY,
                check_specs=[check] if contracts.has_schema(name) else None,
                # The IO manager stamps each artifact with the code version that made it.
                metadata={
                    "sidecars": dict(sidecars or {}),
                    "code_version": code_version,
                    MEASUREMENTS: sorted(measurements),
                },
                **kwargs,
            )(events)

    return decorate


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: tables by their columns, arrays by their bytes."""
    if hasattr(value, "columns") and hasattr(value, "to_dict"):  # a DataFrame (vectors)
        return value.to_dict(orient="list")
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):  # a numpy array
        return f"{value.dtype}{value.shape}:{hashlib.sha256(value.tobytes()).hexdigest()}"
    return str(value)


def record_hash(record: Mapping[str, Any]) -> str:
    """Content hash of a record, without its storage header: what a downstream step consumed."""
    body = {k: v for k, v in record.items() if k != ARTIFACT_HEADER and not k.endswith("_artifact")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_plain).encode()).hexdigest()


def content_hash(record: Mapping[str, Any], measurements: Collection[str] = ()) -> str:
    """What a record holds, without where it came from (``input_sha256``) or how it was made
    (``measurements``): a partition's data version changes exactly when this hash does."""
    return record_hash(
        {k: v for k, v in record.items() if k != "input_sha256" and k not in measurements}
    )


def reusable(record: Mapping[str, Any], retry: bool) -> bool:
    """Whether a stored record stands for its input: a success does, and so does a permanent
    failure (robots, refused, 404, too large, corrupt media…) unless the run asks to try again —
    so a backfill of failed partitions fails fast at the stage that failed, paying nothing."""
    if is_ok(record):
        return True
    return not retry and record.get("error_class") not in TRANSIENT_CLASSES


class Checkpoints:
    """This asset's artifacts from earlier runs: a partition whose input and code version are
    unchanged is reused as it is, so re-running a materialized partition does no work."""

    def __init__(self, context: dg.AssetExecutionContext, store: ObjectStore):
        metadata = context.assets_def.metadata_by_key[context.asset_key]
        self.artifacts = ArtifactStore(store, context.asset_key, metadata)
        self.run_id = context.run.run_id
        # The operator's "try again" (``media-assets retry``, ``--refresh``, or the run tag).
        self.retry = context.run.tags.get(REFRESH_TAG) == "true"
        self.reused: list[str] = []
        self._previous: dict[str, Record | None] = {}

    def previous(self, key: str) -> Record | None:
        """The stored artifact of ``key`` from an earlier run, read once per step."""
        if key not in self._previous:
            self._previous[key] = self.artifacts.read_or_none(key)
        return self._previous[key]

    def reuse(self, key: str, input_sha256: str) -> Record | None:
        previous = self.previous(key)
        if (
            previous is not None
            and previous.get("input_sha256") == input_sha256
            and self.artifacts.is_stored(key, previous)
            and reusable(previous, self.retry)
        ):
            self.reused.append(key)
            return previous
        return None

    def compute(
        self, key: str, upstream: Mapping[str, Any], work: Callable[[], Mapping[str, Any]]
    ) -> Record:
        """``work()``'s record for ``key``, or the stored one when ``upstream`` is unchanged.

        An exception in ``work`` fails this partition alone, with its traceback.
        """
        sha = record_hash(upstream)
        stored = self.reuse(key, sha)
        if stored:
            return stored
        try:
            return {**work(), "input_sha256": sha}
        except Exception as exc:
            return failed(exc, upstream.get("source_url"), sha)

    def each(
        self,
        inputs: Mapping[str, Record],
        upstream: str,
        work: Callable[[str, Any], Mapping[str, Any]],
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, Record]:
        """Apply ``work(key, input)`` to every partition whose input succeeded (reusing stored
        results); ``settings`` count as input, since other settings give other results."""
        return {
            key: self.compute(
                key,
                {**record, **(settings or {})},
                lambda key=key, record=record: work(key, record),
            )
            if is_ok(record)
            else skipped(upstream, record)
            for key, record in inputs.items()
        }

    def save(self, key: str, record: Mapping[str, Any]) -> Record:
        """Checkpoint one partition now, before the rest of the batch is done."""
        return self.artifacts.write(
            key, contracts.conform(self.artifacts.asset_key.to_user_string(), record), self.run_id
        )


def batch_stage(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    work: Callable[[Checkpoints], dict[str, Record]],
    *,
    preview: Callable[[Record], dict[str, Any]] | None = None,
    totals: Callable[[dict[str, Record]], Mapping[str, Any]] | None = None,
) -> StageEvents:
    """The body of a stage that makes its batch's records together (``work(checkpoints)``,
    timed), then the batch's output and readable metadata (see ``batch_output``)."""
    checkpoints = Checkpoints(context, store)
    with timed() as clock:
        records = work(checkpoints)
    return batch_output(
        context,
        checkpoints,
        records,
        clock["seconds"],
        preview,
        **(totals(records) if totals else {}),
    )


def source_stage(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    work: Callable[[Checkpoints, dict[str, str]], Mapping[str, Record]],
    *,
    manifest_path: str | None = None,
    reuse_on_refresh: bool = True,
    preview: Callable[[Record], dict[str, Any]] | None = None,
    finish: Callable[[dict[str, Record]], None] | None = None,
) -> StageEvents:
    """The body of a chain's first stage, whose input is the URL itself: each partition's URL
    from the registry, its stored record reused while the URL is the same, ``work(checkpoints,
    {url: partition})`` for the rest. ``reuse_on_refresh=False``: a run tagged refresh reuses
    nothing, successes included. ``finish`` sees every record before the output is made.
    Partitions not registered yet are registered from the watched manifest (``manifest_path``)."""
    sources, records = registry.resolve(store, context.partition_keys, manifest_path)
    checkpoints = Checkpoints(context, store)
    refresh_all = checkpoints.retry and not reuse_on_refresh
    todo: dict[str, str] = {}
    for key, source in sources.items():
        stored = None if refresh_all else checkpoints.reuse(key, sha256_text(source.url))
        if stored:
            records[key] = stored
        else:
            todo[source.url] = key
    with timed() as clock:
        if todo:
            records.update(work(checkpoints, todo))
    if finish:
        finish(records)
    return batch_output(context, checkpoints, records, clock["seconds"], preview)


def run_stage(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    inputs: Mapping[str, Record],
    work: Callable[[str, Any], Mapping[str, Any]],
    *,
    upstream: str = "inputs",
    settings: Mapping[str, Any] | None = None,
    preview: Callable[[Record], dict[str, Any]] | None = None,
    totals: Callable[[dict[str, Record]], dict[str, Any]] | None = None,
) -> StageEvents:
    """The body of a per-URL stage: ``work(key, input)`` for every partition whose input
    succeeded, stored results reused when input and settings are unchanged, then the batch's
    output and readable metadata (see ``batch_output``)."""
    return batch_stage(
        context,
        store,
        lambda checkpoints: checkpoints.each(inputs, upstream, work, settings),
        preview=preview,
        totals=totals,
    )


def blob_store(context: dg.AssetExecutionContext, store: ObjectStore) -> ArtifactStore:
    """This asset's artifact store, for stages that keep binary files beside their records."""
    return ArtifactStore(
        store, context.asset_key, context.assets_def.metadata_by_key[context.asset_key]
    )


def chunks_preview(record: Record) -> dict[str, Any]:
    chunks = record["chunks"]
    return {
        "chunks": len(chunks),
        "first_chunk": text_preview(chunks[0]["text"]) if chunks else "",
    }


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    clock = {"start": time.perf_counter()}
    yield clock
    clock["seconds"] = time.perf_counter() - clock["start"]


def batch_output(
    context: dg.AssetExecutionContext,
    checkpoints: Checkpoints,
    records: dict[str, Record],
    seconds: float,
    preview: Callable[[Record], dict[str, Any]] | None = None,
    **totals: Any,
) -> StageEvents:
    """Output plus metadata a person can read in the UI, where partitions show only hashes, then
    the schema check, then each partition's own data version where it is not the step's.

    Each partition's materialization gets its own URL, status, preview, content hash and whether
    its stored artifact was reused or computed; the batch's counts and timing go on all of them.
    Its data version follows its content hash (``media_assets/assets/versions.py``).

    Dagster marks every partition of a step's range alike (dagster-io/dagster#17836), so a batch
    with failed URLs must not materialize: their failures go to the dead letters, the good
    partitions are checkpointed, and the step fails, naming the failed partitions. Re-running the
    good ones (``media_assets.ingest`` and the batch-failure sensor do) then reuses their
    artifacts, so the catalog ends with good URLs materialized and failed ones missing.

    A generator: the body returns it, and Dagster stores the output (and writes its
    materializations) before it asks for the events that follow.
    """
    asset = context.asset_key.to_user_string()
    for key, record in records.items():
        records[key] = contracts.conform(asset, record)
    check_key = dg.AssetCheckKey(context.asset_key, SCHEMA_CHECK)
    check = (
        _schema_check(asset, records) if check_key in context.selected_asset_check_keys else None
    )
    failed = {key: r for key, r in records.items() if not is_ok(r)}
    if failed:
        # A violation is reported before the step fails, so it shows on the Checks tab; a pass
        # is not: the step materializes nothing for it to be about.
        if check and not check.passed:
            yield check
        _fail_batch(context, checkpoints, records, failed)
    reused = set(checkpoints.reused)
    counts = Counter(str(r.get("status")) for r in records.values())
    measurements = context.assets_def.metadata_by_key[context.asset_key].get(MEASUREMENTS, ())
    contents = {key: content_hash(record, measurements) for key, record in records.items()}
    batch = {
        "batch_urls": len(records),
        "batch_status": ", ".join(f"{status} {n}" for status, n in sorted(counts.items())),
        "batch_duration_s": round(seconds, 2),
        "seconds_per_url": round(seconds / max(len(records), 1), 3),
        "batch_reused": len(reused),
        **totals,
    }
    with partition_reads_cached(context.instance):
        own = _add_partition_metadata(context, records, preview, reused, contents)
    context.add_asset_metadata(batch)
    data_versions = versions.assign(context.instance, context.asset_key, contents)
    with beta_allowed():
        output = dg.Output(records, data_version=dg.DataVersion(data_versions.step))
    yield output
    # The check before the partitions' own versions: Dagster takes the newest materialization as
    # its target and warns ("data version mismatch") when that is not the step's.
    if check:
        yield check
    yield from versions.own_materializations(
        context, data_versions, {key: {**batch, **meta} for key, meta in own.items()}
    )


def _schema_check(asset: str, records: Mapping[str, Record]) -> dg.AssetCheckResult:
    """The batch's schema violations (URL, partition, field, problem) as the ``schema`` check.

    Records are validated when they are made; one reused from storage was validated then, and a
    stored violation (a permanent failure, reused until the input changes) is reported again."""
    violations = [
        {
            "url": r.get("source_url"),
            "partition": key,
            "field": (r.get("violation") or {}).get("field"),
            "problem": r.get("error"),
        }
        for key, r in records.items()
        if r.get("error_class") == SCHEMA_VIOLATION
    ]
    conforming = sum(is_ok(r) for r in records.values())
    metadata: dict[str, Any] = {
        "urls_conforming": conforming,
        "urls_violating": len(violations),
        "violations": dg.MetadataValue.json(violations),
    }
    if not violations:
        description = f"{conforming} URL(s) conform to {asset}.json"
    else:
        first = violations[0]
        metadata["first_violation_url"] = dg.MetadataValue.url(str(first["url"]))
        metadata["first_violation_field"] = str(first["field"])
        description = f"{len(violations)} URL(s) violate {asset}.json: " + "; ".join(
            f"{v['url']} at {v['field']}" for v in violations[:3]
        )
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=not violations,
        metadata=metadata,
        description=description,
    )


def _fail_batch(
    context: dg.AssetExecutionContext,
    checkpoints: Checkpoints,
    records: dict[str, Record],
    failed: dict[str, Record],
) -> None:
    # Permanent failures are checkpointed with the good records: a later run of the same input
    # reuses them and fails fast. A transient one is not checkpointed here (it is worth
    # computing again); rendered_page stores every render as it finishes, failures included.
    for key, record in records.items():
        if reusable(record, retry=False) and not checkpoints.artifacts.is_stored(key, record):
            checkpoints.save(key, record)
    asset = context.asset_key.to_user_string()
    deadletters.record_failures(checkpoints.artifacts.store, asset, context.run.run_id, failed)
    examples = "; ".join(
        f"{r.get('source_url')}: [{r.get('error_class')}] {r.get('error')}"
        for r in list(failed.values())[:3]
    )
    others = len(records) - len(failed)
    after = (
        f"the other {others} are checkpointed and run again without them"
        if others
        else "the dead letters (media-assets dead-letters) have the details"
    )
    raise dg.Failure(
        description=f"{len(failed)} of {len(records)} URLs failed at {asset} ({examples}); {after}",
        metadata={
            "failed_partitions": dg.MetadataValue.json(sorted(failed)),
            "failed_urls": dg.MetadataValue.json(
                {k: str(r.get("source_url")) for k, r in failed.items()}
            ),
            # What the partition page's failed run shows: per URL, why, and where its letter is.
            "failures": dg.MetadataValue.json(
                {
                    k: {
                        "url": r.get("source_url"),
                        "stage": asset,
                        "error_class": r.get("error_class"),
                        "error": str(r.get("error"))[:500],
                        "dead_letter": deadletters.object_key(k),
                    }
                    for k, r in failed.items()
                }
            ),
        },
        allow_retries=False,
    )


def _add_partition_metadata(
    context: dg.AssetExecutionContext,
    records: dict[str, Record],
    preview: Callable[[Record], dict[str, Any]] | None,
    reused: set[str],
    contents: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """Each partition's own metadata, added to its materialization; returned as well."""
    by_partition = {}
    for key, record in records.items():
        own: dict[str, Any] = {
            "status": str(record.get("status")),
            "work": "reused stored artifact" if key in reused else "computed",
            versions.CONTENT_KEY: contents[key],
        }
        if record.get("source_url"):
            own["source_url"] = dg.MetadataValue.url(record["source_url"])
        if record.get("error"):
            own["error"] = str(record["error"])
        if preview and is_ok(record):
            own.update(preview(record))
        context.add_asset_metadata(own, partition_key=key)
        by_partition[key] = own
    return by_partition


def join_inputs(**inputs: Mapping[str, Record]) -> dict[str, Record]:
    """Several upstream artifacts per partition as one record ``{name: record}``, ok when all
    are; otherwise the first one that is not ok, as a skip naming it."""
    joined: dict[str, Record] = {}
    for key in next(iter(inputs.values())):
        # Without storage headers: they change with every run, the content is what counts.
        records = {name: without_header(by_key[key]) for name, by_key in inputs.items()}
        bad = next(((n, r) for n, r in records.items() if not is_ok(r)), None)
        source_url = next(
            (r.get("source_url") for r in records.values() if r.get("source_url")), None
        )
        joined[key] = (
            {**records, "status": Status.OK, "source_url": source_url}
            if bad is None
            else skipped(bad[0], {**bad[1], "source_url": source_url})
        )
    return joined


def text_preview(text: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else ""))
