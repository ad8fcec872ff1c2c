"""The production shape offline: the k8s definitions load without a cluster, and each step's pod,
rendered with dagster-k8s's own job builder, lands on the right node pool."""

import dagster as dg
import pytest
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from kubernetes.client import ApiClient

from media_assets.definitions import build_definitions

GPU_STEPS = {"transcript", "speaker_turns", "frame_text"}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions({"MEDIA_ASSETS_EXECUTOR": "k8s", "MEDIA_ASSETS_DATA": "/tmp/unused"})


def pod_spec(defs: dg.Definitions, job_name: str, step: str) -> dict:
    job = defs.resolve_job_def(job_name)
    tags = job.graph.node_named(step).tags
    manifest = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(
            job_image="registry.example.com/media-assets:gpu",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step}",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
        component="step_worker",
    )
    return ApiClient().sanitize_for_serialization(manifest)["spec"]["template"]["spec"]


def test_production_definitions_load_without_a_cluster(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("video_ingest")
    assert job.executor_def.name == "k8s_steps"
    assert defs.resolve_job_def("web_ingest").executor_def.name == "k8s_steps"


@pytest.mark.parametrize(
    ("job_name", "step"),
    [("video_ingest", s) for s in ("transcript", "speaker_turns", "frame_text", "media",
                                   "video_info", "key_frames", "video_embeddings")]
    + [("web_ingest", "rendered_page"), ("web_ingest", "web_chunks")],
)  # fmt: skip
def test_gpu_steps_get_the_gpu_pool_and_cpu_steps_do_not(
    defs: dg.Definitions, job_name: str, step: str
) -> None:
    spec = pod_spec(defs, job_name, step)
    container = spec["containers"][0]
    limits = container["resources"].get("limits", {})
    tolerations = spec.get("tolerations") or []
    if step in GPU_STEPS:
        assert spec["nodeSelector"] == {"media-assets/pool": "gpu"}
        assert limits["nvidia.com/gpu"] == "1"
        assert {
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoSchedule",
        } in tolerations
    else:
        assert spec["nodeSelector"] == {"media-assets/pool": "cpu"}
        assert "nvidia.com/gpu" not in limits and not tolerations


def test_gpu_and_fetch_steps_are_bounded_by_concurrency_pools(defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("video_ingest")
    pools = {node.name: node.definition.pool for node in job.graph.nodes}
    pools["rendered_page"] = (
        defs.resolve_job_def("web_ingest").graph.node_named("rendered_page").definition.pool
    )
    assert {pools[s] for s in GPU_STEPS} == {"speech", "vision"}
    assert pools["rendered_page"] == pools["video_info"] == pools["media"] == "web_fetch"
