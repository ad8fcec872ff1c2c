"""Cohere backends against a local server speaking Cohere's v2 wire format."""

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from resources.cohere_backends import (
    EMBED_BATCH_LIMIT,
    CohereEmbedder,
    CohereVision,
    MissingCohereKeyError,
)
from resources.index import LanceDBIndex
from tests.cohere_fake import FakeCohere, fake_cohere


@pytest.fixture
def cohere_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCohere]:
    monkeypatch.setenv("COHERE_API_KEY", "test-key-123")
    with fake_cohere(dimension=256) as server:
        yield server


def test_documents_are_embedded_in_batches_with_the_key_and_input_type(
    cohere_server: FakeCohere,
) -> None:
    embedder = CohereEmbedder(base_url=cohere_server.base_url, output_dimension=256)
    texts = [f"chunk number {i} about bees" for i in range(EMBED_BATCH_LIMIT * 2 + 5)]
    vectors = embedder.embed_documents(texts)
    assert vectors.shape == (len(texts), 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    calls = [r for r in cohere_server.requests if r["path"] == "/v2/embed"]
    assert [len(c["body"]["texts"]) for c in calls] == [96, 96, 5]
    assert {c["auth"] for c in calls} == {"Bearer test-key-123"}
    assert {c["body"]["input_type"] for c in calls} == {"search_document"}
    assert calls[0]["body"]["model"] == "embed-english-v3.0"
    assert calls[0]["body"]["embedding_types"] == ["float"]
    embedder.embed_query("bees")
    assert cohere_server.requests[-1]["body"]["input_type"] == "search_query"


def test_throttling_is_retried_with_backoff(cohere_server: FakeCohere) -> None:
    cohere_server.throttle = 2
    embedder = CohereEmbedder(base_url=cohere_server.base_url, output_dimension=256)
    assert embedder.embed_query("winter cluster").shape == (256,)
    assert len(cohere_server.requests) == 3  # 429, 429, then 200


def test_a_dimension_other_than_the_index_expects_is_refused(cohere_server: FakeCohere) -> None:
    embedder = CohereEmbedder(base_url=cohere_server.base_url, output_dimension=1024)
    with pytest.raises(ValueError, match="expects 1024"):
        embedder.embed_documents(["some text"])


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    with pytest.raises(MissingCohereKeyError, match="COHERE_API_KEY"):
        CohereEmbedder(base_url="http://127.0.0.1:9").embed_query("x")


def test_cohere_vectors_feed_the_same_index_contract(
    cohere_server: FakeCohere, tmp_path: Path
) -> None:
    embedder = CohereEmbedder(base_url=cohere_server.base_url, output_dimension=256)
    index = LanceDBIndex(uri=str(tmp_path / "index"))
    texts = {"c1": "honey bees cluster in winter", "c2": "the ferry leaves at noon"}
    rows = [
        {"source_key": "a" * 16, "chunk_id": cid, "source_url": "https://e.com", "kind": "web",
         "text": text, "deep_link": "https://e.com", "content_sha256": cid, "speakers": []}
        for cid, text in texts.items()
    ]  # fmt: skip
    index.replace_sources(rows, embedder.embed_documents(list(texts.values())), ["a" * 16])
    hits = index.search("bees in winter", embedder.embed_query("bees in winter"), k=1)
    assert hits[0].row["chunk_id"] == "c1"


def test_vision_sends_the_frame_and_a_prompt_for_facts(
    cohere_server: FakeCohere, tmp_path: Path
) -> None:
    cohere_server.chat_answer = "  Two colonies\n per   hectare "
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(b"\xff\xd8\xff\xe0fake-jpeg")
    vision = CohereVision(base_url=cohere_server.base_url)
    assert vision.read(frame) == "Two colonies per hectare"  # one line, spaces collapsed
    request = cohere_server.requests[-1]
    assert request["path"] == "/v2/chat" and request["auth"] == "Bearer test-key-123"
    assert request["body"]["model"] == "command-a-vision-07-2025"
    (message,) = request["body"]["messages"]
    prompt, image = message["content"]
    # What went over the wire asks for the facts a slide carries, and carries this very frame.
    assert prompt["type"] == "text"
    assert "numbers" in prompt["text"] and "slide titles" in prompt["text"]
    assert image["type"] == "image_url"
    data_url = image["image_url"]["url"]
    assert data_url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(data_url.split(",", 1)[1]) == frame.read_bytes()
