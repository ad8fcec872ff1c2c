"""Structured JSON logs as production configures them (deploy/dagster.yaml's python_logs):
every step's events as JSON lines, materializations with their URL and partition key."""

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import ingest
from partitions.keys import partition_key
from tests.helpers import needs_chromium, write_articles

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


@needs_chromium
def test_json_logs_name_the_stage_partition_and_url(
    site: SiteServer,
    site_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    urls = [site.base_url + p for p in write_articles(site_dir, 2)]
    manifest = tmp_path / "urls.jsonl"
    manifest.write_text("".join(f'{{"url": "{u}"}}\n' for u in urls))
    python_logs = yaml.safe_load(DEPLOY.read_text())["python_logs"]
    with dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        report = ingest(manifest, build_definitions(env), instance)
    assert report.ok
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    stages = {line["stage"] for line in lines if line["stage"]}
    assert {"rendered_page", "page_elements", "web_chunks", "web_embeddings"} <= stages
    materialized = [line for line in lines if line["event"] == "ASSET_MATERIALIZATION"]
    assert {(m["asset"], m["partition_key"], m["url"], m["status"]) for m in materialized} >= {
        ("web_index_rows", partition_key(u), u, "ok") for u in urls
    }
    assert {line["job"] for line in lines} == {"web_ingest"}
