"""Where steps run: the executor, chosen by ``MEDIA_ASSETS_EXECUTOR``, and the one rule that
sends a step to the GPU or the CPU machines, read by both distributed executors.

``step_queue`` decides from a step's concurrency pool; ``step_tags`` turns that into the tags each
executor reads: ``dagster-k8s/config`` (node pool, GPU request) for ``k8s_job_executor`` and
``dagster-celery/queue`` for dagster-celery. Under the in-process and multiprocess executors both
tags are inert.

Celery workers (``media_assets.celery_app``) and the executor read the same broker settings
(``celery_settings``), so a worker started on another machine with the same environment takes
the steps of its queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg

from media_assets.k8s import k8s_executor, pod_config_tags

EXECUTOR_ENV = "MEDIA_ASSETS_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
BROKER_ENV = "MEDIA_ASSETS_CELERY_BROKER"
BACKEND_ENV = "MEDIA_ASSETS_CELERY_BACKEND"
CELERY_QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG

Queue = Literal["gpu", "cpu"]
QUEUES: tuple[Queue, ...] = ("gpu", "cpu")
GPU_POOLS = frozenset({"speech", "vision"})  # Dagster concurrency pools of GPU steps

# Steps without a queue tag (the removal job's op) go to the CPU workers, not to a queue that no
# worker serves.
CELERY_APP_SETTINGS: dict[str, Any] = {
    "task_default_queue": "cpu",
    "broker_connection_retry_on_startup": True,
}


def step_queue(pool: str | None) -> Queue:
    """The machines a step runs on: speech (transcript, speakers) and vision steps on GPU ones."""
    return "gpu" if pool in GPU_POOLS else "cpu"


def step_tags(pool: str | None) -> dict[str, str]:
    """``op_tags`` placing a step of concurrency ``pool``: its Kubernetes node pool and its
    Celery queue, both from ``step_queue``."""
    queue = step_queue(pool)
    return {**pod_config_tags(queue), CELERY_QUEUE_TAG: queue}


def celery_settings(env: Mapping[str, str]) -> tuple[str, str]:
    """The broker and result backend URLs (the backend defaults to the broker)."""
    broker = env.get(BROKER_ENV, "")
    if not broker:
        raise ValueError(
            f"{EXECUTOR_ENV}=celery needs {BROKER_ENV}, the broker every worker listens to "
            "(e.g. redis://broker-host:6379/0)"
        )
    return broker, env.get(BACKEND_ENV) or broker


def celery_executor(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """dagster-celery's executor: each step a task on the queue its ``dagster-celery/queue`` tag
    names. The URLs are read from the environment when a run starts (Dagster's ``env`` source):
    they may hold a password, which the definitions never hold."""
    from dagster_celery import celery_executor as dagster_celery_executor

    celery_settings(env)  # fail on loading the code location, not at the first run
    backend = BACKEND_ENV if env.get(BACKEND_ENV) else BROKER_ENV
    return dagster_celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": {"env": backend},
            "config_source": CELERY_APP_SETTINGS,
        },
        name="celery_queues",
    )


def build_executor(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """The executor ``MEDIA_ASSETS_EXECUTOR`` names; in-process when it is unset."""
    name = env.get(EXECUTOR_ENV) or "in_process"
    if name == "in_process":
        # Steps of a batch run in one process: each step already works on its whole batch
        # concurrently, and a process per step would start Chromium and load the model again.
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "celery":
        return celery_executor(env)
    if name == "k8s":
        return k8s_executor(env)
    raise ValueError(
        f"{EXECUTOR_ENV}={name!r} is not an executor: use one of {', '.join(EXECUTORS)}"
    )
