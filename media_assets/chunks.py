"""The one chunk schema shared by web pages and videos, and its stable ids."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired
from urllib.parse import quote

from media_assets.records import StageRecord

PIPELINE_VERSION = "0.1.0"
SECTION_SEPARATOR = " > "


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Chunk:
    chunk_id: str
    source_key: str
    source_url: str
    kind: Literal["web", "video"]
    text: str
    deep_link: str
    # Hash of what the embedder reads (``embedding_text``): a vector is reused while it is equal.
    content_sha256: str
    title: str | None = None
    section: str | None = None  # heading path, "A > B"
    start_s: float | None = None
    end_s: float | None = None
    speakers: list[str] = field(default_factory=list)
    table_html: str | None = None
    page_number: int | None = None  # a PDF's page; its deep link is ``url#page=N``
    pipeline_version: str = PIPELINE_VERSION

    def record(self) -> dict[str, object]:
        return asdict(self)


def embedding_text(chunk: Mapping[str, Any]) -> str:
    """What the embedder reads for a chunk record: its title and heading path (or chapter) on a
    line before its text. A passage seldom names what it is about ("the law", "he"); with them,
    its vector carries the page's subject too (bench/retrieval_eval.py, dev queries: MRR@10 of
    vector search 0.813 -> 0.832, of hybrid search 0.872 -> 0.889)."""
    context = SECTION_SEPARATOR.join(p for p in (chunk.get("title"), chunk.get("section")) if p)
    return f"{context}\n\n{chunk['text']}" if context else str(chunk["text"])


def assign_chunk_ids(anchors: list[str]) -> list[str]:
    """Content-derived ids: unchanged chunks keep their id when the rest of the page changes.

    ``anchors`` are strings that identify each chunk (section and text); repeats get a suffix in
    order of appearance so ids stay unique within a source.
    """
    seen: Counter[str] = Counter()
    ids = []
    for anchor in anchors:
        base = sha256_text(anchor)[:16]
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def text_fragment(url: str, text: str, words: int = 8) -> str:
    """A ``#:~:text=`` link that scrolls to and highlights the start of ``text``."""
    snippet = " ".join(text.split()[:words])
    # Text fragments reserve '-', '&' and ',' as syntax; quote() leaves '-' alone.
    encoded = quote(snippet, safe="").replace("-", "%2D")
    return f"{url.split('#')[0]}#:~:text={encoded}"


class EmbeddingsRecord(StageRecord):
    """A source's record in the embeddings stage (web or video): which model embedded its
    chunks, how many went to the model and how many kept the vector of an unchanged text. The
    vectors (with each chunk's content class) are the ``vectors`` table, stored as a Parquet
    sidecar; ``topics`` counts the classes."""

    model: str
    chunks: int
    embedded: int
    vectors_reused: int
    vectors: NotRequired[Any]  # a pandas DataFrame: chunk_id, content_sha256, vector, topic…
    topics: NotRequired[dict[str, int]]


class IndexRowsRecord(StageRecord):
    """A source's record in the index stage: how many rows it has there, from which model, the
    ids of its chunks, and its content classes counted."""

    rows: int
    model: str
    chunk_ids: list[str]
    topics: dict[str, int]
