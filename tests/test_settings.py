"""Configuration is read in one place (``resources/__init__.py``) and handed down: what the entry
points read besides the resources comes from ``run_settings``, and importing a stage module reads
or sets nothing in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from media_assets.ingest import quiet_logs
from media_assets.k8s import K8S_CONFIG_TAG, pod_config_tags
from resources import RunSettings, run_settings


def test_run_settings_default_when_unset_and_parse_what_is_set() -> None:
    assert run_settings({}) == RunSettings()
    given = run_settings(
        {
            "MEDIA_ASSETS_LOG_LEVEL": "DEBUG",
            "MEDIA_ASSETS_LOG_FORMAT": "json",
            "MEDIA_ASSETS_SENSOR_INTERVAL_S": "5",
            "MEDIA_ASSETS_GPU_IMAGE": "registry.local/media-assets-gpu:1",
        }
    )
    assert given == RunSettings("DEBUG", "json", 5, "registry.local/media-assets-gpu:1")
    # Any format but json is the terminal's: the definitions have only those two loggers.
    assert run_settings({"MEDIA_ASSETS_LOG_FORMAT": "xml"}).log_format == "terminal"
    with pytest.raises(ValueError):
        run_settings({"MEDIA_ASSETS_SENSOR_INTERVAL_S": "soon"})


def test_ingest_runs_log_with_the_configured_logger_and_level() -> None:
    config = quiet_logs(run_settings({"MEDIA_ASSETS_LOG_FORMAT": "json"}))
    assert config == {"loggers": {"json": {"config": {"log_level": "INFO"}}}}


def test_a_gpu_step_runs_the_configured_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIA_ASSETS_GPU_IMAGE", raising=False)
    unset = json.loads(pod_config_tags("gpu")[K8S_CONFIG_TAG])
    assert "image" not in unset["container_config"]
    monkeypatch.setenv("MEDIA_ASSETS_GPU_IMAGE", "registry.local/media-assets-gpu:1")
    gpu = json.loads(pod_config_tags("gpu")[K8S_CONFIG_TAG])
    assert gpu["container_config"]["image"] == "registry.local/media-assets-gpu:1"
    cpu = json.loads(pod_config_tags("cpu")[K8S_CONFIG_TAG])
    assert "image" not in cpu["container_config"]


def test_importing_the_stage_modules_leaves_the_environment_alone() -> None:
    code = (
        "import os; before = dict(os.environ); "
        "import media_assets.web.chunk, media_assets.web.documents, media_assets.web.render; "
        "import media_assets.video.speech, media_assets.video.moments; "
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DO_NOT_TRACK", "UNSTRUCTURED_DISABLE_NOTICE")
    }
    changed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert changed == "[]"
