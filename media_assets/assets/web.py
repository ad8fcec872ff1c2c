"""Web pages: render in Chromium, keep the main content's structure, cut heading-aware chunks."""

import hashlib

import dagster as dg

from media_assets import registry
from media_assets.assets.common import (
    Record,
    batch_output,
    is_ok,
    skipped,
    text_preview,
    timed,
    url_asset,
)
from media_assets.web.chunk import ChunkSettings, chunk_page
from media_assets.web.extract import PageElement, extract_elements
from media_assets.web.render import RenderResult, render_batch
from partitions import web_pages
from resources.fetch import BrowserResource, FetchPolicy
from resources.storage import ObjectStore


def _render_preview(record: Record) -> dict[str, object]:
    return {
        "title": record.get("title") or "",
        "final_url": dg.MetadataValue.url(record["final_url"]),
        "http_status": record.get("http_status"),
        "timings_ms": record.get("timings_ms", {}),
        "html_bytes": len(record.get("html") or ""),
    }


@url_asset(
    partitions_def=web_pages,
    code_version="1",
    kinds={"playwright", "chromium"},
    group_name="web",
    sidecars={"html": "html"},
    pool="web_fetch",
)
def rendered_page(
    context: dg.AssetExecutionContext,
    browser: BrowserResource,
    fetch_policy: FetchPolicy,
    object_store: ObjectStore,
) -> dg.Output:
    """The page as Chromium rendered it (scripts run), after robots.txt and address checks."""
    sources = registry.lookup_many(object_store, context.partition_keys)
    keys_by_url = {s.url: k for k, s in sources.items()}
    done = 0

    every = max(1, len(sources) // 10)  # about ten progress lines a step, not one per URL

    def progress(url: str, result: RenderResult) -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == len(sources) or result.status != "ok":
            context.log.info(f"rendered {done}/{len(sources)}; last [{result.status}] {url}")

    with timed() as clock:
        results = render_batch(list(keys_by_url), browser.settings(fetch_policy), progress)
    records = {
        keys_by_url[r.requested_url]: {**r.record(), "source_url": r.requested_url, "gone": r.gone}
        for r in results
    }
    return batch_output(context, records, clock["seconds"], _render_preview)


def elements_record(page: Record) -> Record:
    html = page["html"]
    elements = extract_elements(html, page.get("final_url"))
    base = {
        "source_url": page["source_url"],
        "page_url": page.get("final_url"),
        "title": page.get("title"),
        "input_sha256": hashlib.sha256(html.encode("utf-8")).hexdigest(),
    }
    if not elements:
        return {
            **base,
            "status": "empty",
            "error": "no main content found in the rendered page",
            "elements": [],
        }
    return {**base, "status": "ok", "elements": [e.record() for e in elements]}


@url_asset(
    partitions_def=web_pages, code_version="1", kinds={"trafilatura", "python"}, group_name="web"
)
def page_elements(context: dg.AssetExecutionContext, rendered_page: dict[str, Record]) -> dg.Output:
    """Main content with its structure (headings, paragraphs, lists, tables, code)."""
    with timed() as clock:
        records = {
            key: elements_record(page) if is_ok(page) else skipped("rendered_page", page)
            for key, page in rendered_page.items()
        }
    return batch_output(
        context,
        records,
        clock["seconds"],
        lambda r: {
            "elements": len(r["elements"]),
            "headings": sum(e["kind"] == "title" for e in r["elements"]),
        },
    )


class ChunkConfig(dg.Config):
    max_characters: int = 1000
    new_after_n_chars: int = 800
    combine_text_under_n_chars: int = 0


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
    partitions_def=web_pages, code_version="1", kinds={"unstructured", "python"}, group_name="web"
)
def web_chunks(
    context: dg.AssetExecutionContext, config: ChunkConfig, page_elements: dict[str, Record]
) -> dg.Output:
    """Heading-aware chunks in the common schema, each with its section path and a deep link."""
    settings = ChunkSettings(
        config.max_characters, config.new_after_n_chars, config.combine_text_under_n_chars
    )
    with timed() as clock:
        records = {
            key: chunks_record(key, page, settings)
            if is_ok(page)
            else skipped("page_elements", page)
            for key, page in page_elements.items()
        }
    return batch_output(
        context,
        records,
        clock["seconds"],
        lambda r: {
            "chunks": len(r["chunks"]),
            "first_chunk": text_preview(r["chunks"][0]["text"]) if r["chunks"] else "",
        },
    )
