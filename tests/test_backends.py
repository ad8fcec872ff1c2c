"""Each backend is chosen by environment alone; a missing setting is named."""

import pytest

from resources import build_resources


def test_production_backends_are_selected_by_environment() -> None:
    resources = build_resources(
        {
            "MEDIA_ASSETS_INDEX_BACKEND": "weaviate",
            "WEAVIATE_URL": "http://weaviate.example:8080",
            "MEDIA_ASSETS_EMBEDDER": "cohere",
            "MEDIA_ASSETS_VISION": "cohere",
            "MEDIA_ASSETS_SPEECH": "whisperx",
            "MEDIA_ASSETS_WHISPER_DIR": "/models/whisper",
            "MEDIA_ASSETS_DIARIZER": "pyannote",
            "MEDIA_ASSETS_PYANNOTE_DIR": "/models/pyannote",
        }
    )
    kinds = {name: type(r).__name__ for name, r in resources.items()}
    assert kinds["vector_index"] == "WeaviateIndex"
    assert kinds["embedder"] == "CohereEmbedder" and kinds["vision"] == "CohereVision"
    assert kinds["speech"] == "WhisperXSpeech" and kinds["diarizer"] == "PyannoteDiarizer"
    defaults = {name: type(r).__name__ for name, r in build_resources({}).items()}
    assert defaults["vector_index"] == "LanceDBIndex"
    assert defaults["embedder"] == "SentenceTransformerEmbedder"
    assert defaults["speech"] == "FasterWhisperSpeech"
    assert defaults["diarizer"] == "ResemblyzerDiarizer"
    assert defaults["vision"] == "TesseractVision"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"MEDIA_ASSETS_INDEX_BACKEND": "weaviate"}, "WEAVIATE_URL"),
        ({"MEDIA_ASSETS_SPEECH": "whisperx"}, "MEDIA_ASSETS_WHISPER_DIR"),
        ({"MEDIA_ASSETS_DIARIZER": "pyannote"}, "MEDIA_ASSETS_PYANNOTE_DIR"),
    ],
)
def test_a_backend_without_its_setting_names_it(env: dict[str, str], missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        build_resources(env)


@pytest.mark.parametrize(
    ("env", "embedder", "index"),
    [
        ({}, "onnx", "lancedb"),
        (
            {
                "MEDIA_ASSETS_INDEX_BACKEND": "weaviate",
                "WEAVIATE_URL": "http://weaviate.example:8080",
                "MEDIA_ASSETS_EMBEDDER": "cohere",
            },
            "cohere",
            "weaviate",
        ),
    ],
)
def test_the_catalog_shows_the_engines_the_deployment_uses(
    env: dict[str, str], embedder: str, index: str
) -> None:
    from media_assets.definitions import build_definitions

    graph = build_definitions(env).resolve_asset_graph()
    kinds = {key.to_user_string(): graph.get(key).kinds for key in graph.get_all_asset_keys()}
    for chain in ("web", "video"):
        assert kinds[f"{chain}_embeddings"] == {"python", embedder}
        assert kinds[f"{chain}_index_rows"] == {"python", index}
    assert kinds["rendered_page"] == {"playwright", "chromium"}
