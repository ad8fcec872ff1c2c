"""Web pages: render in Chromium, keep the main content's structure, cut heading-aware chunks."""

from dataclasses import asdict

import dagster as dg

from media_assets.assets.common import (
    Checkpoints,
    Record,
    run_stage,
    source_stage,
    url_asset,
)
from media_assets.assets.tail import enriched, enriched_preview
from media_assets.chunks import sha256_text
from media_assets.names import Status
from media_assets.web.chunk import ChunkSettings, web_chunks_record
from media_assets.web.documents import page_elements_record
from media_assets.web.render import RenderResult, render_batch
from partitions import web_pages
from resources.enrichment import TextEnrichment
from resources.fetch import BrowserResource, FetchPolicy, ManifestSource
from resources.index import VectorIndex
from resources.storage import ObjectStore


def _render_preview(record: Record) -> dict[str, object]:
    return {
        "title": record.get("title") or "",
        "final_url": dg.MetadataValue.url(record["final_url"]),
        "http_status": record.get("http_status"),
        "timings_ms": record.get("timings_ms", {}),
        "html_bytes": len(record.get("html") or ""),
        # A PDF, text or Markdown file is fetched as it is, not rendered.
        "document": (record.get("document") or {}).get("format", "none"),
    }


@url_asset(
    partitions_def=web_pages,
    code_version="1",
    kinds={"playwright", "chromium"},
    group_name="web",
    sidecars={"html": "html"},
    # How this render went, not what the page holds: a re-render of an unchanged page changes
    # nothing downstream.
    measurements={"timings_ms", "attempts", "requests_refused"},
    pool="web_fetch",
)
def rendered_page(
    context: dg.AssetExecutionContext,
    browser: BrowserResource,
    fetch_policy: FetchPolicy,
    object_store: ObjectStore,
    vector_index: VectorIndex,
    manifest: ManifestSource,
) -> dg.Output:
    """The page as Chromium rendered it (scripts run), after robots.txt and address checks.

    Each page is checkpointed as soon as it is rendered, so a crashed batch resumes where it
    stopped; a stored render (a permanent failure too) is reused unless the run is tagged
    ``media_assets/refresh=true``.
    """

    def render(checkpoints: Checkpoints, todo: dict[str, str]) -> dict[str, Record]:
        records: dict[str, Record] = {}
        every = max(1, len(todo) // 10)  # about ten progress lines a step, not one per URL

        def checkpoint(url: str, result: RenderResult) -> None:
            key = todo[url]
            document = None
            if result.document is not None:
                file_key = checkpoints.artifacts.blob_key(key, result.document.file_name)
                object_store.put(file_key, result.document.data)
                document = result.document.file_record(file_key)
            page = result.page_record(url, sha256_text(url), document)
            records[key] = checkpoints.save(key, page)
            done = len(records)
            if done % every == 0 or done == len(todo) or result.status != Status.OK:
                context.log.info(f"rendered {done}/{len(todo)}; last [{result.status}] {url}")

        render_batch(list(todo), browser.settings(fetch_policy), checkpoint)
        return records

    def drop_gone(records: dict[str, Record]) -> None:
        # A page that is gone (404/410, robots, refused) leaves the index now: its chain stops.
        vector_index.delete_sources([key for key, r in records.items() if r.get("gone")])

    return source_stage(
        context,
        object_store,
        render,
        manifest_path=manifest.path or None,
        reuse_on_refresh=False,
        preview=_render_preview,
        finish=drop_gone,
    )


@url_asset(
    partitions_def=web_pages, code_version="1", kinds={"trafilatura", "python"}, group_name="web"
)
def page_elements(
    context: dg.AssetExecutionContext, object_store: ObjectStore, rendered_page: dict[str, Record]
) -> dg.Output:
    """Main content with its structure (headings, paragraphs, lists, tables, code); a PDF's
    elements carry their page numbers (unstructured, fast strategy), Markdown keeps its headings."""
    return run_stage(
        context,
        object_store,
        rendered_page,
        lambda _, page: page_elements_record(page, object_store.get),
        upstream="rendered_page",
        preview=lambda r: {
            "elements": len(r["elements"]),
            "headings": sum(e["kind"] == "title" for e in r["elements"]),
            "format": r.get("format", "html"),
            "pages": len({e["page_number"] for e in r["elements"] if "page_number" in e}),
        },
    )


class ChunkConfig(dg.Config):
    """Run configuration of ``web_chunks``; the defaults are ChunkSettings' (web/chunk.py)."""

    max_characters: int = ChunkSettings.max_characters
    new_after_n_chars: int = ChunkSettings.new_after_n_chars
    combine_text_under_n_chars: int = ChunkSettings.combine_text_under_n_chars


@url_asset(
    partitions_def=web_pages, code_version="2", kinds={"unstructured", "python"}, group_name="web"
)
def web_chunks(
    context: dg.AssetExecutionContext,
    config: ChunkConfig,
    object_store: ObjectStore,
    text_enrichment: TextEnrichment,
    page_elements: dict[str, Record],
) -> dg.Output:
    """Heading-aware chunks in the common schema, each with its section path and a deep link,
    its entities and keywords, and the PII policy applied (media_assets/enrich.py)."""
    settings = ChunkSettings(
        config.max_characters, config.new_after_n_chars, config.combine_text_under_n_chars
    )
    return run_stage(
        context,
        object_store,
        page_elements,
        enriched(lambda key, page: web_chunks_record(key, page, settings), text_enrichment),
        upstream="page_elements",
        settings={"chunk_settings": asdict(settings), **text_enrichment.settings()},
        preview=enriched_preview,
    )
