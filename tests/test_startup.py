"""What a process pays to start: loading the code location imports no engine, and a step pod's
command (`dagster api execute_step`, what each Kubernetes step pod runs) starts and runs a step.

Every step pod and every restarted process loads the code location; an engine imported at module
level there (a model runtime, the browser's client, an executor's integration) is paid by every
step, whichever it is. bench/resume_cost.py measures the start-up itself."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from media_assets.dagster_compat import step_pod_command

ROOT = Path(__file__).resolve().parents[1]

# Imported by the step that uses them (or the backend that is chosen), never by loading the code
# location. ``playwright.async_api`` is the browser's client; its small error module is not.
ENGINES = (
    "playwright.async_api",
    "lancedb",
    "pyarrow",
    "pandas",
    "onnxruntime",
    "torch",
    "sentence_transformers",
    "faster_whisper",
    "resemblyzer",
    "spacy",
    "presidio_analyzer",
    "unstructured",
    "trafilatura",
    "yt_dlp",
    "cv2",
    "boto3",
    "dagster_aws",
    "weaviate",
    "cohere",
    "dagster_k8s",
    "dagster_celery",
    "celery",
    "kubernetes",
)


def modules_after_loading(env: dict[str, str]) -> set[str]:
    """The modules a fresh process holds once it has loaded the code location."""
    code = "import json, sys, media_assets.definitions; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(f"{package}.") for m in modules)


def test_loading_the_code_location_imports_no_engine(tmp_path: Path) -> None:
    modules = modules_after_loading({"MEDIA_ASSETS_DATA": str(tmp_path / "data")})
    assert "media_assets.definitions" in modules
    imported = [engine for engine in ENGINES if loaded(modules, engine)]
    assert not imported, (
        f"loading the code location imports {imported}: import them in the function, method or "
        "backend branch that uses them (resources/__init__.py builds each resource lazily)"
    )


def test_an_executors_integration_is_imported_only_when_it_is_chosen(tmp_path: Path) -> None:
    modules = modules_after_loading(
        {"MEDIA_ASSETS_DATA": str(tmp_path / "data"), "MEDIA_ASSETS_EXECUTOR": "k8s"}
    )
    assert loaded(modules, "dagster_k8s")
    assert not loaded(modules, "dagster_celery")


def test_the_renderers_error_classes_are_the_clients() -> None:
    """media_assets/web/render.py catches Playwright's errors through its small error module, so
    that loading it does not import the client: they must be the client's own classes."""
    import playwright.async_api as client

    from media_assets.web import render

    assert render.PlaywrightError is client.Error
    assert render.PlaywrightTimeout is client.TimeoutError


BARE_DEFS = """
import dagster as dg

@dg.asset
def one() -> int:
    return 1

defs = dg.Definitions(assets=[one], jobs=[dg.define_asset_job("bare", [one])])
"""


def test_a_step_pods_command_runs_its_step(tmp_path: Path) -> None:
    """The command the start-up bench times is the one a step pod runs: it loads the code by
    pointer in a process of its own and runs the one step into the orchestrator's instance."""
    code = tmp_path / "bare_defs.py"
    code.write_text(BARE_DEFS)
    bare = runpy.run_path(str(code))["defs"].resolve_job_def("bare")
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        run_id, command = step_pod_command(instance, bare, str(code), str(tmp_path), "one")
        assert command[1:4] == ["api", "execute_step", "--compressed-input-json"]
        done = subprocess.run(
            command,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        steps = {
            record.event_log_entry.dagster_event_type
            for record in instance.get_records_for_run(run_id).records
            if record.event_log_entry.step_key == "one"
        }
    if dg.DagsterEventType.STEP_START not in steps:
        pytest.fail(f"the step never started: {done.stderr[-3000:]}")
    assert dg.DagsterEventType.STEP_SUCCESS in steps
