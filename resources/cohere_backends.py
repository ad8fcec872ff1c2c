"""Cohere as the ``Embedder`` and the ``Vision`` backend (the v2 API through the cohere SDK).

The key comes from ``COHERE_API_KEY`` in the environment only. ``base_url`` points the client at
any server speaking Cohere's v2 wire format (the tests run one on 127.0.0.1). Throttling (429)
and server errors are retried with the project's one backoff policy; the SDK's own retries are
off so the two do not multiply.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from media_assets.retry import with_retries
from resources.embedder import Embedder
from resources.speech import Vision

EMBED_BATCH_LIMIT = 96  # texts per /v2/embed call, the API's limit
FRAME_PROMPT = (
    "This is a frame from a video. List the facts shown on screen, as plain text: slide titles, "
    "headings, numbers with their units, names, dates, labels of charts and tables, code. "
    "Copy text exactly as written. Do not describe colours, layout or people's appearance. "
    "If nothing is written or shown that carries information, answer with nothing."
)


class MissingCohereKeyError(RuntimeError):
    pass


class CohereApi(dg.ConfigurableResource):
    """The connection both Cohere backends share: endpoint, timeout, retry budget, the client."""

    base_url: str | None = None
    timeout_s: float = 60.0
    retry_seconds: float = 120.0
    _client: Any = PrivateAttr(default=None)

    def call(self, method: str, **kwargs: Any) -> Any:
        """``ClientV2.<method>(**kwargs)`` with the project's backoff on 429 and 5xx."""
        if self._client is None:
            import cohere

            key = os.environ.get("COHERE_API_KEY")
            if not key:
                raise MissingCohereKeyError(
                    "COHERE_API_KEY is not set: export it (secrets come from the environment "
                    "only) or choose the embedded backends"
                )
            self._client = cohere.ClientV2(
                api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
            )
        return with_retries(self.retry_seconds)(getattr(self._client, method))(**kwargs)


class CohereEmbedder(Embedder, CohereApi):
    """Cohere embeddings: ``search_document`` for chunks, ``search_query`` for queries."""

    kind: ClassVar[str] = "cohere"
    model: str = "embed-english-v3.0"
    output_dimension: int = 1024

    @property
    def model_id(self) -> str:
        return f"cohere:{self.model}:{self.output_dimension}"

    @property
    def dimension(self) -> int:
        return self.output_dimension

    def _embed(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH_LIMIT):
            response = self.call(
                "embed",
                model=self.model,
                input_type=input_type,
                texts=list(texts[start : start + EMBED_BATCH_LIMIT]),
                embedding_types=["float"],
            )
            rows.extend(response.embeddings.float_)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        if len(rows) != len(texts) or vectors.shape[1] != self.output_dimension:
            raise ValueError(
                f"{self.model} returned {vectors.shape[0]} vectors of {vectors.shape[1]} "
                f"dimensions for {len(texts)} texts; the index expects {self.output_dimension}"
            )
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.output_dimension), dtype=np.float32)
        return self._embed(texts, "search_document")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "search_query")[0]


class CohereVision(Vision, CohereApi):
    """Facts on a key frame (slide titles, numbers, names) from a Cohere vision model."""

    model: str = "command-a-vision-07-2025"
    max_tokens: int = 300

    @property
    def engine_id(self) -> str:
        return f"cohere:{self.model}"

    def read(self, image: Path) -> str:
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        response = self.call(
            "chat",
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=0.0,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": FRAME_PROMPT},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{data}"},
                        },
                    ],
                }
            ],
        )
        parts = response.message.content or []
        return " ".join(" ".join(p.text for p in parts if getattr(p, "text", None)).split())
