"""media-assets: web pages and videos, given as URLs, into one searchable index."""

import os

# A batched run over N partitions would otherwise write N "planned" events per asset before it
# starts (about 8 ms each on SQLite); with this, one event per asset covers the whole range. A
# partition whose step fails then shows as missing rather than failed. The webserver and daemon
# read it from their environment too (the Makefile's `ui` target sets it).
os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
# Partition materializations of one step output are written together (see instance.py).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
