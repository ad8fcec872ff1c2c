"""Search quality: relevance a person can read, and answers found on real pages.

The relevance functions are checked on their own; the ranking on a subset of the evaluation
articles and their queries (../shared/eval/, not shipped with the repo: skipped when absent).
`bench/retrieval_eval.py` measures the whole set through the pipeline.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from media_assets import cli
from media_assets.chunks import embedding_text
from media_assets.quality import holds_passage, retrieval_scores
from media_assets.search import search
from media_assets.web.chunk import chunk_page
from media_assets.web.extract import extract_elements
from resources.embedder import SentenceTransformerEmbedder
from resources.index import (
    LanceDBIndex,
    hybrid_relevance,
    lexical_relevance,
    semantic_relevance,
)
from tests.conftest import EVAL_DIR, needs_eval

SUBSET_PAGES = 10


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def test_relevance_lies_between_0_and_1_and_rises_with_the_evidence() -> None:
    cosines = [-0.4, 0.0, 0.15, 0.5, 0.9, 1.0, 1.2]
    semantic = [semantic_relevance(c) for c in cosines]
    assert semantic == sorted(semantic) and semantic[0] == 0.0 and semantic[-1] == 1.0
    # BM25 as a share of the query's ceiling: 0 without a match or without a ceiling.
    lexical = [lexical_relevance(score, 12.0) for score in (0.0, 3.0, 6.0, 12.0, 13.0)]
    assert lexical == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert lexical_relevance(4.0, 0.0) == 0.0
    grid = [(c, w) for c in cosines for w in lexical]
    assert all(0.0 <= hybrid_relevance(c, w) <= 1.0 for c, w in grid)
    for c, w in grid:  # more of either half never lowers the relevance
        assert hybrid_relevance(c + 0.1, w) >= hybrid_relevance(c, w)
        assert hybrid_relevance(c, min(w + 0.1, 1.0)) >= hybrid_relevance(c, w)
    assert hybrid_relevance(1.0, 1.0) == pytest.approx(1.0)
    assert hybrid_relevance(0.0, 0.0) == 0.0


def write_rows(index: LanceDBIndex, embedder: SentenceTransformerEmbedder, texts: list[str]):
    key = "a" * 16
    rows = [
        {
            "source_key": key,
            "chunk_id": f"c{n}",
            "source_url": "https://example.com/bees",
            "kind": "web",
            "title": "Keeping bees",
            "section": None,
            "text": text,
            "deep_link": f"https://example.com/bees#c{n}",
            "content_sha256": str(n),
            "embedding_model": embedder.model_id,
        }
        for n, text in enumerate(texts)
    ]
    index.replace_sources(rows, embedder.embed_documents([embedding_text(r) for r in rows]), [key])


def test_relevance_means_the_same_for_every_query(tmp_path: Path, embedder) -> None:
    """An answer scores high and an unrelated question low, whatever else either query found;
    a rank-based score (RRF) gives every query's top hit about the same value."""
    index = LanceDBIndex(uri=str(tmp_path / "index"))
    write_rows(
        index,
        embedder,
        [
            "Honeybees shiver their flight muscles to keep the winter cluster warm.",
            "A strong colony needs about 25 kilograms of honey stores for the winter.",
            "Mice nest in hives when the entrance is left wide open in autumn.",
        ],
    )

    def top(query: str, k: int = 3) -> float:
        return search(query, index, embedder, k=k)[0].score

    answered = top("how do honeybees keep the winter cluster warm")
    unrelated = top("quarterly corporate tax filing deadline")
    assert answered > 0.6 and unrelated < 0.25, (answered, unrelated)
    # A hit's relevance does not depend on how many results were asked for.
    assert top("honey stores for winter", k=1) == pytest.approx(top("honey stores for winter"))
    # --min-score keeps what clears the bar, with every query on the same scale.
    assert search("quarterly corporate tax filing deadline", index, embedder, min_score=0.4) == []
    kept = search("how do honeybees keep the winter cluster warm", index, embedder, min_score=0.4)
    assert kept and all(r.score >= 0.4 for r in kept)


def test_search_command_prints_full_chunks_as_json_and_applies_min_score(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MEDIA_ASSETS_DATA", str(tmp_path / "data"))
    long_text = "Honeybees shiver their flight muscles to keep the winter cluster warm. " * 8
    write_rows(LanceDBIndex(uri=str(tmp_path / "data" / "index")), embedder, [long_text])

    assert cli.main(["search", "winter cluster honeybees", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["text"] == long_text and len(result["snippet"]) < len(long_text)
    assert 0.5 < result["score"] <= 1.0

    assert cli.main(["search", "quarterly tax deadline", "--min-score", "0.5"]) == 0
    assert "no results with a relevance of at least 0.5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["search", "bees", "--min-score", "2"])  # not a relevance


def test_a_passage_is_held_by_most_of_its_words_and_a_run_of_six() -> None:
    answer = "The colony eats about 25 kilograms of honey over the winter."
    assert holds_passage(f"Intro. {answer} More text.", answer)
    assert holds_passage(answer.upper().replace(".", ""), answer)  # case and punctuation
    # Every word, but never six in a row: not the passage.
    assert not holds_passage("winter the over honey of kilograms 25 about eats colony The", answer)
    # Cut in half at a chunk boundary: neither half holds it.
    assert not holds_passage("The colony eats about 25 kilograms", answer)
    scores = retrieval_scores(
        [
            ([("p2", "x"), ("p1", answer)], "p1", answer),  # right page, passage at rank 2
            ([("p1", "other words")], "p1", answer),  # right page, no passage
        ]
    )
    assert (scores.page_hit5, scores.passage_hit1, scores.passage_hit5) == (1.0, 0.0, 0.5)
    assert scores.mrr10 == pytest.approx(0.25)


@needs_eval
def test_real_questions_find_their_passage_on_real_pages(tmp_path: Path, embedder) -> None:
    """The first pages of the evaluation articles, extracted from their HTML as served (no
    browser), chunked and embedded as the pipeline does; their queries searched in the default
    (hybrid) mode."""
    folder = EVAL_DIR / "web-articles"
    truth = json.loads((folder / "ground-truth.json").read_text())
    pages = sorted(truth)[:SUBSET_PAGES]
    index = LanceDBIndex(uri=str(tmp_path / "index"))
    for n, page in enumerate(pages):
        html = gzip.decompress((folder / "html" / f"{page}.html.gz").read_bytes()).decode()
        key = f"page-{n}-{page[:16]}"
        url = f"https://eval.example/{page}"
        chunks = chunk_page(
            extract_elements(html, url), source_key=key, source_url=url, page_url=url, title=None
        )
        rows = [c.record() | {"embedding_model": embedder.model_id} for c in chunks]
        vectors = embedder.embed_documents([embedding_text(r) for r in rows])
        index.replace_sources(rows, np.asarray(vectors), [key])
    lines = (EVAL_DIR / "web-queries.jsonl").read_text().splitlines()
    queries = [q for q in map(json.loads, lines) if q["page_id"] in pages]
    assert len(queries) == 2 * SUBSET_PAGES
    rankings = []
    for query in queries:
        results = search(query["query"], index, embedder, k=10)
        ranked = [(r.source_url.rsplit("/", 1)[-1], r.text) for r in results]
        rankings.append((ranked, query["page_id"], query["answer"]))
    scores = retrieval_scores(rankings)
    # Measured 2026-12-01: page_hit5 1.00, passage_hit5 0.95 (the miss: link text the extraction
    # drops from the answer), MRR@10 0.85.
    assert scores.page_hit5 == 1.0, scores
    assert scores.passage_hit5 >= 0.9, scores
    assert scores.mrr10 >= 0.8, scores
