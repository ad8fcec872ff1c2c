"""Video chunks in the common schema: consecutive time buckets of one chapter, with their
speakers and on-screen text, each linking to the moment it starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from media_assets.chunks import Chunk, assign_chunk_ids, sha256_text
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.video.timeline import Chapter, Segment, chapters_of, segments_of

# Platforms (yt-dlp extractor names) whose players read a time from the query string.
QUERY_TIME = {"youtube": "t", "twitch:vod": "t", "dailymotion": "start"}


@dataclass(frozen=True)
class VideoChunkSettings:
    # About 25 s of speech: a hit's link lands close to the words that matched.
    max_characters: int = 400
    min_characters: int = 150  # a shorter piece joins the next bucket of its chapter


def deep_link(url: str, start_s: float, extractor: str | None = None) -> str:
    """``url#t=<seconds>`` (Media Fragments), or the platform's own time parameter."""
    seconds = int(start_s)
    parts = urlsplit(url)
    param = QUERY_TIME.get((extractor or "").lower())
    if param:
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != param]
        query.append((param, f"{seconds}s" if param == "t" else str(seconds)))
        return urlunsplit(parts._replace(query=urlencode(query), fragment=""))
    return urlunsplit(parts._replace(fragment=f"t={seconds}"))


def _text(group: Sequence[Segment]) -> str:
    spoken = " ".join(s.text for s in group if s.text)
    seen = list(dict.fromkeys(t for s in group for t in s.on_screen))
    shown = [t for t in seen if t.lower() not in spoken.lower()]
    return spoken + (f"\n[on screen] {' | '.join(shown)}" if shown else "")


def chunk_video(
    segments: Sequence[Segment],
    chapters: Sequence[Chapter],
    *,
    source_key: str,
    source_url: str,
    title: str | None,
    extractor: str | None,
    settings: VideoChunkSettings | None = None,
) -> list[Chunk]:
    settings = settings or VideoChunkSettings()
    groups: list[list[Segment]] = []
    for segment in segments:
        if not (segment.text or segment.on_screen):
            continue
        current = groups[-1] if groups else None
        same_chapter = current is not None and current[-1].chapter == segment.chapter
        if same_chapter and (
            len(_text([*current, segment])) <= settings.max_characters
            or len(_text(current)) < settings.min_characters
        ):
            current.append(segment)
        else:
            groups.append([segment])
    texts = [_text(g) for g in groups]
    ids = assign_chunk_ids([f"{g[0].start_s:.1f}|{t}" for g, t in zip(groups, texts, strict=True)])
    chunks = []
    for group, text, chunk_id in zip(groups, texts, ids, strict=True):
        chapter = chapters[group[0].chapter] if chapters else None
        chunks.append(
            Chunk(
                chunk_id=chunk_id,
                source_key=source_key,
                source_url=source_url,
                kind="video",
                text=text,
                deep_link=deep_link(source_url, group[0].start_s, extractor),
                content_sha256=sha256_text(text),
                title=title,
                section=chapter.title if chapter else None,
                start_s=group[0].start_s,
                end_s=group[-1].end_s,
                speakers=list(dict.fromkeys(s for g in group for s in g.speakers)),
            )
        )
    return chunks


class VideoChunksRecord(StageRecord):
    """The ``video_chunks`` artifact (schemas/video_chunks.json): the video's chunks in the
    common chunk schema (schemas/chunk.json), with what the enrichment found over them."""

    title: str | None
    chunks: list[dict[str, Any]]
    enrichment: NotRequired[dict[str, Any]]


def video_chunks_record(key: str, source: Mapping[str, Any]) -> VideoChunksRecord:
    """The ``video_chunks`` record of partition ``key``'s metadata, chapters and segments."""
    info = source["video_info"]
    found = chunk_video(
        segments_of(source["video_segments"]),
        chapters_of(source["chapters"]),
        source_key=key,
        source_url=source["source_url"],
        title=info.get("title"),
        extractor=info.get("extractor"),
    )
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "title": info.get("title"),
        "chunks": [c.record() for c in found],
    }
