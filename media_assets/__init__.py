"""media-assets: web pages and videos, given as URLs, into one searchable index."""

import os

# Partition materializations of one step output are written together (see instance.py).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
