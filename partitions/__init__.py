"""Dynamic partition sets, one per source kind, keyed by the hash of the normalized URL."""

import dagster as dg

from media_assets.names import PARTITION_SET_BY_KIND
from partitions.keys import InvalidURLError, normalize_url, partition_key

web_pages = dg.DynamicPartitionsDefinition(name=PARTITION_SET_BY_KIND["web"])
videos = dg.DynamicPartitionsDefinition(name=PARTITION_SET_BY_KIND["video"])

PARTITIONS_BY_KIND: dict[str, dg.DynamicPartitionsDefinition] = {"web": web_pages, "video": videos}

__all__ = [
    "PARTITIONS_BY_KIND",
    "InvalidURLError",
    "normalize_url",
    "partition_key",
    "videos",
    "web_pages",
]
