"""Where each step runs on Kubernetes: steps on the ``gpu`` queue (speech, speaker and vision;
``media_assets.executors.step_queue``) on the GPU node pool, the rest on the CPU pool. The tags
are inert under the in-process executor and read by ``k8s_job_executor`` in production
(``MEDIA_ASSETS_EXECUTOR=k8s``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from resources import run_settings

K8S_CONFIG_TAG = "dagster-k8s/config"

GPU_STEP: dict[str, Any] = {
    "container_config": {
        "resources": {
            "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            "limits": {"memory": "24Gi", "nvidia.com/gpu": "1"},
        }
    },
    "pod_spec_config": {
        "node_selector": {"media-assets/pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
CPU_STEP: dict[str, Any] = {
    "container_config": {
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    },
    "pod_spec_config": {"node_selector": {"media-assets/pool": "cpu"}},
}


def pod_config_tags(queue: str) -> dict[str, str]:
    """The ``dagster-k8s/config`` tag of a step on ``queue`` (``executors.step_queue``): its node
    pool and resources; GPU steps run the image named by ``MEDIA_ASSETS_GPU_IMAGE`` (the one with
    whisperx and pyannote) when it is set."""
    if queue != "gpu":
        return {K8S_CONFIG_TAG: json.dumps(CPU_STEP)}
    config = copy.deepcopy(GPU_STEP)
    if image := run_settings().gpu_image:
        config["container_config"]["image"] = image
    return {K8S_CONFIG_TAG: json.dumps(config)}


def k8s_executor(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """Each step in its own pod (``k8s_job_executor``); image, namespace and secrets from the
    environment the Helm chart gives the code location."""
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(
        {
            "job_namespace": env.get("MEDIA_ASSETS_K8S_NAMESPACE", "media-assets"),
            "env_secrets": [env.get("MEDIA_ASSETS_K8S_SECRET", "media-assets-secrets")],
            "env_config_maps": [env.get("MEDIA_ASSETS_K8S_CONFIG_MAP", "media-assets-env")],
            "max_concurrent": int(env.get("MEDIA_ASSETS_K8S_MAX_STEPS", "16")),
        },
        name="k8s_steps",
    )
