"""One readable artifact per partition, for single and batched steps, on the local store."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from resources.io_manager import ArtifactIOManager
from resources.storage import LocalObjectStore

parts = dg.StaticPartitionsDefinition(["p1", "p2", "p3"])


@dg.asset(
    partitions_def=parts,
    metadata={"sidecars": {"html": "html", "table": "parquet"}},
    code_version="7",
)
def produced(context: dg.AssetExecutionContext) -> dict:
    return {
        k: {"status": "ok", "html": f"<p>{k}</p>", "table": pd.DataFrame({"n": [len(k)]})}
        for k in context.partition_keys
    }


@dg.asset(partitions_def=parts)
def consumed(context: dg.AssetExecutionContext, produced: dict) -> dict:
    return {
        k: {
            "status": "ok",
            "seen": sorted(produced),
            "html": produced[k]["html"],
            "n": int(produced[k]["table"]["n"][0]),
        }
        for k in context.partition_keys
    }


def test_batched_step_writes_and_reads_one_artifact_per_partition(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [produced, consumed],
            instance=instance,
            resources={"io_manager": ArtifactIOManager(store=store)},
            tags={
                "dagster/asset_partition_range_start": "p1",
                "dagster/asset_partition_range_end": "p2",
            },
        )
        assert result.success
    record = json.loads((tmp_path / "produced" / "p2.json").read_text())
    assert record["html_artifact"] == "produced/p2.html"
    assert record["_artifact"]["partition"] == "p2"
    assert (tmp_path / "produced" / "p2.html").read_text() == "<p>p2</p>"
    assert pd.read_parquet(tmp_path / "produced" / "p2.parquet")["n"].tolist() == [2]
    assert not (tmp_path / "produced" / "p3.json").exists()
    consumed_p1 = json.loads((tmp_path / "consumed" / "p1.json").read_text())
    assert consumed_p1["seen"] == ["p1", "p2"] and consumed_p1["html"] == "<p>p1</p>"
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))


def test_missing_partition_in_output_is_a_clear_error(tmp_path: Path) -> None:
    @dg.asset(partitions_def=parts, name="partial")
    def partial(context: dg.AssetExecutionContext) -> dict:
        return {"p1": {"status": "ok"}}

    with dg.instance_for_test() as instance, pytest.raises(Exception, match="no artifact for"):
        dg.materialize(
            [partial],
            instance=instance,
            partition_key="p2",
            resources={"io_manager": ArtifactIOManager(store=LocalObjectStore(root=str(tmp_path)))},
        )


def test_store_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escapes"):
        LocalObjectStore(root=str(tmp_path)).put("../outside.json", b"{}")
