"""How URL partitions are grouped into runs, and how a failed batch is split."""

from __future__ import annotations

from collections.abc import Sequence

from media_assets import deadletters
from media_assets.dagster_compat import partition_range_tags
from media_assets.names import URLS_TAG
from resources.storage import ObjectStore

# Whole-run limits, enforced by the daemon's run monitoring (deploy/dagster.yaml and the local
# instance enable it): the backstop behind each URL's own limits (render and download deadlines,
# tool timeouts), sized for a batch of 50 at those limits' worst case.
WEB_RUN_LIMIT_S = 3 * 3600
VIDEO_RUN_LIMIT_S = 48 * 3600


def contiguous_batches(
    ordered: Sequence[str], wanted: set[str], batch_size: int
) -> list[list[str]]:
    """Split ``wanted`` keys into runs of consecutive keys (in partition order), each at most
    ``batch_size`` long: a run's partitions are a range, which must not cover unwanted keys."""
    batches: list[list[str]] = []
    current: list[str] = []
    for key in ordered:
        if key in wanted and len(current) < batch_size:
            current.append(key)
            continue
        if current:
            batches.append(current)
        current = [key] if key in wanted else []
    if current:
        batches.append(current)
    return batches


def failed_in_run(store: ObjectStore, run_id: str, keys: Sequence[str]) -> set[str]:
    """The partitions of ``keys`` that run ``run_id`` sent to the dead letters."""
    return {k for k in keys if any(d.run_id == run_id for d in deadletters.for_partition(store, k))}


def range_tags(batch: Sequence[str]) -> dict[str, str]:
    return {**partition_range_tags(batch[0], batch[-1]), URLS_TAG: str(len(batch))}
