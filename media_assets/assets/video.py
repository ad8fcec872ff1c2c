"""Videos: captions first; only without them pay for the download, speech, speakers and frames.

Every stage materializes for every partition; on the caption path the media stages write a
"not needed" record, so the lineage of each URL shows the path it took.
"""

import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import httpx

from media_assets import registry
from media_assets.assets.common import (
    Checkpoints,
    Record,
    batch_output,
    blob_store,
    is_ok,
    join_inputs,
    run_stage,
    text_preview,
    timed,
    url_asset,
)
from media_assets.assets.tail import enriched, enriched_preview
from media_assets.chunks import sha256_text
from media_assets.egress import EGRESS_HEADER, Limits, egress_session, raise_for_refusal
from media_assets.names import Status
from media_assets.retry import with_retries
from media_assets.video import media as media_files
from media_assets.video.captions import CaptionTrack, Cue, parse_captions, pick_track
from media_assets.video.chunk import chunk_video
from media_assets.video.frames import TextSpan, extract_key_frames, merge_spans
from media_assets.video.info import VideoInfo, extract_infos
from media_assets.video.media import MediaError
from media_assets.video.speakers import Turn, assign_speakers, turns_from_words
from media_assets.video.speech import Transcript, Word, from_cues
from media_assets.video.timeline import (
    Chapter,
    Segment,
    build_segments,
    detect_chapters,
    platform_chapters,
)
from media_assets.web.safety import AddressPolicy, BlockedURLError, DNSLookupError
from partitions import videos
from resources.embedder import Embedder
from resources.enrichment import TextEnrichment
from resources.fetch import FetchPolicy
from resources.io_manager import ArtifactStore
from resources.speech import Diarizer, SpeechToText, Vision
from resources.storage import ObjectStore
from resources.video import VideoPolicy

CAPTIONS = "captions"
DOWNLOADED = "downloaded"
NOT_NEEDED = "not needed: captions"


def _video(**kwargs: object) -> dg.AssetsDefinition:
    return url_asset(partitions_def=videos, group_name="video", **kwargs)  # type: ignore[arg-type]


# --- video_info -------------------------------------------------------------------------------


def info_record(info: VideoInfo, allow_hosts: Sequence[str], probe_timeout_s: float = 60) -> Record:
    """The metadata record; a duration the extractor lacks comes from ffprobe (reading only the
    headers) — but only when no caption track is on offer, since on the captions path the media
    is never requested."""
    record = asdict(info)
    url = record.pop("url")
    has_tracks = bool(info.subtitles or info.automatic_captions)
    if info.status == Status.OK and info.duration_s is None and info.media_url and not has_tracks:
        duration = media_files.media_duration(info.media_url, allow_hosts, probe_timeout_s)
        if duration is not None:
            record["duration_s"], record["duration_from"] = duration, "ffprobe"
    return {**record, "source_url": url, "input_sha256": sha256_text(url)}


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
    return [info_record(info, fetch.allow_hosts, probe_timeout_s) for info in infos]


@_video(code_version="1", kinds={"yt-dlp"}, pool="web_fetch")
def video_info(
    context: dg.AssetExecutionContext,
    fetch_policy: FetchPolicy,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
) -> dg.Output:
    """yt-dlp's metadata without the media: title, uploader, duration, chapters, caption tracks.
    One ``YoutubeDL`` serves the whole batch."""
    sources, records = registry.resolve(object_store, context.partition_keys)
    checkpoints = Checkpoints(context, object_store)
    addresses = AddressPolicy(fetch_policy.allow_hosts)
    todo: dict[str, str] = {}
    for key, source in sources.items():
        if stored := checkpoints.reuse(key, sha256_text(source.url)):
            records[key] = stored
            continue
        try:
            addresses.check(source.url)
            todo[source.url] = key
        except (BlockedURLError, DNSLookupError) as exc:
            error_class = "refused" if isinstance(exc, BlockedURLError) else "dns"
            records[key] = {
                "status": Status.REFUSED if error_class == "refused" else Status.FAILED,
                "source_url": source.url,
                "error": str(exc),
                "error_class": error_class,
            }
    with timed() as clock:
        for record in video_infos(list(todo), fetch_policy, video_policy):
            records[todo[record["source_url"]]] = record
    return batch_output(
        context,
        checkpoints,
        records,
        clock["seconds"],
        lambda r: {"title": r.get("title") or "", "extractor": r.get("extractor") or ""},
    )


# --- captions ---------------------------------------------------------------------------------


MAX_CAPTION_BYTES = 5_000_000


@with_retries(max_seconds=30)
def _download_text(url: str, allow_hosts: Sequence[str], user_agent: str) -> str:
    """A caption file through the egress proxy (redirects are the proxy's to check), capped."""
    limits = Limits(max_bytes_per_connection=MAX_CAPTION_BYTES, idle_s=30, deadline_s=60)
    with egress_session(allow_hosts, limits) as egress:
        try:
            response = httpx.get(
                url,
                follow_redirects=True,
                timeout=30,
                headers={"User-Agent": user_agent},
                proxy=egress.url,
                trust_env=False,
            )
        except httpx.ProxyError as exc:
            raise_for_refusal(str(exc))
            raise
        except httpx.TransportError as exc:
            if cut := egress.first("too_large"):
                raise MediaError(f"caption track: {cut.message}", "too_large") from exc
            raise
        raise_for_refusal(response.reason_phrase, response.headers.get(EGRESS_HEADER))
    response.raise_for_status()
    return response.text


def captions_record(info: Record, languages: list[str], fetch: FetchPolicy) -> Record:
    track: CaptionTrack | None = pick_track(info, languages)
    base = {"status": Status.OK, "source_url": info["source_url"]}
    if track is None:
        return {**base, "path": "no captions", "track": None, "cues": []}
    text = _download_text(track.url, fetch.allow_hosts, fetch.user_agent)
    cues = parse_captions(text, track.ext)
    return {
        **base,
        "path": CAPTIONS if cues else "empty captions",
        "track": asdict(track),
        "cues": [asdict(c) for c in cues],
    }


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
        lambda _, info: captions_record(info, languages, fetch_policy),
        upstream="video_info",
        settings={"languages": languages},
        preview=lambda r: {"path": r["path"], "cues": len(r["cues"])},
    )


# --- media ------------------------------------------------------------------------------------


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


def media_record(
    key: str, source: Record, policy: VideoPolicy, allow_hosts: Sequence[str], blobs: ArtifactStore
) -> Record:
    """Download, check, normalise; the files go to object storage beside the record."""
    url = source["video_info"]["media_url"] or source["source_url"]
    with tempfile.TemporaryDirectory(prefix="media-") as tmp:
        folder = Path(tmp)
        original = media_files.download(url, folder, policy.limits(), allow_hosts)
        probe = media_files.probe(original, policy.limits())
        record: Record = {
            "status": Status.OK,
            "source_url": source["source_url"],
            "path": DOWNLOADED,
            "bytes": original.stat().st_size,
            "sha256": media_files.sha256_file(original),
            "duration_s": probe.duration_s,
            "probe": asdict(probe),
            "tags": media_files.container_tags(original),
            "files": {"original": blobs.blob_key(key, f"original{original.suffix}")},
        }
        if probe.has_audio:
            audio = media_files.normalize_audio(original, folder, policy.limits().tool_timeout_s)
            record["loudness"] = audio.measured
            record["files"]["audio_48k"] = blobs.blob_key(key, "audio_48k.wav")
            record["files"]["audio_16k"] = blobs.blob_key(key, "audio_16k.wav")
            blobs.store.put_file(record["files"]["audio_48k"], audio.path_48k)
            blobs.store.put_file(record["files"]["audio_16k"], audio.path_16k)
        blobs.store.put_file(record["files"]["original"], original)
    return record


def media_stage(
    key: str, source: Record, policy: VideoPolicy, allow_hosts: Sequence[str], blobs: ArtifactStore
) -> Record:
    """The media record, with the best duration known: ffprobe's, else the platform's, else the
    end of the last cue (the caption path never touches the media, not even its headers)."""
    if source["download"]:
        return media_record(key, source, policy, allow_hosts, blobs)
    cues = source["captions"].get("cues") or []
    duration = source["video_info"].get("duration_s") or (cues[-1]["end_s"] if cues else 0.0)
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "path": NOT_NEEDED,
        "duration_s": float(duration),
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
    policy, blobs = video_policy, blob_store(context, object_store)
    return run_stage(
        context,
        object_store,
        _with_download_decision(join_inputs(video_info=video_info, captions=captions), policy),
        lambda key, source: media_stage(key, source, policy, fetch_policy.allow_hosts, blobs),
        settings={"limits": asdict(policy.limits())},
        preview=lambda r: {
            "path": r["path"],
            "bytes": r.get("bytes", 0),
            "duration_s": r["duration_s"],
        },
        totals=lambda records: {
            "bytes_downloaded": sum(int(r.get("bytes", 0)) for r in records.values())
        },
    )


def local_file(store: ObjectStore, key: str, folder: Path) -> Path:
    return store.get_file(key, folder / Path(key).name)


# --- transcript and speakers ------------------------------------------------------------------


def transcript_record(source: Record, speech: SpeechToText, store: ObjectStore) -> Record:
    caps, media_rec = source["captions"], source["media"]
    if caps.get("cues"):
        cues = [Cue(**c) for c in caps["cues"]]
        language = (caps.get("track") or {}).get("language")
        transcript = from_cues(cues, language)
    elif "audio_16k" in media_rec.get("files", {}):
        with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
            audio = local_file(store, media_rec["files"]["audio_16k"], Path(tmp))
            transcript = speech.transcribe(audio)
    else:
        transcript = Transcript(source="no audio", language=None)
    return {"status": Status.OK, "source_url": source["source_url"], **transcript.record()}


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
    return run_stage(
        context,
        object_store,
        join_inputs(captions=captions, media=media),
        lambda _, source: transcript_record(source, speech, object_store),
        settings={"engine": speech.engine_id},
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


def speaker_record(source: Record, diarizer: Diarizer, store: ObjectStore) -> Record:
    text, media_rec = source["transcript"], source["media"]
    words = [Word(**w) for w in text["words"]]
    if text["source"] == "captions" or "audio_16k" not in media_rec.get("files", {}):
        turns, engine = turns_from_words(words), "caption voice tags"
    else:
        with tempfile.TemporaryDirectory(prefix="speakers-") as tmp:
            audio = local_file(store, media_rec["files"]["audio_16k"], Path(tmp))
            turns, engine = diarizer.diarize(audio), diarizer.engine_id
        words = assign_speakers(words, turns)
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "engine": engine,
        "speakers": sorted({t.speaker for t in turns}),
        "turns": [t.record() for t in turns],
        "words": [asdict(w) for w in words],
    }


@_video(code_version="1", kinds={"pytorch", "onnx"}, pool="speech")
def speaker_turns(
    context: dg.AssetExecutionContext,
    diarizer: Diarizer,
    object_store: ObjectStore,
    transcript: dict[str, Record],
    media: dict[str, Record],
) -> dg.Output:
    """Who spoke when, and each word with its speaker (caption voice tags on the caption path)."""
    return run_stage(
        context,
        object_store,
        join_inputs(transcript=transcript, media=media),
        lambda _, source: speaker_record(source, diarizer, object_store),
        settings={"engine": diarizer.engine_id},
        preview=lambda r: {"speakers": ", ".join(r["speakers"]), "turns": len(r["turns"])},
    )


# --- frames -----------------------------------------------------------------------------------


def frames_record(key: str, media_rec: Record, policy: VideoPolicy, blobs: ArtifactStore) -> Record:
    base = {
        "status": Status.OK,
        "source_url": media_rec["source_url"],
        "duration_s": media_rec["duration_s"],
        "frames": [],
    }
    if media_rec["path"] != DOWNLOADED or not media_rec["probe"].get("video_codec"):
        reason = NOT_NEEDED if media_rec["path"] != DOWNLOADED else "no video stream"
        return {**base, "path": reason}
    with tempfile.TemporaryDirectory(prefix="frames-") as tmp:
        video = local_file(blobs.store, media_rec["files"]["original"], Path(tmp))
        frames = extract_key_frames(
            video, Path(tmp, "frames"), media_rec["duration_s"], policy.frames()
        )
        records = []
        for frame in frames:
            blob = blobs.blob_key(key, frame.path.name)
            blobs.store.put_file(blob, frame.path)
            records.append(frame.record(blob))
    return {**base, "path": "sampled", "frames": records}


@_video(code_version="2", kinds={"ffmpeg"})
def key_frames(
    context: dg.AssetExecutionContext,
    video_policy: VideoPolicy,
    object_store: ObjectStore,
    media: dict[str, Record],
) -> dg.Output:
    """JPEG frames at scene cuts and by the clock, near-duplicates dropped, capped in number;
    skipped on the caption path unless configuration asks for them."""
    blobs = blob_store(context, object_store)
    return run_stage(
        context,
        object_store,
        media,
        lambda key, m: frames_record(key, m, video_policy, blobs),
        upstream="media",
        settings={"frames": asdict(video_policy.frames())},
        preview=lambda r: {"path": r["path"], "frames": len(r["frames"])},
    )


def frame_text_record(frames: Record, vision: Vision, store: ObjectStore) -> Record:
    readings: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        for frame in frames["frames"]:
            image = local_file(store, frame["key"], Path(tmp))
            readings.append((frame["time_s"], vision.read(image)))
    spans = merge_spans(readings, frames["duration_s"])
    return {
        "status": Status.OK,
        "source_url": frames["source_url"],
        "engine": vision.engine_id,
        "readings": [{"time_s": t, "text": text} for t, text in readings],
        "spans": [asdict(s) for s in spans],
    }


@_video(code_version="2", kinds={"tesseract"}, pool="vision")
def frame_text(
    context: dg.AssetExecutionContext,
    vision: Vision,
    object_store: ObjectStore,
    key_frames: dict[str, Record],
) -> dg.Output:
    """Text on the key frames; the same text on consecutive frames is one span."""
    return run_stage(
        context,
        object_store,
        key_frames,
        lambda _, frames: frame_text_record(frames, vision, object_store),
        upstream="key_frames",
        settings={"engine": vision.engine_id},
        preview=lambda r: {
            "spans": len(r["spans"]),
            "first": r["spans"][0]["text"] if r["spans"] else "",
        },
    )


# --- timeline and chunks ----------------------------------------------------------------------


def _spans(source: Record) -> list[TextSpan]:
    return [TextSpan(**s) for s in source["frame_text"]["spans"]]


def _scene_cuts(source: Record) -> list[float]:
    return [f["time_s"] for f in source["key_frames"]["frames"] if f["scene_cut"]]


def chapters_record(source: Record, embedder: Embedder) -> Record:
    duration = source["media"]["duration_s"]
    raw = source["video_info"].get("chapters") or []
    if raw:
        found = platform_chapters(raw, duration)
    else:
        found = detect_chapters(
            duration,
            [Word(**w) for w in source["speaker_turns"]["words"]],
            [Turn(**t) for t in source["speaker_turns"]["turns"]],
            _scene_cuts(source),
            _spans(source),
            embed=embedder.embed_documents,
        )
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "duration_s": duration,
        "chapters": [c.record() for c in found],
    }


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
        lambda _, source: chapters_record(source, embedder),
        settings={"embedding_model": embedder.model_id},
        preview=lambda r: {"chapters": " | ".join(c["title"] for c in r["chapters"])[:400]},
    )


def segments_record(source: Record, bucket_s: float) -> Record:
    duration = source["chapters"]["duration_s"]
    segments = build_segments(
        duration,
        [Word(**w) for w in source["speaker_turns"]["words"]],
        _spans(source),
        _scene_cuts(source),
        [Chapter(**c) for c in source["chapters"]["chapters"]],
        bucket_s,
    )
    return {
        "status": Status.OK,
        "source_url": source["source_url"],
        "segments": [s.record() for s in segments],
    }


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


def video_chunks_record(key: str, source: Record) -> Record:
    info = source["video_info"]
    found = chunk_video(
        [Segment(**s) for s in source["video_segments"]["segments"]],
        [Chapter(**c) for c in source["chapters"]["chapters"]],
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
