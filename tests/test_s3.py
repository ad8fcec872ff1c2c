"""Artifacts on a real S3 server (SeaweedFS on 127.0.0.1): same formats, same layout, retries."""

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from resources import object_store_from
from tests.helpers import demo_manifest, needs_chromium


def test_object_store_round_trip(s3_env: dict[str, str], tmp_path: Path) -> None:
    store = object_store_from(s3_env, tmp_path)
    assert store.list_keys("a/") == []
    uri = store.put("a/p1.json", b'{"x": 1}')
    store.put_text("a/p2.html", "<p>é</p>")
    bucket, prefix = s3_env["MEDIA_ASSETS_S3_BUCKET"], s3_env["MEDIA_ASSETS_S3_PREFIX"]
    assert uri == f"s3://{bucket}/{prefix}/a/p1.json"
    assert json.loads(store.get("a/p1.json")) == {"x": 1}
    assert store.get_text("a/p2.html") == "<p>é</p>"
    assert store.list_keys("a/") == ["a/p1.json", "a/p2.html"]
    assert store.exists("a/p1.json") and not store.exists("a/missing.json")
    store.delete("a/p1.json")
    with pytest.raises(FileNotFoundError, match="missing"):
        store.get("a/missing.json")
    assert store.list_keys("a/") == ["a/p2.html"]
    # Media files stream both ways without passing through memory whole.
    media = tmp_path / "clip.bin"
    media.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: a multipart upload
    store.put_file("a/p3/original.bin", media)
    copy = store.get_file("a/p3/original.bin", tmp_path / "back" / "clip.bin")
    assert copy.read_bytes() == media.read_bytes()
    with pytest.raises(FileNotFoundError, match="missing"):
        store.get_file("a/missing.bin", tmp_path / "nothing.bin")


@needs_chromium
def test_pipeline_checkpoints_to_s3(
    site: SiteServer, tmp_path: Path, s3_env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(s3_env)
    report = ingest(demo_manifest(site, tmp_path), defs, instance)
    assert report.statuses["web"] == Counter({"indexed": 5, "blocked_by_robots": 1, "failed": 1})
    store = defs.resources["object_store"]
    keys = store.list_keys("rendered_page/")
    assert len([k for k in keys if k.endswith(".json")]) == 7
    assert len([k for k in keys if k.endswith(".html")]) == 5  # robots and 404 render nothing
    assert any(k.endswith(".parquet") for k in store.list_keys("web_embeddings/"))
    assert not (tmp_path / "data" / "artifacts").exists()  # nothing went to the local folder
