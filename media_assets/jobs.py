"""The ingestion jobs, one per source kind: a batch of URL partitions through the whole chain."""

import dagster as dg

from media_assets.assets import web_assets
from partitions import web_pages

web_ingest = dg.define_asset_job(
    "web_ingest",
    selection=dg.AssetSelection.assets(*web_assets),
    partitions_def=web_pages,
    description="Render, extract, chunk, embed and index a batch of web page partitions.",
)

ingest_jobs = {"web_ingest": web_ingest}
