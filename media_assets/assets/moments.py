"""Moments: every model's annotations of a video fused per second (``video_moments``), and one
index row per second in the moments index (``video_moments_index``).

Both read the chain's artifacts and change nothing upstream. A stage reruns for a video only when
its input changed: a new OCR version changes ``frame_text`` for the videos it reads differently,
and only those videos' moments are fused again.
"""

from dataclasses import asdict

import dagster as dg
import numpy as np

from media_assets.assets.common import Record, join_inputs, run_stage, url_asset
from media_assets.enrich import classify, topic_vectors
from media_assets.names import Status
from media_assets.video.moments import (
    BUCKET_S,
    Engines,
    ModelId,
    Moments,
    MomentsIndexRecord,
    moment_rows,
    moments_record,
)
from partitions import videos
from resources.embedder import Embedder
from resources.enrichment import TextEnrichment
from resources.moments_index import MomentsIndex
from resources.speech import SpeechToText
from resources.storage import ObjectStore
from resources.video import VideoPolicy


@url_asset(partitions_def=videos, group_name="video", code_version="1", kinds={"python"})
def video_moments(
    context: dg.AssetExecutionContext,
    video_policy: VideoPolicy,
    speech: SpeechToText,
    embedder: Embedder,
    object_store: ObjectStore,
    text_enrichment: TextEnrichment,
    captions: dict[str, Record],
    transcript: dict[str, Record],
    speaker_turns: dict[str, Record],
    key_frames: dict[str, Record],
    frame_text: dict[str, Record],
    chapters: dict[str, Record],
) -> dg.Output:
    """Every model's output as timed annotations of one shape (words, speaker turns, on-screen
    text, scenes, key frames, chapters, and the entities and keywords said or shown, after the
    PII gate), placed in 1 s buckets (half-open): one record per (video, second) with its
    annotations nested by model."""
    engines = Engines(
        speech=speech.engine_id,
        key_frames=video_policy.frames(),
        chapter_detector=ModelId("chapter-detector", embedder.model_id),
    )
    return run_stage(
        context,
        object_store,
        join_inputs(
            captions=captions,
            transcript=transcript,
            speaker_turns=speaker_turns,
            key_frames=key_frames,
            frame_text=frame_text,
            chapters=chapters,
        ),
        lambda key, source: moments_record(key, source, engines, BUCKET_S, text_enrichment.policy),
        settings={
            "engines": asdict(engines),
            "bucket_s": BUCKET_S,
            **text_enrichment.settings(),
        },
        preview=lambda r: {
            "buckets": len(r["buckets"]),
            "annotations": ", ".join(f"{t} {n}" for t, n in sorted(r["counts"].items())),
            "models": ", ".join(f"{m} {v}" for m, v in sorted(r["models"].items())),
            **(
                {"pii_found": ", ".join(f"{t} {n}" for t, n in r["pii_found"].items()) or "none"}
                if r.get("pii_policy", "off") != "off"
                else {}
            ),
        },
    )


def index_moments(
    key: str, source: Record, embedder: Embedder, index: MomentsIndex
) -> MomentsIndexRecord:
    """One row per bucket in the moments index, upserted by (source_key, bucket); each row's
    vector is its spoken sentence's (a sentence is embedded once for all its buckets)."""
    info = source["video_info"]
    moments = Moments.from_record(source["video_moments"])
    rows = moment_rows(
        moments,
        source_url=source["source_url"],
        title=info.get("title"),
        extractor=info.get("extractor"),
    )
    sentences = sorted({row.context for row in rows})
    vectors = dict(zip(sentences, embedder.embed_documents(sentences), strict=True))
    # Each sentence's content class, from the vector just made.
    classes = classify(np.vstack([vectors[s] for s in sentences]), topic_vectors(embedder))
    topics = {s: c for s, (c, _) in zip(sentences, classes, strict=True) if s}
    write = index.replace_source(
        key,
        [
            {**row.record(), "embedding_model": embedder.model_id, "topic": topics.get(row.context)}
            for row in rows
        ],
        np.vstack([vectors[row.context] for row in rows]),
    )
    return MomentsIndexRecord(
        status=Status.OK,
        source_url=source["source_url"],
        rows=len(rows),
        sentences=len([s for s in sentences if s]),
        upserted=write.upserted,
        deleted=write.deleted,
        embedding_model=embedder.model_id,
    )


@url_asset(partitions_def=videos, group_name="video", code_version="1", kinds={"python"})
def video_moments_index(
    context: dg.AssetExecutionContext,
    embedder: Embedder,
    moments_index: MomentsIndex,
    object_store: ObjectStore,
    video_info: dict[str, Record],
    video_moments: dict[str, Record],
) -> dg.Output:
    """Each second of the video as a row of the moments index, upserted by (source_key,
    bucket): what is said there (and the sentence around it), what is on screen, who speaks.
    ``media-assets moments`` searches it."""
    return run_stage(
        context,
        object_store,
        join_inputs(video_info=video_info, video_moments=video_moments),
        lambda key, source: index_moments(key, source, embedder, moments_index),
        # Another index (or model) has none of these rows yet: write them there too.
        settings={"index": moments_index.location, "embedding_model": embedder.model_id},
        preview=lambda r: {"rows": r["rows"], "sentences": r["sentences"]},
        totals=lambda records: {
            "rows_upserted": sum(int(r.get("upserted", 0)) for r in records.values()),
            "rows_deleted": sum(int(r.get("deleted", 0)) for r in records.values()),
        },
    )
