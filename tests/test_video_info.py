"""yt-dlp metadata on a local page with a captioned <video>: the caption path never asks for
the media file."""

import httpx

from media_assets.demo.server import SiteServer
from media_assets.video.captions import parse_captions, pick_track
from media_assets.video.info import extract_infos


def test_captioned_page_gives_its_track_and_no_media_is_fetched(site: SiteServer) -> None:
    page, other = extract_infos(
        [f"{site.base_url}/video/hive-tour.html", f"{site.base_url}/docs/getting-started.html"],
        extractors=["generic", "html5"],
    )
    assert page.status == "ok" and page.title.startswith("Hive tour in early spring")
    assert page.media_url == f"{site.base_url}/video/hive-tour.mp4"
    track = pick_track({"subtitles": page.subtitles})
    assert (track.source, track.language, track.ext) == ("manual", "en", "vtt")
    cues = parse_captions(httpx.get(track.url).text, track.ext)
    assert [c.speaker for c in cues] == ["Mira Okonkwo", "Tomasz Lindqvist"]
    assert cues[1].start_s == 3.25
    assert site.requests["/video/hive-tour.mp4"] == 0  # the media file was never requested
    assert other.status == "failed" and other.error_class == "no_video"
    assert other.error == "no video found at this URL"
