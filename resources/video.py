"""How videos are handled: caption preference, when media is paid for, caps, frame sampling."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from media_assets.video.frames import FrameSettings
from media_assets.video.media import MediaLimits
from media_assets.video.timeline import SEGMENT_S


class VideoPolicy(dg.ConfigurableResource):
    """Captions first: media is downloaded only for videos without a usable caption track,
    unless ``always_download`` is set, or ``key_frames_with_captions`` (on-screen text is wanted
    from captioned videos too). Changing either re-runs ``media`` only for the videos whose
    answer changes."""

    caption_languages: list[str] = Field(default_factory=lambda: ["en"])
    always_download: bool = False
    key_frames_with_captions: bool = False
    # Defaults are MediaLimits' and FrameSettings' (media_assets/video), which this configures.
    max_media_bytes: int = MediaLimits.max_bytes
    max_duration_s: float = MediaLimits.max_duration_s
    # A media server slower than this on average is treated as stalled (a trickling body would
    # otherwise hold the step forever); and no download may take longer than the timeout.
    min_download_bytes_per_s: float = MediaLimits.min_bytes_per_s
    download_timeout_s: float = MediaLimits.download_timeout_s
    frame_interval_s: float = FrameSettings.interval_s
    scene_threshold: float = FrameSettings.scene_threshold
    max_frames: int = FrameSettings.max_frames
    segment_s: float = SEGMENT_S
    # yt-dlp extractors tried for metadata; "default" is all of them (platforms included).
    extractors: list[str] = Field(default_factory=lambda: ["default"])

    def limits(self) -> MediaLimits:
        return MediaLimits(
            self.max_media_bytes,
            self.max_duration_s,
            self.min_download_bytes_per_s,
            self.download_timeout_s,
        )

    def frames(self) -> FrameSettings:
        return FrameSettings(self.frame_interval_s, self.scene_threshold, self.max_frames)
