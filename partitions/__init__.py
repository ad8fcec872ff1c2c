"""Dynamic partition sets, one per source kind, keyed by the hash of the normalized URL."""

import dagster as dg

from partitions.keys import InvalidURLError, normalize_url, partition_key

web_pages = dg.DynamicPartitionsDefinition(name="web_pages")
videos = dg.DynamicPartitionsDefinition(name="videos")

PARTITIONS_BY_KIND: dict[str, dg.DynamicPartitionsDefinition] = {"web": web_pages, "video": videos}

__all__ = [
    "PARTITIONS_BY_KIND",
    "InvalidURLError",
    "normalize_url",
    "partition_key",
    "videos",
    "web_pages",
]
