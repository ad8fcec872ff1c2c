"""The embedded default runs all-MiniLM-L6-v2 through ONNX Runtime: its vectors must be the
sentence-transformers library's, for short, padded and truncated texts alike."""

from pathlib import Path

import numpy as np
import pytest

from resources.embedder import SentenceTransformerEmbedder, default_model_path


def test_onnx_vectors_match_sentence_transformers(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [
        "bees",
        "How much honey does a colony need to survive the winter?",
        "A lantern with a red night mode. " * 40,  # past the 256-token limit: truncated
        "Tables: | size | price |\n| 10 | 4.50 |",
        "",
    ]
    # batches of 3 put a one-word text beside the truncated one: padding must be masked
    embedder = SentenceTransformerEmbedder(cache_dir=str(tmp_path), batch_size=3)
    ours = embedder.embed_documents(texts)
    reference = SentenceTransformer(default_model_path(), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    assert ours.shape == (5, 384) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-4
    assert list(tmp_path.glob("*/model.onnx")), "the export is cached for the next process"


def test_query_and_document_vectors_agree_and_are_unit_length() -> None:
    embedder = SentenceTransformerEmbedder()
    query = embedder.embed_query("winter honey stores")
    docs = embedder.embed_documents(["winter honey stores", "a red bicycle lamp"])
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(query, docs[0], atol=1e-6)
    assert docs[0] @ query > docs[1] @ query
    assert embedder.embed_documents([]).shape == (0, 384)


def test_an_unwritable_cache_is_named_with_what_to_do(tmp_path: Path) -> None:
    cache = tmp_path / "read-only"
    cache.write_text("a file where the cache folder should be")
    with pytest.raises(RuntimeError, match="MEDIA_ASSETS_MODEL_CACHE"):
        SentenceTransformerEmbedder(cache_dir=str(cache)).embed_query("bees")


def test_int8_vectors_stay_near_float32_and_carry_their_own_model_id(tmp_path: Path) -> None:
    texts = [
        "How much honey does a colony need to survive the winter?",
        "The council approved the new bridge budget after a long debate on Tuesday.",
        "A lantern with a red night mode. " * 40,
    ]
    exact = SentenceTransformerEmbedder(cache_dir=str(tmp_path))
    quick = SentenceTransformerEmbedder(cache_dir=str(tmp_path), precision="int8")
    cosines = np.sum(exact.embed_documents(texts) * quick.embed_documents(texts), axis=1)
    assert cosines.min() > 0.97, cosines
    assert cosines.max() < 1 - 1e-6, "int8 gave float32's vectors: nothing was quantized"
    assert quick.model_id != exact.model_id, "vectors of either precision must never be mixed"
    assert list(tmp_path.glob("*/model-int8-*.onnx")), "the quantized model is cached too"


def test_an_unknown_precision_is_named_with_the_setting() -> None:
    with pytest.raises(ValueError, match="MEDIA_ASSETS_EMBED_PRECISION"):
        SentenceTransformerEmbedder(precision="int4").embed_query("bees")
