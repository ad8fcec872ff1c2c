"""The code location: every asset, job, sensor and resource, assembled in one place."""

import os
from collections.abc import Mapping

import dagster as dg

from media_assets.assets import video_assets, web_assets
from media_assets.assets.status import ingest_status
from media_assets.assets.tail import with_policy_versions
from media_assets.dagster_compat import ReconstructableJob, enable_event_batching
from media_assets.executors import build_executor
from media_assets.jobs import ingest_jobs
from media_assets.logs import json_logger, terminal_logger
from media_assets.names import ENGINE_TAG
from media_assets.removal import remove_sources_job
from media_assets.stale import stale_partitions_sensor
from resources import build_resources
from resources.embedder import Embedder
from resources.index import VectorIndex
from sensors import batch_failure_sensor, manifest_sensor


def with_engine_kinds(
    assets: list[dg.AssetsDefinition], resources: Mapping[str, object]
) -> list[dg.AssetsDefinition]:
    """Assets tagged with an engine resource also show its engine as a kind, so the UI says
    Weaviate where the deployment writes to Weaviate."""

    def add_kind(spec: dg.AssetSpec) -> dg.AssetSpec:
        resource = resources.get(spec.tags.get(ENGINE_TAG, ""))
        if isinstance(resource, Embedder | VectorIndex):
            return spec.merge_attributes(kinds={resource.kind})
        return spec

    return [asset.map_asset_specs(add_kind) for asset in assets]


def with_code_versions(
    assets: list[dg.AssetsDefinition], env: Mapping[str, str]
) -> list[dg.AssetsDefinition]:
    """Stages whose code version ``MEDIA_ASSETS_CODE_VERSIONS`` (``stage=version,...``) sets:
    for a change the code does not show (a new Chromium, a retrained model), which should make
    the stage's partitions stale and run it again rather than reuse its artifacts."""
    pairs = [item.split("=", 1) for item in env.get("MEDIA_ASSETS_CODE_VERSIONS", "").split(",")]
    wanted = {pair[0].strip(): pair[1].strip() for pair in pairs if len(pair) == 2}
    known = {key.to_user_string() for asset in assets for key in asset.keys}
    if unknown := sorted(set(wanted) - known):
        raise ValueError(f"MEDIA_ASSETS_CODE_VERSIONS names no such stage: {', '.join(unknown)}")

    def set_version(spec: dg.AssetSpec) -> dg.AssetSpec:
        version = wanted.get(spec.key.to_user_string())
        if version is None:
            return spec
        # The IO manager stamps artifacts with the version in the metadata: both change.
        metadata = {**spec.metadata, "code_version": version}
        return spec.replace_attributes(code_version=version, metadata=metadata)

    return [asset.map_asset_specs(set_version) for asset in assets]


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """Definitions with resources configured from ``env`` (the process environment by default)."""
    resources = build_resources(env)
    assets = with_policy_versions(
        with_code_versions(
            [*web_assets, *video_assets, ingest_status], os.environ if env is None else env
        ),
        resources["text_enrichment"],
    )
    return dg.Definitions(
        assets=with_engine_kinds(assets, resources),
        jobs=[*ingest_jobs.values(), remove_sources_job],
        sensors=[manifest_sensor, batch_failure_sensor, stale_partitions_sensor],
        resources=resources,
        loggers={
            "terminal": terminal_logger,
            "json": json_logger,
            "console": dg.colored_console_logger,
        },
        executor=build_executor(os.environ if env is None else env),
    )


def load_ingest_job(name: str) -> dg.JobDefinition:
    """Job ``name`` of the definitions this process's environment configures: what a process
    that executes a run or one of its steps (a Celery worker) loads."""
    return build_definitions().resolve_job_def(name)


def reconstructable_job(name: str) -> ReconstructableJob:
    """Job ``name`` as an executor that hands steps to other processes needs it: a pointer each
    of them follows to load the job again (``load_ingest_job``), not the object itself."""
    return dg.build_reconstructable_job(__name__, load_ingest_job.__name__, (name,))


# Every process that loads the code location (code server, run workers, the CLI) writes a
# step's partition events in batches (media_assets/instance.py): set here, not on package import.
enable_event_batching()
defs = build_definitions()
