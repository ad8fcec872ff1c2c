"""The shared tail of both chains, built once by a factory: chunks -> embeddings -> index rows;
and what every chunk stage adds to its chunks (entities, keywords, the PII gate)."""

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import dagster as dg
import numpy as np

from media_assets import deadletters, enrich
from media_assets.assets.common import (
    Checkpoints,
    Record,
    StageEvents,
    batch_stage,
    chunks_preview,
    is_ok,
    record_hash,
    skipped,
    url_asset,
)
from media_assets.chunks import EmbeddingsRecord, IndexRowsRecord, embedding_text
from media_assets.names import ENGINE_TAG, Status
from resources.embedder import Embedder
from resources.enrichment import TextEnrichment
from resources.index import VectorIndex
from resources.storage import ObjectStore

EMBEDDING_SIDECARS = {"vectors": "parquet"}


def enriched(
    work: Callable[[str, Any], Mapping[str, Any]], enrichment: TextEnrichment
) -> Callable[[str, Any], Mapping[str, Any]]:
    """A chunk stage's ``work`` followed by the enrichment and the PII gate (before anything is
    embedded): each chunk gets its entities, keywords, the policy in force and what it found;
    the record gets their summary. Run once per chunk record: reused with it while its input
    and ``enrichment.settings()`` are unchanged."""
    policy = enrichment.policy

    def run(key: str, source: Record) -> Mapping[str, Any]:
        record = work(key, source)
        if not is_ok(record):
            return record
        result = enrich.enrich_chunks(record["chunks"], policy)
        return {**record, "chunks": result.chunks, "enrichment": result.summary}

    return run


def with_policy_versions(
    assets: list[dg.AssetsDefinition], enrichment: TextEnrichment
) -> list[dg.AssetsDefinition]:
    """The stages that apply the PII gate, their code version marked with the policy in force
    (``2`` under ``off``, ``2+pii-redact`` under ``redact``): changing the policy makes exactly
    those stages stale in the UI, and what follows them through their data versions, while
    rendering and transcription stay fresh; ``media-assets ingest --stale`` then runs them."""
    policy = enrichment.policy
    if policy == "off":
        return assets

    def mark(spec: dg.AssetSpec) -> dg.AssetSpec:
        version = f"{spec.code_version}+pii-{policy}"
        # The IO manager stamps artifacts with the version in the metadata: both change.
        return spec.replace_attributes(
            code_version=version, metadata={**spec.metadata, "code_version": version}
        )

    return [
        asset.map_asset_specs(mark) if "text_enrichment" in asset.required_resource_keys else asset
        for asset in assets
    ]


def enriched_preview(record: Record) -> dict[str, Any]:
    """A chunk partition's metadata in the UI: its chunks, top entities and keywords, and under
    a PII policy what it found (and dropped)."""
    summary = record.get("enrichment") or {}
    preview = {
        **chunks_preview(record),
        "top_entities": ", ".join(summary.get("top_entities", [])),
        "top_keywords": ", ".join(summary.get("top_keywords", [])),
    }
    if summary.get("pii_policy", "off") != "off":
        found = summary.get("pii_found", {})
        preview["pii_policy"] = summary["pii_policy"]
        preview["pii_found"] = ", ".join(f"{t} {n}" for t, n in found.items()) or "none"
        preview["pii_dropped_chunks"] = summary.get("pii_dropped", 0)
    return preview


def topic_counts(topics: Iterable[str] | Mapping[str, int]) -> str:
    """Content classes with their counts, most frequent first: ``news 3, other 1``."""
    return ", ".join(f"{t} {n}" for t, n in Counter(topics).most_common())


def embed_records(
    chunks: Mapping[str, Record], embedder: Embedder, checkpoints: Checkpoints, upstream: str
) -> dict[str, Record]:
    """Vectors for every ok partition's chunks. A partition whose chunks and model are unchanged
    is reused whole; otherwise a chunk whose text is unchanged keeps its previous vector and only
    new text goes to the model."""
    import pandas as pd  # here, not at import: most processes never build these tables

    records: dict[str, Record] = {}
    typed: dict[str, EmbeddingsRecord] = {}  # the records made here, which get their vectors
    pending: list[tuple[str, int, str]] = []  # (partition, row, text) still to embed
    frames: dict[str, pd.DataFrame] = {}
    for key, record in chunks.items():
        if not is_ok(record):
            records[key] = skipped(upstream, record)
            continue
        sha = record_hash(
            {**record, "embedding_model": embedder.model_id, "taxonomy": enrich.TAXONOMY_VERSION}
        )
        stored = checkpoints.reuse(key, sha)
        if stored:
            records[key] = stored
            continue
        old = checkpoints.previous(key)
        known: dict[str, np.ndarray] = {}
        if (
            old
            and old.get("model") == embedder.model_id
            and "vectors" in old
            # only this code version's vectors: another may have embedded other text
            and checkpoints.artifacts.is_stored(key, old)
        ):
            known = dict(
                zip(old["vectors"]["content_sha256"], old["vectors"]["vector"], strict=True)
            )
        rows = record["chunks"]
        frame = pd.DataFrame(
            {
                "chunk_id": [c["chunk_id"] for c in rows],
                "content_sha256": [c["content_sha256"] for c in rows],
                "vector": [known.get(c["content_sha256"]) for c in rows],
            }
        )
        new = [i for i, c in enumerate(rows) if c["content_sha256"] not in known]
        pending.extend((key, i, embedding_text(rows[i])) for i in new)
        frames[key] = frame
        records[key] = made = EmbeddingsRecord(
            status=Status.OK,
            source_url=record.get("source_url"),
            model=embedder.model_id,
            chunks=len(rows),
            embedded=len(new),
            vectors_reused=len(rows) - len(new),
            input_sha256=sha,
        )
        typed[key] = made
    if pending:
        vectors = embedder.embed_documents([text for _, _, text in pending])
        for (key, row, _), vector in zip(pending, vectors, strict=True):
            frames[key].at[row, "vector"] = vector
    prototypes = enrich.topic_vectors(embedder) if frames else None
    for key, frame in frames.items():
        frame["vector"] = [np.asarray(v, dtype=np.float32) for v in frame["vector"]]
        # Each chunk's content class, from the vector just made (or kept): nothing embedded twice.
        matrix = np.vstack(frame["vector"]) if len(frame) else np.zeros((0, 1), np.float32)
        classes = enrich.classify(matrix, prototypes) if len(frame) else []
        frame["topic"] = [c for c, _ in classes]
        frame["topic_score"] = [s for _, s in classes]
        typed[key]["vectors"] = frame
        typed[key]["topics"] = dict(Counter(frame["topic"]))
    return records


def index_row(chunk: Record, topic: str | None, topic_score: float | None, model: str) -> Record:
    """A chunk as the index stores it: its fields, the entity names and the string filters read,
    its content class, and what the PII gate found as JSON (a map fits no column type that
    every backend shares)."""
    names = [e["text"] for e in chunk.get("entities", [])]
    return {
        **chunk,
        "embedding_model": model,
        "entities": names,
        "entity_terms": enrich.entity_terms(names),
        "keywords": list(chunk.get("keywords", [])),
        "topic": topic,
        "topic_score": topic_score,
        "pii_policy": chunk.get("pii_policy", "off"),
        "pii": json.dumps(chunk.get("pii", {}), sort_keys=True),
    }


def index_records(
    chunks: Mapping[str, Record], embeddings: Mapping[str, Record], index: VectorIndex
) -> tuple[dict[str, Record], dict[str, int]]:
    """Replace each ok source's rows in the index (upsert, and delete what it no longer has)."""
    rows: list[Record] = []
    vectors: list[np.ndarray] = []
    replace: list[str] = []
    records: dict[str, Record] = {}
    for key, emb in embeddings.items():
        if not is_ok(emb):
            records[key] = skipped("embeddings", emb)
            continue
        frame = emb["vectors"]
        by_chunk = dict(zip(frame["chunk_id"], frame["vector"], strict=True))
        classes = zip(frame["topic"], frame["topic_score"], strict=True) if "topic" in frame else ()
        topics = dict(zip(frame["chunk_id"], classes, strict=False))
        source_chunks = chunks[key]["chunks"]
        for chunk in source_chunks:
            topic, score = topics.get(chunk["chunk_id"], (None, None))
            rows.append(index_row(chunk, topic, score, emb["model"]))
            vectors.append(np.asarray(by_chunk[chunk["chunk_id"]], dtype=np.float32))
        replace.append(key)
        records[key] = IndexRowsRecord(
            status=Status.OK,
            source_url=emb.get("source_url"),
            rows=len(source_chunks),
            model=emb["model"],
            chunk_ids=[c["chunk_id"] for c in source_chunks],
            topics=dict(Counter(str(r["topic"]) for r in rows[-len(source_chunks) :]))
            if source_chunks
            else {},
        )
    matrix = np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    if vectors:  # a model whose vectors the index cannot hold is a configuration error
        index.check_dimension(matrix.shape[1], str(rows[0]["embedding_model"]))
    write = index.replace_sources(rows, matrix, replace)
    return records, {
        "rows_upserted": write.upserted,
        "rows_deleted": write.deleted,
        "content_classes": topic_counts(str(r["topic"]) for r in rows),
    }


def build_index_tail(
    kind: Literal["web", "video"], partitions_def: dg.PartitionsDefinition, chunks_asset: str
) -> list[dg.AssetsDefinition]:
    """``<kind>_embeddings`` and ``<kind>_index_rows`` downstream of ``chunks_asset``."""
    embeddings_name = f"{kind}_embeddings"

    @url_asset(
        name=embeddings_name,
        partitions_def=partitions_def,
        code_version="2",
        kinds={"python"},
        tags={ENGINE_TAG: "embedder"},
        group_name=kind,
        sidecars=EMBEDDING_SIDECARS,
        # How many vectors this run computed: the vectors are the same either way.
        measurements={"embedded", "vectors_reused"},
        ins={"chunks": dg.AssetIn(chunks_asset)},
    )
    def embeddings(
        context: dg.AssetExecutionContext,
        embedder: Embedder,
        object_store: ObjectStore,
        chunks: dict[str, Record],
    ) -> StageEvents:
        """One vector per chunk; unchanged chunks reuse their previous vector."""
        return batch_stage(
            context,
            object_store,
            lambda checkpoints: embed_records(chunks, embedder, checkpoints, chunks_asset),
            preview=lambda r: {
                "model": r["model"],
                "embedded": r["embedded"],
                "vectors_reused": r["vectors_reused"],
                "content_classes": topic_counts(r.get("topics", {})),
            },
        )

    @url_asset(
        name=f"{kind}_index_rows",
        partitions_def=partitions_def,
        code_version="1",
        kinds={"python"},
        tags={ENGINE_TAG: "vector_index"},
        group_name=kind,
        ins={"chunks": dg.AssetIn(chunks_asset), "embeddings": dg.AssetIn(embeddings_name)},
    )
    def index_rows(
        context: dg.AssetExecutionContext,
        vector_index: VectorIndex,
        object_store: ObjectStore,
        chunks: dict[str, Record],
        embeddings: dict[str, Record],
    ) -> StageEvents:
        """The source's rows in the index, upserted by (source_key, chunk_id); rows the new
        version no longer has are deleted in the same write."""
        written: dict[str, Record] = {}
        totals: dict[str, Any] = {}

        def write(_: Checkpoints) -> dict[str, Record]:
            records, write_totals = index_records(chunks, embeddings, vector_index)
            written.update(records)
            totals.update(write_totals)
            return written

        yield from batch_stage(
            context,
            object_store,
            write,
            preview=lambda r: {
                "rows": r["rows"],
                "content_classes": topic_counts(r.get("topics", {})),
            },
            totals=lambda _: totals,
        )
        # Only once the batch materialized (a failed one raised above): these URLs made it
        # through the whole chain.
        deadletters.clear(object_store, written)

    return [embeddings, index_rows]
