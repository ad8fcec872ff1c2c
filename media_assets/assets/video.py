"""Videos: captions first; only without them pay for the download, speech, speakers and frames.

Every stage materializes for every partition; on the caption path the media stages write a
"not needed" record, so the lineage of each URL shows the path it took. Each record is made by
its stage module (``media_assets/video/``); these assets hand it their resources and inputs.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import dagster as dg

from media_assets.assets.common import (
    Checkpoints,
    Record,
    StageEvents,
    blob_store,
    is_ok,
    join_inputs,
    run_stage,
    source_stage,
    text_preview,
    url_asset,
)
from media_assets.assets.tail import enriched, enriched_preview
from media_assets.egress import Limits, egress_session
from media_assets.video.captions import captions_record
from media_assets.video.chunk import video_chunks_record
from media_assets.video.frames import frame_text_record, key_frames_record
from media_assets.video.info import extract_infos, info_record, refused_record
from media_assets.video.media import media_stage_record
from media_assets.video.speakers import speaker_turns_record
from media_assets.video.speech import transcript_record
from media_assets.video.timeline import chapters_record, segments_record
from media_assets.web.safety import AddressPolicy, BlockedURLError, DNSLookupError
from partitions import videos
from resources.embedder import Embedder
from resources.enrichment import TextEnrichment
from resources.fetch import FetchPolicy, ManifestSource
from resources.speech import Diarizer, SpeechToText, Vision
from resources.storage import ObjectStore
from resources.video import VideoPolicy


def _video(**kwargs: object) -> dg.AssetsDefinition:
    return url_asset(partitions_def=videos, group_name="video", **kwargs)  # type: ignore[arg-type]


def engine_stage(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    engine: SpeechToText | Diarizer | Vision,
    inputs: Mapping[str, Record],
    work: Callable[[Record], Mapping[str, Any]],
    *,
    upstream: str = "inputs",
    preview: Callable[[Record], dict[str, Any]],
    totals: Callable[[dict[str, Record]], dict[str, Any]] | None = None,
) -> StageEvents:
    """The body of a stage that runs a model engine on each video's files (speech, speakers,
    frame text): its records are remade when the engine changes, and only then."""
    return run_stage(
        context,
        object_store,
        inputs,
        lambda _, source: work(source),
        upstream=upstream,
        settings={"engine": engine.engine_id},
        preview=preview,
        totals=totals,
    )


# --- video_info -------------------------------------------------------------------------------


def video_infos(urls: Sequence[str], fetch: FetchPolicy, policy: VideoPolicy) -> list[Record]:
    """Metadata records for a batch: one yt-dlp for all, every request through the egress proxy
    (pages and redirects capped like web pages, each connection bounded in time)."""
    limits = Limits(
        max_bytes_per_connection=fetch.max_page_bytes,
        min_bytes_per_s=policy.min_download_bytes_per_s,
        idle_s=30,
        judge_declared_length=False,  # yt-dlp reads only the start of a direct media link
    )
    with egress_session(fetch.allow_hosts, limits) as egress:
        infos = extract_infos(urls, policy.extractors, egress)
    probe_timeout_s = min(60.0, policy.download_timeout_s)
    return [info_record(info, fetch.allow_hosts, probe_timeout_s) for info in infos]  # type: ignore[misc]


@_video(code_version="1", kinds={"yt-dlp"}, pool="web_fetch")
def video_info(
    context: dg.AssetExecutionContext,
    fetch_policy: FetchPolicy,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    manifest: ManifestSource,
) -> dg.Output:
    """yt-dlp's metadata without the media: title, uploader, duration, chapters, caption tracks.
    One ``YoutubeDL`` serves the whole batch."""
    addresses = AddressPolicy(fetch_policy.allow_hosts)

    def extract(_: Checkpoints, todo: dict[str, str]) -> dict[str, Record]:
        records: dict[str, Record] = {}
        allowed: list[str] = []
        for url, key in todo.items():
            try:
                addresses.check(url)
                allowed.append(url)
            except (BlockedURLError, DNSLookupError) as exc:
                dns = isinstance(exc, DNSLookupError)
                records[key] = refused_record(url, str(exc), dns_failure=dns)  # type: ignore[assignment]
        for record in video_infos(allowed, fetch_policy, video_policy):
            records[todo[record["source_url"]]] = record
        return records

    return source_stage(
        context,
        object_store,
        extract,
        manifest_path=manifest.path or None,
        preview=lambda r: {"title": r.get("title") or "", "extractor": r.get("extractor") or ""},
    )


# --- captions and media -----------------------------------------------------------------------


@_video(code_version="1", kinds={"webvtt", "python"})
def captions(
    context: dg.AssetExecutionContext,
    fetch_policy: FetchPolicy,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    video_info: dict[str, Record],
) -> dg.Output:
    """The platform's captions as timed cues (manual before automatic, preferred language first,
    VTT before SRT); the media file is never requested on this path."""
    languages = video_policy.caption_languages
    return run_stage(
        context,
        object_store,
        video_info,
        lambda _, info: captions_record(
            info, languages, fetch_policy.allow_hosts, fetch_policy.user_agent
        ),
        upstream="video_info",
        settings={"languages": languages},
        preview=lambda r: {"path": r["path"], "cues": len(r["cues"])},
    )


def _with_download_decision(sources: dict[str, Record], policy: VideoPolicy) -> dict[str, Record]:
    """Each video's input carries whether its media is needed, so changing the policy re-runs
    the stage only for the videos whose answer changed (the decision is part of the input hash)."""
    return {
        key: {
            **source,
            "download": not source["captions"].get("cues")
            or policy.always_download
            or policy.key_frames_with_captions,
        }
        if is_ok(source)
        else source
        for key, source in sources.items()
    }


@_video(code_version="1", kinds={"ffmpeg", "yt-dlp"}, pool="web_fetch")
def media(
    context: dg.AssetExecutionContext,
    fetch_policy: FetchPolicy,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    video_info: dict[str, Record],
    captions: dict[str, Record],
) -> dg.Output:
    """The media, only when there are no captions (or configuration says always): capped
    download, SHA-256, an ffprobe contract, two-pass EBU R128 loudness to 48 kHz PCM plus a
    16 kHz mono copy. Otherwise a "not needed: captions" record."""
    limits, blobs = video_policy.limits(), blob_store(context, object_store)
    return run_stage(
        context,
        object_store,
        _with_download_decision(
            join_inputs(video_info=video_info, captions=captions), video_policy
        ),
        lambda key, source: media_stage_record(
            source,
            limits,
            fetch_policy.allow_hosts,
            object_store,
            lambda name: blobs.blob_key(key, name),
        ),
        settings={"limits": asdict(limits)},
        preview=lambda r: {
            "path": r["path"],
            "bytes": r.get("bytes", 0),
            "duration_s": r["duration_s"],
        },
        totals=lambda records: {
            "bytes_downloaded": sum(int(r.get("bytes", 0)) for r in records.values())
        },
    )


# --- transcript, speakers, frames -------------------------------------------------------------


# ``seconds`` is how long recognition took, not what was said.
@_video(code_version="1", kinds={"whisper", "python"}, pool="speech", measurements={"seconds"})
def transcript(
    context: dg.AssetExecutionContext,
    speech: SpeechToText,
    object_store: ObjectStore,
    captions: dict[str, Record],
    media: dict[str, Record],
) -> dg.Output:
    """Words with times: from the captions, or speech recognition on the 16 kHz audio."""
    return engine_stage(
        context,
        object_store,
        speech,
        join_inputs(captions=captions, media=media),
        lambda source: transcript_record(source, speech.transcribe, object_store),
        preview=lambda r: {
            "source": r["source"],
            "words": len(r["words"]),
            "text": text_preview(r["text"]),
        },
        totals=_real_time_factor,
    )


def _real_time_factor(records: dict[str, Record]) -> dict[str, float]:
    """Seconds of recognition per second of audio heard, over the batch."""
    heard = sum(r.get("audio_s", 0) for r in records.values() if is_ok(r))
    spent = sum(r.get("seconds", 0) for r in records.values() if is_ok(r))
    return {"real_time_factor": round(spent / heard, 3) if heard else 0.0}


@_video(code_version="1", kinds={"pytorch", "onnx"}, pool="speech")
def speaker_turns(
    context: dg.AssetExecutionContext,
    diarizer: Diarizer,
    object_store: ObjectStore,
    transcript: dict[str, Record],
    media: dict[str, Record],
) -> dg.Output:
    """Who spoke when, and each word with its speaker (caption voice tags on the caption path)."""
    return engine_stage(
        context,
        object_store,
        diarizer,
        join_inputs(transcript=transcript, media=media),
        lambda source: speaker_turns_record(
            source, diarizer.diarize, diarizer.engine_id, object_store
        ),
        preview=lambda r: {"speakers": ", ".join(r["speakers"]), "turns": len(r["turns"])},
    )


@_video(code_version="2", kinds={"ffmpeg"})
def key_frames(
    context: dg.AssetExecutionContext,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    media: dict[str, Record],
) -> dg.Output:
    """JPEG frames at scene cuts and by the clock, near-duplicates dropped, capped in number;
    skipped on the caption path unless configuration asks for them."""
    settings, blobs = video_policy.frames(), blob_store(context, object_store)
    return run_stage(
        context,
        object_store,
        media,
        lambda key, m: key_frames_record(
            m, settings, object_store, lambda name: blobs.blob_key(key, name)
        ),
        upstream="media",
        settings={"frames": asdict(settings)},
        preview=lambda r: {"path": r["path"], "frames": len(r["frames"])},
    )


@_video(code_version="2", kinds={"tesseract"}, pool="vision")
def frame_text(
    context: dg.AssetExecutionContext,
    vision: Vision,
    object_store: ObjectStore,
    key_frames: dict[str, Record],
) -> dg.Output:
    """Text on the key frames; the same text on consecutive frames is one span."""
    return engine_stage(
        context,
        object_store,
        vision,
        key_frames,
        lambda frames: frame_text_record(frames, vision.read, vision.engine_id, object_store),
        upstream="key_frames",
        preview=lambda r: {
            "spans": len(r["spans"]),
            "first": r["spans"][0]["text"] if r["spans"] else "",
        },
    )


# --- timeline and chunks ----------------------------------------------------------------------


@_video(code_version="1", kinds={"python"})
def chapters(
    context: dg.AssetExecutionContext,
    embedder: Embedder,
    object_store: ObjectStore,
    video_info: dict[str, Record],
    media: dict[str, Record],
    speaker_turns: dict[str, Record],
    key_frames: dict[str, Record],
    frame_text: dict[str, Record],
) -> dg.Output:
    """The platform's chapters, else boundaries from silences, speaker changes, topic shifts and
    scene cuts; chapters cover the video without overlap."""
    return run_stage(
        context,
        object_store,
        join_inputs(
            video_info=video_info,
            media=media,
            speaker_turns=speaker_turns,
            key_frames=key_frames,
            frame_text=frame_text,
        ),
        lambda _, source: chapters_record(source, embedder.embed_documents),
        settings={"embedding_model": embedder.model_id},
        preview=lambda r: {"chapters": " | ".join(c["title"] for c in r["chapters"])[:400]},
    )


@_video(code_version="1", kinds={"python"})
def video_segments(
    context: dg.AssetExecutionContext,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    speaker_turns: dict[str, Record],
    key_frames: dict[str, Record],
    frame_text: dict[str, Record],
    chapters: dict[str, Record],
) -> dg.Output:
    """Fixed time buckets carrying the words, speakers, on-screen text, scene and chapter of
    their span: the fused record the chunks are cut from."""
    return run_stage(
        context,
        object_store,
        join_inputs(
            speaker_turns=speaker_turns,
            key_frames=key_frames,
            frame_text=frame_text,
            chapters=chapters,
        ),
        lambda _, source: segments_record(source, video_policy.segment_s),
        settings={"segment_s": video_policy.segment_s},
        preview=lambda r: {"segments": len(r["segments"])},
    )


@_video(code_version="1", kinds={"python"})
def video_chunks(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    text_enrichment: TextEnrichment,
    video_info: dict[str, Record],
    chapters: dict[str, Record],
    video_segments: dict[str, Record],
) -> dg.Output:
    """Time-coded chunks in the common schema, each linking to its moment (``#t=`` or the
    platform's own time parameter), with entities, keywords and the PII policy applied."""
    return run_stage(
        context,
        object_store,
        join_inputs(video_info=video_info, chapters=chapters, video_segments=video_segments),
        enriched(video_chunks_record, text_enrichment),
        settings=text_enrichment.settings(),
        preview=enriched_preview,
    )
