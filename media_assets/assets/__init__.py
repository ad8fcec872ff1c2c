from media_assets.assets.moments import video_moments, video_moments_index
from media_assets.assets.tail import build_index_tail
from media_assets.assets.video import (
    captions,
    chapters,
    frame_text,
    key_frames,
    media,
    speaker_turns,
    transcript,
    video_chunks,
    video_info,
    video_segments,
)
from media_assets.assets.web import page_elements, rendered_page, web_chunks
from media_assets.names import CHAINS
from partitions import videos, web_pages

web_assets = [
    rendered_page,
    page_elements,
    web_chunks,
    *build_index_tail("web", web_pages, chunks_asset="web_chunks"),
]

video_assets = [
    video_info,
    captions,
    media,
    transcript,
    speaker_turns,
    key_frames,
    frame_text,
    chapters,
    video_segments,
    video_chunks,
    *build_index_tail("video", videos, chunks_asset="video_chunks"),
    # Last: a video is done when its seconds are in the moments index too (ingest and status
    # read the chain's last stage).
    video_moments,
    video_moments_index,
]

ASSETS_BY_KIND = {"web": web_assets, "video": video_assets}
# The chains lower layers read by name (media_assets/names.py) are these assets, in this order.
_found = {kind: [a.key.to_user_string() for a in assets] for kind, assets in ASSETS_BY_KIND.items()}
if _found != CHAINS:
    raise RuntimeError(f"media_assets/names.py CHAINS must list these assets in order: {_found}")

__all__ = ["ASSETS_BY_KIND", "CHAINS", "video_assets", "web_assets"]
