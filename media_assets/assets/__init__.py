from media_assets.assets.tail import build_index_tail
from media_assets.assets.web import page_elements, rendered_page, web_chunks
from partitions import web_pages

web_assets = [
    rendered_page,
    page_elements,
    web_chunks,
    *build_index_tail("web", web_pages, chunks_asset="web_chunks"),
]

# Each kind's stages in order, first to last: status, ingest reports and removal read them here.
CHAINS: dict[str, list[str]] = {"web": [a.key.to_user_string() for a in web_assets]}

__all__ = ["CHAINS", "web_assets"]
