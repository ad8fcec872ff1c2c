"""Prometheus metrics from the Dagster instance and the per-URL status table, computed at each
scrape: URLs by state, per-stage latency, backlog of missing and stale partitions, retries and
dead letters. ``media-assets metrics --port N`` serves them. The URL counts come from the stored
status table brought up to date (``status.current_status``: only URLs with runs since are read
again), so a scrape stays small at 100,000 URLs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from media_assets import deadletters
from media_assets.dagster_compat import Provenance
from media_assets.names import CHAINS
from media_assets.status import current_status
from partitions import PARTITIONS_BY_KIND

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Latest materializations read per stage at each scrape, for latency and staleness: reading
# one costs ~0.1 ms, so 10,000 for each of 15 stages held a scrape past its 10 s timeout.
MAX_EVENTS = 1_000


def _histogram(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    buckets = [(str(b), float(sum(v <= b for v in values))) for b in LATENCY_BUCKETS]
    return [*buckets, ("+Inf", float(len(values)))], float(sum(values))


class PipelineCollector(Collector):
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs = defs
        self.instance = instance

    def collect(self) -> Iterator[Metric]:
        store = self.defs.resources["object_store"]
        yield from self._urls(store)
        yield from self._stages()
        letters = deadletters.list_all(store)
        dead = GaugeMetricFamily(
            "media_assets_dead_letters", "URLs whose last failure is a dead letter",
            labels=["asset", "error_class"],
        )  # fmt: skip
        for (asset, error_class), n in Counter((d.asset, d.error_class) for d in letters).items():
            dead.add_metric([asset, error_class], n)
        yield dead

    def _urls(self, store: Any) -> Iterator[Metric]:
        frame = current_status(store, self.instance)
        urls = GaugeMetricFamily(
            "media_assets_urls", "Registered URLs by kind and state", labels=["kind", "state"]
        )
        retries = CounterMetricFamily(
            "media_assets_fetch_retries", "Fetch attempts beyond the first", labels=["kind"]
        )
        if not frame.empty:
            # "failed at media" -> "failed", once per distinct state rather than per URL
            states = frame["state"].map({s: s.split(" at ")[0] for s in frame["state"].unique()})
            for (kind, state), n in frame.groupby([frame["kind"], states]).size().items():
                urls.add_metric([str(kind), str(state)], int(n))
            extra = (frame["fetch_attempts"].fillna(1) - 1).clip(lower=0)
            for kind, n in extra.groupby(frame["kind"]).sum().items():
                retries.add_metric([str(kind)], float(n))
        yield urls
        yield retries

    def _stages(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "media_assets_stage_seconds_per_url",
            "Seconds per URL of each stage's batches, over recent materializations",
            labels=["stage"],
        )
        backlog = GaugeMetricFamily(
            "media_assets_backlog_partitions",
            "Partitions not materialized (missing) or made by older code (stale)",
            labels=["stage", "state"],
        )
        for kind, stages in CHAINS.items():
            partitions = set(self.instance.get_dynamic_partitions(PARTITIONS_BY_KIND[kind].name))
            for stage in stages:
                key = dg.AssetKey(stage)
                code_version = self.defs.resolve_assets_def(key).code_versions_by_key.get(key)
                latest: dict[str, str | None] = {}
                values: list[float] = []
                records = self.instance.fetch_materializations(key, limit=MAX_EVENTS).records
                for record in records:  # newest first
                    event = record.asset_materialization
                    if event is None:
                        continue
                    seconds = event.metadata.get("seconds_per_url")
                    if seconds is not None:
                        values.append(float(seconds.value))  # type: ignore[arg-type]
                    if event.partition and event.partition not in latest:
                        latest[event.partition] = Provenance.of(event.tags, ()).code_version
                buckets, total = _histogram(values)
                latency.add_metric([stage], buckets, total)
                # Every partition ever materialized, in one query (no event read).
                done = self.instance.event_log_storage.get_latest_storage_id_by_partition(
                    key, dg.DagsterEventType.ASSET_MATERIALIZATION
                )
                missing = partitions - set(done)
                stale = {p for p, v in latest.items() if p in partitions and v != code_version}
                backlog.add_metric([stage, "missing"], len(missing))
                backlog.add_metric([stage, "stale"], len(stale))
        yield latency
        yield backlog


def serve_metrics(defs: dg.Definitions, instance: dg.DagsterInstance, port: int) -> Any:
    """Start the exposition endpoint on ``port`` (0 picks one); returns the HTTP server."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(PipelineCollector(defs, instance))
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
