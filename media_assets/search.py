"""Query the index: ranked chunks with their deep links."""

from __future__ import annotations

from dataclasses import dataclass

from resources.embedder import Embedder
from resources.index import SearchMode, VectorIndex

SNIPPET_CHARS = 240


@dataclass(frozen=True)
class SearchResult:
    # Relevance between 0 and 1, comparable across queries (resources/index.py says how).
    score: float
    title: str | None
    section: str | None
    snippet: str
    text: str  # the whole chunk
    deep_link: str
    source_url: str
    kind: str
    chunk_id: str
    source_key: str
    start_s: float | None = None
    end_s: float | None = None
    speakers: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    topic: str | None = None  # content class (media_assets/enrich.py TOPICS)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def search(
    query: str,
    index: VectorIndex,
    embedder: Embedder,
    *,
    k: int = 5,
    kind: str | None = None,
    mode: SearchMode = "hybrid",
    min_score: float = 0.0,
    entity: str | None = None,
    topic: str | None = None,
) -> list[SearchResult]:
    """The ``k`` most relevant chunks for ``query``, best first, leaving out those whose
    relevance is below ``min_score``; only chunks naming ``entity`` (its words, any case:
    "curie" finds "Marie Curie") and of content class ``topic``, when given."""
    vector = embedder.embed_query(query) if mode != "text" else None
    return [
        SearchResult(
            score=hit.score,
            title=hit.row.get("title"),
            section=hit.row.get("section"),
            snippet=_snippet(hit.row.get("text") or ""),
            text=hit.row.get("text") or "",
            deep_link=hit.row["deep_link"],
            source_url=hit.row["source_url"],
            kind=hit.row["kind"],
            chunk_id=hit.row["chunk_id"],
            source_key=hit.row["source_key"],
            start_s=hit.row.get("start_s"),
            end_s=hit.row.get("end_s"),
            speakers=tuple(hit.row.get("speakers") or ()),
            entities=tuple(hit.row.get("entities") or ()),
            keywords=tuple(hit.row.get("keywords") or ()),
            topic=hit.row.get("topic"),
        )
        for hit in index.search(
            query, vector, k=k, kind=kind, mode=mode, entity=entity, topic=topic
        )
        if hit.score >= min_score
    ]


def format_result(rank: int, result: SearchResult) -> str:
    where = result.section or ""
    if result.start_s is not None:
        where = f"{result.start_s:.0f}s-{result.end_s or result.start_s:.0f}s"
        if result.speakers:
            where += f" · {', '.join(result.speakers)}"
    about = ", ".join([*([result.topic] if result.topic else []), *result.entities[:4]])
    return (
        f"{rank}. [{result.score:.3f}] {result.title or result.source_url}"
        + (f" — {where}" if where else "")
        + (f"\n   ({about})" if about else "")
        + f"\n   {result.snippet}\n   {result.deep_link}"
    )
