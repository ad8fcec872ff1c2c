"""The ingestion jobs, one per source kind: a batch of URL partitions through the whole chain."""

import dagster as dg

from media_assets.assets import video_assets, web_assets
from media_assets.batching import VIDEO_RUN_LIMIT_S, WEB_RUN_LIMIT_S
from media_assets.names import JOB_BY_KIND, MAX_RUNTIME_TAG
from partitions import videos, web_pages

web_ingest = dg.define_asset_job(
    JOB_BY_KIND["web"],
    selection=dg.AssetSelection.assets(*web_assets),
    partitions_def=web_pages,
    description="Render, extract, chunk, embed and index a batch of web page partitions.",
    tags={MAX_RUNTIME_TAG: str(WEB_RUN_LIMIT_S)},
)

video_ingest = dg.define_asset_job(
    JOB_BY_KIND["video"],
    selection=dg.AssetSelection.assets(*video_assets),
    partitions_def=videos,
    description="Captions or media, speech, speakers, frames, chapters, chunks, embeddings and "
    "index rows for a batch of video partitions.",
    tags={MAX_RUNTIME_TAG: str(VIDEO_RUN_LIMIT_S)},
)

ingest_jobs = {job.name: job for job in (web_ingest, video_ingest)}
