"""The code location: every asset, job, sensor and resource, assembled in one place."""

from collections.abc import Mapping

import dagster as dg

from media_assets.assets.tail import build_index_tail
from media_assets.assets.web import page_elements, rendered_page, web_chunks
from media_assets.logs import terminal_logger
from partitions import web_pages
from resources import build_resources
from sensors import manifest_sensor

web_assets = [
    rendered_page,
    page_elements,
    web_chunks,
    *build_index_tail("web", web_pages, chunks_asset="web_chunks"),
]

web_ingest = dg.define_asset_job(
    "web_ingest",
    selection=dg.AssetSelection.assets(*web_assets),
    partitions_def=web_pages,
    description="Render, extract, chunk, embed and index a batch of web page partitions.",
)


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """Definitions with resources configured from ``env`` (the process environment by default)."""
    return dg.Definitions(
        assets=web_assets,
        jobs=[web_ingest],
        sensors=[manifest_sensor],
        resources=build_resources(env),
        loggers={"terminal": terminal_logger, "console": dg.colored_console_logger},
        # Steps of a batch run in one process: each step already works on its whole batch
        # concurrently, and a process per step would start Chromium and load the model again.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
