"""The names every layer shares: source kinds, their partition sets, stage chains and jobs, run
tags, and the values of a record's ``status``.

Plain Python, no Dagster and no project import, so that any module can read them without pulling
in the layer that defines the assets (``media_assets/assets/__init__.py`` checks its chains
against ``CHAINS`` on import).
"""

from typing import Final

# --- source kinds --------------------------------------------------------------------------

WEB: Final = "web"
VIDEO: Final = "video"
KINDS: Final = (WEB, VIDEO)

# Each kind's dynamic partition set (partition key: hash of the normalized URL).
PARTITION_SET_BY_KIND: Final = {WEB: "web_pages", VIDEO: "videos"}

# Each kind's stages in order, first to last: status, ingest reports, metrics and removal read
# them here. A video is done when its seconds are in the moments index too.
CHAINS: Final[dict[str, list[str]]] = {
    WEB: [
        "rendered_page",
        "page_elements",
        "web_chunks",
        "web_embeddings",
        "web_index_rows",
    ],
    VIDEO: [
        "video_info",
        "captions",
        "media",
        "transcript",
        "speaker_turns",
        "key_frames",
        "frame_text",
        "chapters",
        "video_segments",
        "video_chunks",
        "video_embeddings",
        "video_index_rows",
        "video_moments",
        "video_moments_index",
    ],
}

# Each kind's job: the whole chain of that kind for a batch of its partitions.
JOB_BY_KIND: Final = {WEB: "web_ingest", VIDEO: "video_ingest"}
REMOVE_SOURCES_JOB: Final = "remove_sources"

# --- run tags ------------------------------------------------------------------------------

# Dagster's own: the daemon's run monitoring ends a run past this many seconds.
MAX_RUNTIME_TAG: Final = "dagster/max_runtime"
# How many URLs a run covers.
URLS_TAG: Final = "media_assets/urls"
# Fetch and compute again instead of reusing stored artifacts (permanent failures too).
REFRESH_TAG: Final = "media_assets/refresh"
# A run that materializes stale partitions (value: the kind).
STALE_TAG: Final = "media_assets/stale"
# A run that re-requests the good URLs of a failed batch (value: the failed run's id).
RETRY_OF_TAG: Final = "media_assets/retry_of"
# The manifest sensor's runs: the byte range of the manifest their partitions came from.
MANIFEST_BYTES_TAG: Final = "media_assets/manifest_bytes"
# On an asset: the resource whose engine does its work; definitions.py adds that engine's kind
# (onnx or cohere, lancedb or weaviate), which is known only once the resources are.
ENGINE_TAG: Final = "media_assets/engine"

# --- a record's status ---------------------------------------------------------------------


class Status:
    """Values of the ``status`` field every artifact record has: ``ok``, or why not."""

    OK: Final = "ok"
    FAILED: Final = "failed"
    # A stage run over a URL whose upstream record is not ok.
    SKIPPED: Final = "skipped"
    # A page with no main content.
    EMPTY: Final = "empty"
    # The egress policy refused an address (private, loopback, metadata).
    REFUSED: Final = "refused"
    BLOCKED_BY_ROBOTS: Final = "blocked_by_robots"
