"""Entities, keywords and a content class per chunk and per second of video
(media_assets/enrich.py): on the index rows, filterable in search and moment search, shown in the
chunk and index partitions' metadata, computed once per chunk and reused with its checkpoint.

The demo site's web pages are ingested once through Dagster (the PII gate off, the default)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from media_assets import enrich
from media_assets.assets.moments import index_moments
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import IngestReport, ingest
from media_assets.moments import MomentQuery, find_moments
from media_assets.search import search
from media_assets.video.moments import ModelId, fuse, text_annotations
from partitions.keys import partition_key
from resources.embedder import SentenceTransformerEmbedder
from resources.index import RowFilter
from resources.moments_index import LanceDBMomentsIndex
from tests.helpers import needs_chromium, run_cli, write_manifest

PAGES = {
    "docs": "/docs/getting-started.html",
    "blog": "/blog/winter-bees.html",
    "product": "/products/trail-lantern.html",
    "news": "/news/harbour-bridge.html",
}


@dataclass
class Site:
    site: SiteServer
    env: dict[str, str]
    defs: dg.Definitions
    instance: dg.DagsterInstance
    manifest: Path
    report: IngestReport

    def key(self, name: str) -> str:
        return partition_key(self.site.base_url + PAGES[name])

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        index = self.defs.resources["vector_index"]
        return index.rows(self.key(name) if name else None)  # type: ignore[union-attr]

    def metadata(self, asset: str, name: str) -> dict[str, Any]:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[self.key(name)]),
            limit=1,
        ).records
        event = records[0].asset_materialization
        assert event is not None
        return {k: v.value for k, v in event.metadata.items()}


@pytest.fixture(scope="module")
def web(
    module_site: SiteServer,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> Site:
    manifest = write_manifest(
        module_tmp / "pages.jsonl", [module_site.base_url + p for p in PAGES.values()], "web"
    )
    defs = build_definitions(module_env)
    report = ingest(manifest, defs, module_instance)
    return Site(module_site, module_env, defs, module_instance, manifest, report)


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


# --- plain functions --------------------------------------------------------------------------


def test_entities_and_keywords_of_a_text() -> None:
    (found,) = enrich.analyse(
        [
            "Marie Curie and Pierre Curie worked in Paris, where the Sorbonne gave Marie Curie "
            "a chair in 1906. Radium and polonium were found in pitchblende from Bohemia. "
            "Order 4111 1111 1111 1112 shipped."
        ],
        "off",
    )
    names = {e["text"]: e for e in found.entities}
    assert names["Marie Curie"]["label"] == "PERSON" and names["Marie Curie"]["count"] == 2
    assert names["Paris"]["label"] == "GPE"
    assert not any(any(c.isdigit() for c in n) and n.replace(" ", "").isdigit() for n in names)
    assert found.pii == [] and found.keywords
    assert all(k.lower() not in ("and", "the", "in") for k in found.keywords)


def test_entities_alone_skip_the_shared_tok2vec_and_find_the_same_names() -> None:
    texts = [
        "Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget.",
        "Apple opened a store in Tokyo; Tim Cook spoke at the launch with the Mayor of Shibuya.",
    ]
    alone = enrich.parse(texts, for_pii=False)
    full = enrich.parse(texts, for_pii=True)
    assert "tok2vec" not in enrich.entity_components()
    assert all(not d[0].lemma_ for d in alone), "the lemma components ran without the PII gate"
    assert all(d[0].lemma_ for d in full), "Presidio needs lemmas"
    assert [[(e.text, e.label_) for e in d.ents] for d in alone] == [
        [(e.text, e.label_) for e in d.ents] for d in full
    ]
    assert any(e.text == "Berlin" for e in alone[0].ents)


def test_an_entity_filter_matches_whole_words_of_a_name_in_order() -> None:
    terms = enrich.entity_terms(["Marie Curie", "Paris"])
    for query, hit in [
        ("curie", True),
        ("Marie  CURIE", True),
        ("cur", False),
        ("curie marie", False),
    ]:
        pattern = enrich.entity_pattern(query)
        assert pattern is not None
        assert (pattern.strip("%") in terms) is hit, query
    assert enrich.entity_pattern("'; DROP TABLE chunks; --") == "% drop table chunks %"
    assert RowFilter(entity="!!").sql() == "false"
    with pytest.raises(ValueError, match="not a content class: use one of news, tutorial"):
        RowFilter(topic="recipes")


def test_content_classes_follow_the_nearest_description(embedder) -> None:
    texts = [
        "The minister resigned on Tuesday after the inquiry's report was published, a spokesperson "
        "for the government said, and elections are expected in the spring.",
        "Step 1: install the package with pip. Step 2: run the init command, then edit the config "
        "file and restart the service to finish the setup.",
        "The TL-200 lantern costs $49 with free shipping; add it to your cart, choose a colour and "
        "get a two-year warranty and 30-day returns.",
    ]
    classes = enrich.classify(
        np.asarray(embedder.embed_documents(texts)), enrich.topic_vectors(embedder)
    )
    assert [c for c, _ in classes] == ["news", "tutorial", "product"]
    # The descriptions are embedded once per model, not once per call.
    assert enrich.topic_vectors(embedder) is enrich.topic_vectors(embedder)


# --- through Dagster: the demo pages ----------------------------------------------------------


@needs_chromium
def test_index_rows_carry_entities_keywords_and_a_content_class(web: Site) -> None:
    assert web.report.ok and web.report.statuses["web"]["indexed"] == len(PAGES)
    rows = web.rows()
    for row in rows:
        print(row["source_url"].rsplit("/", 1)[-1], row["topic"], row["entities"][:4])
    assert all(row["topic"] in (*enrich.TOPICS, enrich.OTHER_TOPIC) for row in rows)
    assert all(row["pii_policy"] == "off" and json.loads(row["pii"]) == {} for row in rows)
    assert all(row["keywords"] for row in rows if len(row["text"].split()) > 20)
    news = web.rows("news")
    assert any("Aoife Brennan" in row["entities"] for row in news)


@needs_chromium
def test_search_filters_by_entity_and_by_class(web: Site) -> None:
    index, embedder = web.defs.resources["vector_index"], web.defs.resources["embedder"]
    named = search("bridge", index, embedder, k=10, entity="brennan")  # type: ignore[arg-type]
    assert named and all(
        any("brennan" in e.lower().split() for e in result.entities) for result in named
    )
    assert {r.source_key for r in named} == {web.key("news")}
    by_class: dict[str, int] = {}
    for row in web.rows():
        by_class[row["topic"]] = by_class.get(row["topic"], 0) + 1
    topic, count = max(by_class.items(), key=lambda item: item[1])
    found = search("how", index, embedder, k=50, topic=topic, mode="vector")  # type: ignore[arg-type]
    assert len(found) == count and {r.topic for r in found} == {topic}
    assert search("bridge", index, embedder, entity="nobody such") == []  # type: ignore[arg-type]
    done = run_cli(web.env, "search", "bridge", "--entity", "Aoife Brennan", "--json")
    assert done.returncode == 0, done.stderr
    assert {r["source_key"] for r in json.loads(done.stdout)} == {web.key("news")}


@needs_chromium
def test_the_partitions_metadata_shows_entities_keywords_and_classes(web: Site) -> None:
    chunks = web.metadata("web_chunks", "news")
    assert "Aoife Brennan" in chunks["top_entities"] and chunks["top_keywords"]
    assert "pii_found" not in chunks  # the gate is off
    index = web.metadata("web_index_rows", "news")
    classes = dict(part.rsplit(" ", 1) for part in index["content_classes"].split(", "))
    assert sum(int(n) for n in classes.values()) == index["rows"]


@needs_chromium
def test_a_rerun_reuses_the_enriched_chunks(web: Site) -> None:
    report = ingest(web.manifest, web.defs, web.instance, force=True)
    assert report.ok
    assert web.metadata("web_chunks", "news")["batch_reused"] == len(PAGES)


# --- moments ----------------------------------------------------------------------------------


def test_moments_are_found_by_an_entity_said_or_shown(tmp_path: Path, embedder) -> None:
    key, url = "talk-" + "c" * 16, "https://videos.example/curie.mp4"
    speech, ocr = ModelId("captions", "manual:en"), ModelId("tesseract", "eng")
    said = [
        (0.0, "Welcome"), (0.6, "to"), (0.9, "the"), (1.2, "chemistry"), (2.0, "hour."),
        (4.0, "Marie"), (4.5, "Curie"), (5.0, "found"), (5.6, "polonium"), (6.4, "in"),
        (6.7, "Paris."), (9.0, "Thank"), (9.5, "you."),
    ]  # fmt: skip
    annotations = [speech.annotation(key, "speech", t, t + 0.4, w) for t, w in said]
    annotations.append(
        ocr.annotation(
            key, "on_screen", 10.0, 12.0, "Photo courtesy of the Nobel Foundation, Stockholm"
        )
    )
    gate = text_annotations(key, annotations, "off")
    moments = fuse(key, gate.annotations, duration_s=12.0)
    index = LanceDBMomentsIndex(uri=str(tmp_path / "index"))
    source = {
        "source_url": url,
        "video_info": {"title": "Chemistry hour"},
        "video_moments": moments.record(),
    }
    assert index_moments(key, source, embedder, index)["rows"] == 12
    (curie,) = find_moments(MomentQuery(entity="curie"), index, embedder)
    assert (curie.start_s, curie.end_s) == (4.0, 7.1)
    (shown,) = find_moments(MomentQuery(entity="nobel foundation"), index, embedder)
    assert (shown.first_bucket, shown.last_bucket) == (10, 11)
    both = find_moments(MomentQuery(said="polonium", entity="Paris"), index, embedder)
    assert both and both[0].start_s == 4.0
    assert find_moments(MomentQuery(said="welcome", entity="Paris"), index, embedder)[0].relaxed
    rows = index.rows(key)
    assert {r["topic"] for r in rows if r["context"]} <= {*enrich.TOPICS, enrich.OTHER_TOPIC}
    assert any("polonium" in " ".join(r["keywords"]).lower() for r in rows)
