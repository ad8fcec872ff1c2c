"""What several test modules share: skip markers, local pages and manifests, the command line.

Test modules import from here, never from one another (nor from conftest, which holds only
fixtures and builds them from these helpers).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_assets import dagster_compat as compat
from media_assets.demo.server import SITE_DIR, SiteServer
from media_assets.instance import local_instance_config
from media_assets.manifest import detect_kind

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MEDIA_ASSETS_CHROMIUM", "/usr/bin/chromium")
EVAL_DIR = ROOT.parent / "shared" / "eval"
EVAL_AUDIO = EVAL_DIR / "audio"
DEMO_MANIFEST = ROOT / "media_assets" / "demo" / "manifest.jsonl"
DEPLOY_INSTANCE = ROOT / "deploy" / "dagster.yaml"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}: run scripts/setup.sh"
)
needs_eval = pytest.mark.skipif(
    not EVAL_DIR.is_dir(), reason=f"{EVAL_DIR} absent: evaluation data is not shipped with the repo"
)
needs_eval_audio = pytest.mark.skipif(
    not EVAL_AUDIO.is_dir(),
    reason=f"eval audio not found at {EVAL_AUDIO} (it is not shipped with the project)",
)


def copy_site(target: Path) -> Path:
    """A private copy of the demo site, so a test may change pages."""
    shutil.copytree(SITE_DIR, target)
    return target


def pipeline_env(folder: Path) -> dict[str, str]:
    """Configuration for a pipeline with its data in ``folder``, loopback allow-listed."""
    return {
        "MEDIA_ASSETS_DATA": str(folder / "data"),
        "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
        "MEDIA_ASSETS_CHROMIUM": CHROMIUM,
    }


@contextmanager
def local_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """An instance in ``home`` configured as the command line configures a local one, so a
    `media-assets` subprocess with ``DAGSTER_HOME=home`` sees the same runs and partitions."""
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(
        temp_dir=str(home), overrides=local_instance_config(home)
    ) as test_instance:
        yield test_instance


def write_articles(site_dir: Path, count: int) -> list[str]:
    """``count`` small static article pages in the site; returns their paths."""
    for n in range(count):
        (site_dir / f"article-{n}.html").write_text(
            f"<html><head><title>Article {n}</title></head><body><main><h1>Article {n}</h1>"
            f"<p>Article {n} explains how tide tables are computed from harmonic constituents, "
            f"and why the harbour at station {n} sees its highest water an hour after noon.</p>"
            f"<h2 id='more'>More</h2><p>Spring tides follow new and full moon; neap tides "
            f"follow the quarters, and station {n} records both every month.</p></main>"
            "</body></html>"
        )
    return [f"/article-{n}.html" for n in range(count)]


def write_manifest(path: Path, urls: Iterable[str], kind: str | None = None) -> Path:
    """A JSON Lines manifest of ``urls``, all of ``kind`` when given (else detected)."""
    rows = [{"url": url, **({"kind": kind} if kind else {})} for url in urls]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def demo_manifest(site: SiteServer, tmp_path: Path, kinds: tuple[str, ...] = ("web",)) -> Path:
    """The demo manifest on ``site``, only its entries of ``kinds`` (the web chain's tests leave
    the videos to tests/test_video_chain.py)."""
    lines = DEMO_MANIFEST.read_text().replace("{base}", site.base_url).splitlines()
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines if _kind(json.loads(line)) in kinds))
    return path


def deploy_storage() -> dict[str, Any]:
    """deploy/dagster.yaml's run, event log and schedule storages (PostgreSQL, read from the
    ``DAGSTER_PG_*`` variables), as instance overrides."""
    import yaml

    deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    return {name: deploy[name] for name in ("run_storage", "event_log_storage", "schedule_storage")}


def _kind(row: dict[str, object]) -> str:
    return str(row.get("kind") or detect_kind(str(row["url"])))


def run_cli(
    env: dict[str, str], *args: str, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """`media-assets ARGS` in a subprocess, as a person runs it, with ``env`` over this one's."""
    return subprocess.run(
        [sys.executable, "-m", "media_assets.cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


class Phases:
    """Where a module-scoped pipeline stands. Later fixtures change it on purpose (pages edited,
    runs forced, URLs retried); a test of an earlier state asks for that state, so running it
    out of file order fails with this explanation instead of a misleading assertion."""

    def __init__(self, first: str) -> None:
        self.current = first

    def advance(self, to: str) -> None:
        self.current = to

    def expect(self, phase: str) -> None:
        if self.current != phase:
            pytest.fail(
                f"this test checks the state {phase!r}, but the module's shared pipeline has "
                f"moved on to {self.current!r}: run the module's tests in file order"
            )


class SensorDaemon:
    """The sensor daemon's own iteration in this process (through media_assets.dagster_compat),
    against ``instance`` and the code location served from a gRPC subprocess as the daemon serves
    it: each ``tick()`` evaluates every running sensor that is due, applies its partition
    requests, submits its runs and records the tick. The code server reads ``os.environ`` when
    started."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._stack = ExitStack()
        self._last = 0.0

    def __enter__(self) -> SensorDaemon:
        self.workspace = self._stack.enter_context(
            compat.daemon_workspace(
                self.instance, "media_assets.definitions", str(ROOT), "media_assets"
            )
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def tick(self) -> None:
        """One iteration of the daemon's loop; sensors with an interval of 1 s are due again."""
        time.sleep(max(0.0, self._last + 1.05 - time.monotonic()))
        self._last = time.monotonic()
        compat.run_sensor_iteration(self.workspace, logging.getLogger("sensor-daemon"))

    def ticks(self, sensor_name: str) -> list[Any]:
        """The sensor's tick records, oldest first."""
        return compat.sensor_ticks(self.instance, sensor_name)
