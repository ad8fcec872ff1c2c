"""The stored per-URL status table at scale: brought up to date from the instance's events and
the registry's index, reading again only the URLs that changed, and equal to a table built
from scratch (`media-assets status` itself is tested in tests/test_mixed_ingest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from media_assets import registry, status
from media_assets.instance import local_instance_config
from media_assets.manifest import parse_manifest
from media_assets.names import CHAINS
from resources.io_manager import artifact_key
from resources.storage import LocalObjectStore

STAGES = {s for stages in CHAINS.values() for s in stages}


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    def rows(frame: pd.DataFrame) -> list[dict[str, str]]:
        clean = frame.astype(object).where(frame.notna(), None).astype(str)
        return sorted(clean.to_dict("records"), key=lambda r: r["partition_key"])

    return rows(a) == rows(b)


def test_stored_status_reads_again_only_the_urls_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []  # partitions whose stage records were read
    stock_get = LocalObjectStore.get

    def get(self: LocalObjectStore, key: str) -> bytes:
        if key.split("/")[0] in STAGES:
            read.append(key.rsplit("/", 1)[-1].removesuffix(".json"))
        return stock_get(self, key)

    monkeypatch.setattr(LocalObjectStore, "get", get)
    monkeypatch.setattr(status, "COMPACT_INDEX_FILES", 2)
    store = LocalObjectStore(root=str(tmp_path / "store"))
    text = "".join(json.dumps({"url": f"https://example.com/s/{i}"}) + "\n" for i in range(40))
    entries = parse_manifest(text, "jsonl").entries
    keys = [e.key for e in entries]
    for start in range(0, 30, 10):  # three runs' worth of registrations: three index files
        registry.register(store, entries[start : start + 10])

    def render(key: str, ok: bool) -> None:
        record = {"status": "ok" if ok else "failed", "source_url": "x", "attempts": 2}
        store.put_text(artifact_key(dg.AssetKey("rendered_page"), key, "json"), json.dumps(record))

    for key in keys[:10]:
        render(key, ok=True)
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst:
        first = status.current_status(store, inst)
        assert len(first) == 30 and sorted(set(read)) == sorted(keys[:10])
        assert (first["stage_rendered_page"] == "ok").sum() == 10
        assert same(first, status.status_frame(store))

        # A run renders one URL again (failed, this time); ten URLs are registered.
        render(keys[10], ok=False)
        inst.report_runless_asset_event(
            dg.AssetMaterialization("rendered_page", partition=keys[10])
        )
        registry.register(store, entries[30:])
        registry.forget(store, keys[0])
        read.clear()
        second = status.current_status(store, inst)
        assert set(read) <= {keys[10], *keys[30:]} and keys[10] in read
        assert len(second) == 39 and keys[0] not in set(second["partition_key"])
        row = second.set_index("partition_key").loc[keys[10]]
        assert row["state"] == "failed at rendered_page"
        assert same(second, status.status_frame(store))
        assert len(registry.index_files(store)) == 1  # merged, nothing lost
        assert {s.key for s in registry.all_sources(store)} == set(keys[1:])

        read.clear()
        third = status.current_status(store, inst)  # nothing happened since
        assert read == [] and same(third, second)
