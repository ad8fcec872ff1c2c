"""Dagster resources, each an embedded default behind an interface a production backend shares.

``build_resources`` reads the environment once, so switching a backend is configuration only:

- ``MEDIA_ASSETS_DATA``: folder for artifacts and the index (default ``./data``)
- ``MEDIA_ASSETS_S3_BUCKET``: keep artifacts in this S3 bucket instead (created when missing),
  under ``MEDIA_ASSETS_S3_PREFIX`` (default ``media-assets``), at ``MEDIA_ASSETS_S3_ENDPOINT``
  (any S3-compatible server; AWS when unset); credentials from the usual ``AWS_*`` variables
- ``MEDIA_ASSETS_INDEX_URI``: where the LanceDB index lives (default ``<data>/index``; an
  ``s3://bucket/prefix`` puts it on the same S3 endpoint)
- the moments index (one row per second of video) is the ``moments`` table beside the chunks
  there, or the ``Moments`` collection on the same Weaviate server
- ``MEDIA_ASSETS_MANIFEST``: manifest the sensor watches (JSON Lines or CSV)
- ``MEDIA_ASSETS_ALLOW_HOSTS``: comma-separated hosts/networks allowed despite being private
- ``MEDIA_ASSETS_CHROMIUM``: Chromium executable (default ``/usr/bin/chromium``)
- ``MEDIA_ASSETS_BATCH_SIZE``: partitions per sensor-launched run (default 50)
- ``MEDIA_ASSETS_PAGE_LINES``: manifest lines the sensor reads per tick (default 10000)
- ``MEDIA_ASSETS_RUN_URLS_PER_TICK``: URLs whose runs one sensor tick requests; the others
  wait for the next ticks (default 500)
- ``MEDIA_ASSETS_TICK_TARGET_S``: seconds a sensor tick aims at; an evaluation that took over a
  quarter of it leaves the runs the share it left (default 10)
- ``MEDIA_ASSETS_RENDER_CONCURRENCY``: pages rendered at once per step (default 4)
- ``MEDIA_ASSETS_EMBED_PRECISION``: ``float32`` (default) or ``int8``: MiniLM's dense layers in
  int8, ~1.8x faster on a CPU, slightly lower retrieval (resources/embedder.py)
- ``MEDIA_ASSETS_VIDEO_ALWAYS_DOWNLOAD``: ``true`` downloads media even when captions exist
- ``MEDIA_ASSETS_VIDEO_KEY_FRAMES_WITH_CAPTIONS``: ``true`` downloads captioned videos too, for
  their on-screen text (the speech still comes from the captions)
- ``MEDIA_ASSETS_VIDEO_MAX_BYTES`` (default 2 GB), ``MEDIA_ASSETS_VIDEO_MIN_RATE`` (bytes/s a
  download must keep up on average, default 16384), ``MEDIA_ASSETS_VIDEO_DOWNLOAD_TIMEOUT_S``
  (default 3600): the media download's caps, enforced as the bytes arrive
- ``MEDIA_ASSETS_MAX_PAGE_BYTES`` (default 10 MB) and ``MEDIA_ASSETS_NAVIGATION_TIMEOUT_S``
  (default 20): a page's cap and its navigation limit
- ``MEDIA_ASSETS_BLOCK_TRACKERS`` (default ``1``; ``0`` turns it off): known ad and tracker hosts
  are never requested, per EasyList/EasyPrivacy from Debian's ``webext-ublock-origin-chromium``,
  or the comma-separated Adblock Plus-format files in ``MEDIA_ASSETS_BLOCKLISTS``
- ``MEDIA_ASSETS_VIDEO_EXTRACTORS``: yt-dlp extractors to try (default all)
- ``MEDIA_ASSETS_WHISPER_DIR``: a CTranslate2 Whisper model folder (default tiny.en, shipped)
- ``MEDIA_ASSETS_OCR_LANGUAGE``: Tesseract language(s) for on-screen text (default ``eng``)
- ``MEDIA_ASSETS_PII``: personal-data gate at the chunk stage: ``off`` (default), ``flag``,
  ``redact`` or ``drop`` (media_assets/pii.py)

Production backends (each selected by one variable; see the README's Production section):

- ``MEDIA_ASSETS_INDEX_BACKEND=weaviate`` with ``WEAVIATE_URL`` (``WEAVIATE_API_KEY``)
- ``MEDIA_ASSETS_EMBEDDER=cohere`` and ``MEDIA_ASSETS_VISION=cohere`` with ``COHERE_API_KEY``
  (``COHERE_BASE_URL`` for a proxy or a compatible server)
- ``MEDIA_ASSETS_SPEECH=whisperx`` (``MEDIA_ASSETS_WHISPER_DIR``, ``MEDIA_ASSETS_ALIGN_DIR``) and
  ``MEDIA_ASSETS_DIARIZER=pyannote`` (``MEDIA_ASSETS_PYANNOTE_DIR``), on ``MEDIA_ASSETS_DEVICE``

Where steps run is not a resource: ``MEDIA_ASSETS_EXECUTOR`` (``in_process``, ``multiprocess``,
``celery`` with ``MEDIA_ASSETS_CELERY_BROKER``, ``k8s``) is read by media_assets/executors.py.
What the entry points need besides resources (log level and format, the sensors' interval, the
GPU image on Kubernetes) is read by ``run_settings``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resources.embedder import Embedder
    from resources.enrichment import TextEnrichment
    from resources.fetch import BrowserResource, FetchPolicy, ManifestSource
    from resources.index import LanceDBIndex, VectorIndex
    from resources.moments_index import MomentsIndex
    from resources.speech import Diarizer, SpeechToText, Vision
    from resources.storage import ObjectStore
    from resources.video import VideoPolicy

# Each resource class is imported by the function that builds it, and the names below on first
# use: importing one resource module (``resources.storage``, ``run_settings``) must not load the
# others' modules and, through them, the stage code and libraries they drive.
_EXPORTS = {
    "BrowserResource": "resources.fetch",
    "Diarizer": "resources.speech",
    "Embedder": "resources.embedder",
    "FetchPolicy": "resources.fetch",
    "LanceDBIndex": "resources.index",
    "ManifestSource": "resources.fetch",
    "MomentsIndex": "resources.moments_index",
    "ObjectStore": "resources.storage",
    "SpeechToText": "resources.speech",
    "TextEnrichment": "resources.enrichment",
    "VectorIndex": "resources.index",
    "VideoPolicy": "resources.video",
    "Vision": "resources.speech",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _given(env: Mapping[str, str], **fields: tuple[str, Callable[[str], Any]]) -> dict[str, Any]:
    """``{field: parse(env[variable])}`` for each ``field=(variable, parse)`` whose variable is
    set: a field left out keeps its default, defined once on the resource (or the plain settings
    it configures), not again here."""
    return {name: parse(env[var]) for name, (var, parse) in fields.items() if env.get(var)}


def object_store_from(env: Mapping[str, str], data: Path) -> ObjectStore:
    bucket = env.get("MEDIA_ASSETS_S3_BUCKET")
    if not bucket:
        from resources.storage import LocalObjectStore

        return LocalObjectStore(root=str(data / "artifacts"))
    from dagster_aws.s3 import S3Resource

    from resources.s3_store import S3ObjectStore

    return S3ObjectStore(
        s3=S3Resource(
            endpoint_url=env.get("MEDIA_ASSETS_S3_ENDPOINT") or None,
            region_name=env.get("AWS_REGION", "us-east-1"),
        ),
        bucket=bucket,
        prefix=env.get("MEDIA_ASSETS_S3_PREFIX", "media-assets"),
    )


def index_from(env: Mapping[str, str], data: Path) -> VectorIndex:
    if env.get("MEDIA_ASSETS_INDEX_BACKEND", "lancedb") == "weaviate":
        from resources.weaviate_index import WeaviateIndex

        return WeaviateIndex(
            url=_required(env, "WEAVIATE_URL", "the Weaviate backend"),
            grpc_port=int(env.get("WEAVIATE_GRPC_PORT", "50051")),
        )
    uri = env.get("MEDIA_ASSETS_INDEX_URI") or str(data / "index")
    options: dict[str, str] = {}
    if uri.startswith("s3://"):
        endpoint = env.get("MEDIA_ASSETS_S3_ENDPOINT")
        options["region"] = env.get("AWS_REGION", "us-east-1")
        if endpoint:
            options["endpoint"] = endpoint
            options["allow_http"] = str(endpoint.startswith("http://")).lower()
    from resources.index import LanceDBIndex

    return LanceDBIndex(uri=uri, storage_options=options)


def moments_index_from(env: Mapping[str, str], data: Path) -> MomentsIndex:
    """The moments index beside the chunk index: the same backend, in the same place."""
    from resources.index import LanceDBIndex
    from resources.moments_index import LanceDBMomentsIndex, WeaviateMomentsIndex

    chunks = index_from(env, data)
    if isinstance(chunks, LanceDBIndex):
        return LanceDBMomentsIndex(uri=chunks.uri, storage_options=chunks.storage_options)

    return WeaviateMomentsIndex(url=chunks.url, grpc_port=chunks.grpc_port)  # type: ignore[attr-defined]


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        raise ValueError(f"{what} needs {name} in the environment")
    return value


def embedder_from(env: Mapping[str, str]) -> Embedder:
    if env.get("MEDIA_ASSETS_EMBEDDER", "minilm") == "cohere":
        from resources.cohere_backends import CohereEmbedder

        return CohereEmbedder(
            model=env.get("MEDIA_ASSETS_COHERE_EMBED_MODEL", "embed-english-v3.0"),
            output_dimension=int(env.get("MEDIA_ASSETS_COHERE_EMBED_DIM", "1024")),
            base_url=env.get("COHERE_BASE_URL") or None,
        )
    from resources.embedder import SentenceTransformerEmbedder

    precision = env.get("MEDIA_ASSETS_EMBED_PRECISION")
    return SentenceTransformerEmbedder(**({"precision": precision} if precision else {}))


def speech_from(env: Mapping[str, str]) -> SpeechToText:
    if env.get("MEDIA_ASSETS_SPEECH", "faster-whisper") == "whisperx":
        from resources.gpu_engines import WhisperXSpeech

        return WhisperXSpeech(
            model_dir=_required(env, "MEDIA_ASSETS_WHISPER_DIR", "the whisperx engine"),
            align_model_dir=env.get("MEDIA_ASSETS_ALIGN_DIR") or None,
            device=env.get("MEDIA_ASSETS_DEVICE", "cuda"),
        )
    from resources.speech import FasterWhisperSpeech

    return FasterWhisperSpeech(model_dir=env.get("MEDIA_ASSETS_WHISPER_DIR") or None)


def diarizer_from(env: Mapping[str, str]) -> Diarizer:
    if env.get("MEDIA_ASSETS_DIARIZER", "resemblyzer") == "pyannote":
        from resources.gpu_engines import PyannoteDiarizer

        return PyannoteDiarizer(
            pipeline_dir=_required(env, "MEDIA_ASSETS_PYANNOTE_DIR", "the pyannote engine"),
            device=env.get("MEDIA_ASSETS_DEVICE", "cuda"),
        )
    from resources.speech import ResemblyzerDiarizer

    return ResemblyzerDiarizer()


def vision_from(env: Mapping[str, str]) -> Vision:
    if env.get("MEDIA_ASSETS_VISION", "tesseract") == "cohere":
        from resources.cohere_backends import CohereVision

        return CohereVision(
            model=env.get("MEDIA_ASSETS_COHERE_VISION_MODEL", "command-a-vision-07-2025"),
            base_url=env.get("COHERE_BASE_URL") or None,
        )
    from resources.speech import TesseractVision

    return TesseractVision(language=env.get("MEDIA_ASSETS_OCR_LANGUAGE", "eng"))


def build_resources(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    from media_assets.pii import PII_ENV, parse_policy
    from resources.enrichment import TextEnrichment
    from resources.fetch import BrowserResource, FetchPolicy, ManifestSource
    from resources.io_manager import ArtifactIOManager
    from resources.video import VideoPolicy

    env = os.environ if env is None else env
    data = Path(env.get("MEDIA_ASSETS_DATA", "data")).absolute()
    store = object_store_from(env, data)
    return {
        "io_manager": ArtifactIOManager(store=store),
        "object_store": store,
        "browser": BrowserResource(
            **_given(
                env,
                executable_path=("MEDIA_ASSETS_CHROMIUM", str),
                concurrency=("MEDIA_ASSETS_RENDER_CONCURRENCY", int),
                navigation_timeout_s=("MEDIA_ASSETS_NAVIGATION_TIMEOUT_S", float),
            )
        ),
        "fetch_policy": FetchPolicy(
            allow_hosts=_list(env.get("MEDIA_ASSETS_ALLOW_HOSTS")),
            **_given(env, max_page_bytes=("MEDIA_ASSETS_MAX_PAGE_BYTES", int)),
            block_trackers=env.get("MEDIA_ASSETS_BLOCK_TRACKERS", "1") not in ("0", "false"),
            blocklists=_list(env.get("MEDIA_ASSETS_BLOCKLISTS")),
        ),
        "embedder": embedder_from(env),
        "vector_index": index_from(env, data),
        "moments_index": moments_index_from(env, data),
        "video_policy": VideoPolicy(
            always_download=env.get("MEDIA_ASSETS_VIDEO_ALWAYS_DOWNLOAD", "") == "true",
            key_frames_with_captions=env.get("MEDIA_ASSETS_VIDEO_KEY_FRAMES_WITH_CAPTIONS", "")
            == "true",
            extractors=_list(env.get("MEDIA_ASSETS_VIDEO_EXTRACTORS")) or ["default"],
            **_given(
                env,
                max_media_bytes=("MEDIA_ASSETS_VIDEO_MAX_BYTES", int),
                min_download_bytes_per_s=("MEDIA_ASSETS_VIDEO_MIN_RATE", float),
                download_timeout_s=("MEDIA_ASSETS_VIDEO_DOWNLOAD_TIMEOUT_S", float),
            ),
        ),
        "speech": speech_from(env),
        "diarizer": diarizer_from(env),
        "vision": vision_from(env),
        # An unknown policy fails here, naming MEDIA_ASSETS_PII, before any run starts.
        "text_enrichment": TextEnrichment(pii=parse_policy(env.get(PII_ENV))),
        "manifest": ManifestSource(
            **_given(
                env,
                path=("MEDIA_ASSETS_MANIFEST", str),
                batch_size=("MEDIA_ASSETS_BATCH_SIZE", int),
                page_lines=("MEDIA_ASSETS_PAGE_LINES", int),
                run_urls_per_tick=("MEDIA_ASSETS_RUN_URLS_PER_TICK", int),
                tick_target_s=("MEDIA_ASSETS_TICK_TARGET_S", float),
            ),
        ),
    }


@dataclass(frozen=True)
class RunSettings:
    """What the entry points read of the environment besides the resources: ingest's log level
    and format, the sensors' interval, the GPU steps' image on Kubernetes."""

    # Short terminal lines (media_assets/logs.py) at INFO: progress, not every engine event.
    log_level: str = "INFO"
    # ``terminal``: one short line per event for a person; ``json``: lines for a log collector.
    log_format: str = "terminal"
    sensor_interval_s: int = 30
    gpu_image: str | None = None  # the image with whisperx and pyannote


def run_settings(env: Mapping[str, str] | None = None) -> RunSettings:
    """``MEDIA_ASSETS_LOG_LEVEL``, ``MEDIA_ASSETS_LOG_FORMAT`` (``json`` or the terminal's),
    ``MEDIA_ASSETS_SENSOR_INTERVAL_S`` (default 30) and ``MEDIA_ASSETS_GPU_IMAGE``."""
    env = os.environ if env is None else env
    return RunSettings(
        **_given(
            env,
            log_level=("MEDIA_ASSETS_LOG_LEVEL", str),
            log_format=("MEDIA_ASSETS_LOG_FORMAT", lambda v: "json" if v == "json" else "terminal"),
            sensor_interval_s=("MEDIA_ASSETS_SENSOR_INTERVAL_S", int),
            gpu_image=("MEDIA_ASSETS_GPU_IMAGE", str),
        )
    )


__all__ = [
    "BrowserResource",
    "Diarizer",
    "Embedder",
    "FetchPolicy",
    "LanceDBIndex",
    "ManifestSource",
    "MomentsIndex",
    "ObjectStore",
    "RunSettings",
    "SpeechToText",
    "TextEnrichment",
    "VectorIndex",
    "VideoPolicy",
    "Vision",
    "build_resources",
    "run_settings",
]
