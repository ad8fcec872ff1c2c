"""Web pages: render in Chromium, keep the main content's structure, cut heading-aware chunks."""

import hashlib
from dataclasses import asdict

import dagster as dg

from media_assets import registry
from media_assets.assets.common import (
    Checkpoints,
    Record,
    batch_output,
    run_stage,
    timed,
    url_asset,
)
from media_assets.assets.tail import enriched, enriched_preview
from media_assets.chunks import sha256_text
from media_assets.web.chunk import ChunkSettings, chunk_page
from media_assets.web.documents import (
    EXTENSIONS,
    FetchedDocument,
    document_elements,
    document_title,
)
from media_assets.web.extract import PageElement, extract_elements
from media_assets.web.render import RenderResult, render_batch
from partitions import web_pages
from resources.enrichment import TextEnrichment
from resources.fetch import BrowserResource, FetchPolicy
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


def document_record(store: ObjectStore, file_key: str, document: FetchedDocument) -> Record:
    """Store a fetched document's bytes at ``file_key``; what the render record says of it.

    Its hash is in the record, so the stages after it run again exactly when the file changed."""
    store.put(file_key, document.data)
    return {
        "format": document.format,
        "media_type": document.media_type,
        "bytes": len(document.data),
        "sha256": hashlib.sha256(document.data).hexdigest(),
        "file": file_key,
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
) -> dg.Output:
    """The page as Chromium rendered it (scripts run), after robots.txt and address checks.

    Each page is checkpointed as soon as it is rendered, so a crashed batch resumes where it
    stopped; a stored render is reused unless the run is tagged ``media_assets/refresh=true``.
    """
    sources, records = registry.resolve(object_store, context.partition_keys)
    checkpoints = Checkpoints(context, object_store)
    for key, source in sources.items():
        # A stored render is reused (a permanent failure too) unless the run says refresh.
        stored = None if checkpoints.retry else checkpoints.reuse(key, sha256_text(source.url))
        if stored:
            records[key] = stored
    todo = {s.url: k for k, s in sources.items() if k not in records}
    every = max(1, len(todo) // 10)  # about ten progress lines a step, not one per URL
    rendered: list[str] = []

    def checkpoint(url: str, result: RenderResult) -> None:
        key = todo[url]
        record = {
            **result.record(),
            "source_url": url,
            "gone": result.gone,
            "input_sha256": sha256_text(url),
        }
        if result.document is not None:
            name = f"document.{EXTENSIONS[result.document.format]}"
            record["document"] = document_record(
                object_store, checkpoints.artifacts.blob_key(key, name), result.document
            )
        records[key] = checkpoints.save(key, record)
        rendered.append(key)
        done = len(rendered)
        if done % every == 0 or done == len(todo) or result.status != "ok":
            context.log.info(f"rendered {done}/{len(todo)}; last [{result.status}] {url}")

    with timed() as clock:
        if todo:
            render_batch(list(todo), browser.settings(fetch_policy), checkpoint)
    # A page that is gone (404/410, robots, refused) leaves the index now: its chain stops here.
    vector_index.delete_sources([key for key, r in records.items() if r.get("gone")])
    return batch_output(context, checkpoints, records, clock["seconds"], _render_preview)


def elements_record(page: Record, store: ObjectStore) -> Record:
    document = page.get("document")
    if document:
        data = store.get(document["file"])
        elements = document_elements(data, document["format"], document["media_type"])
        title = document_title(data, document["format"], elements, page["final_url"])
        missing = "no text in the document (a scanned PDF has none: OCR is not enabled)"
    else:
        elements = extract_elements(page["html"], page.get("final_url"))
        title = page.get("title")
        missing = "no main content found in the rendered page"
    base = {
        "source_url": page["source_url"],
        "page_url": page.get("final_url"),
        "title": title,
        **({"format": document["format"]} if document else {}),
    }
    if not elements:
        return {**base, "status": "empty", "error": missing, "elements": []}
    return {**base, "status": "ok", "elements": [e.record() for e in elements]}


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
        lambda _, page: elements_record(page, object_store),
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


def chunks_record(key: str, page: Record, settings: ChunkSettings) -> Record:
    elements = [PageElement(**e) for e in page["elements"]]
    chunks = chunk_page(
        elements,
        source_key=key,
        source_url=page["source_url"],
        page_url=page.get("page_url") or page["source_url"],
        title=page.get("title"),
        settings=settings,
    )
    return {
        "status": "ok",
        "source_url": page["source_url"],
        "title": page.get("title"),
        "chunks": [c.record() for c in chunks],
    }


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
        enriched(lambda key, page: chunks_record(key, page, settings), text_enrichment),
        upstream="page_elements",
        settings={"chunk_settings": asdict(settings), **text_enrichment.settings()},
        preview=enriched_preview,
    )
