"""Heading-aware chunks of a page's elements, cut by unstructured's ``chunk_by_title``.

Elements are built directly as unstructured elements (no ``partition_html``), which keeps
unstructured's chunker and element model while skipping its NLP text-type detection, the part that
downloads a spaCy model at run time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, NotRequired

from media_assets.chunks import (
    SECTION_SEPARATOR,
    Chunk,
    assign_chunk_ids,
    embedding_text,
    sha256_text,
    text_fragment,
)
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.web.extract import PageElement, PageElementsRecord

if TYPE_CHECKING:
    from unstructured.documents.elements import Element


def quiet_unstructured() -> None:
    """Before unstructured is first imported (not when this module is): else it pings a server
    on import and prints a notice."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")


@cache
def element_types() -> dict[str, type[Element]]:
    """Unstructured's element class for each kind, imported on first use: unstructured takes
    ~1 s to import, which every process loading the code location would pay otherwise."""
    quiet_unstructured()
    from unstructured.documents import elements as e

    return {
        "title": e.Title,
        "text": e.NarrativeText,
        "list_item": e.ListItem,
        "table": e.Table,
        "code": e.CodeSnippet,
        "quote": e.NarrativeText,
    }


class WebChunksRecord(StageRecord):
    """The ``web_chunks`` artifact (schemas/web_chunks.json): the page's chunks in the common
    chunk schema (schemas/chunk.json), with what the enrichment found over them."""

    title: str | None
    chunks: list[dict[str, Any]]
    enrichment: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class ChunkSettings:
    # 1000 characters is about the 256 word pieces all-MiniLM-L6-v2 reads; longer is truncated.
    max_characters: int = 1000
    new_after_n_chars: int = 800
    # 0 keeps each section on its own: merging small sections would give a chunk the wrong heading.
    combine_text_under_n_chars: int = 0


def _to_unstructured(elements: Sequence[PageElement]) -> list[Element]:
    """Unstructured elements, each carrying its heading path and nearest heading anchor."""
    from unstructured.documents.elements import ElementMetadata

    stack: list[PageElement] = []
    out: list[Element] = []
    for element in elements:
        if element.kind == "title":
            stack = [h for h in stack if h.level < element.level] + [element]
        meta = ElementMetadata(
            text_as_html=element.html,
            category_depth=element.level - 1 if element.kind == "title" else None,
            page_number=element.page_number,
        )
        meta.section_path = [h.text for h in stack]
        meta.anchor = next((h.anchor for h in reversed(stack) if h.anchor), None)
        out.append(element_types()[element.kind](text=element.text, metadata=meta))
    return out


def chunk_page(
    elements: Sequence[PageElement],
    *,
    source_key: str,
    source_url: str,
    page_url: str,
    title: str | None,
    settings: ChunkSettings | None = None,
) -> list[Chunk]:
    """Chunks in reading order, each with its section path and a deep link into ``page_url``."""
    quiet_unstructured()
    from unstructured.chunking.title import chunk_by_title
    from unstructured.documents.elements import Table, Title

    settings = settings or ChunkSettings()
    if not elements:
        return []
    pieces = chunk_by_title(
        _to_unstructured(elements),
        max_characters=settings.max_characters,
        new_after_n_chars=settings.new_after_n_chars,
        combine_text_under_n_chars=settings.combine_text_under_n_chars,
        include_orig_elements=True,
        # A PDF's chunk stays on one page, so the page its link opens holds all of it.
        multipage_sections=False,
    )
    drafts: list[tuple[str, list[Element], str | None]] = []
    pending_heading = ""
    for piece in pieces:
        originals = list(piece.metadata.orig_elements or [])
        if originals and all(isinstance(o, Title) for o in originals):
            # A heading alone is no answer to a query: carry it into the next chunk's text.
            pending_heading = f"{pending_heading}{piece.text}\n\n"
            continue
        html = piece.metadata.text_as_html if isinstance(piece, Table) else None
        drafts.append((pending_heading + piece.text, originals, html))
        pending_heading = ""
    if pending_heading and drafts:
        text, originals, html = drafts[-1]
        drafts[-1] = (text + "\n\n" + pending_heading.strip(), originals, html)

    sections = []
    for _, originals, _ in drafts:
        body = next((o for o in originals if not isinstance(o, Title)), originals[0])
        sections.append(
            (
                SECTION_SEPARATOR.join(getattr(body.metadata, "section_path", None) or []) or None,
                getattr(body.metadata, "anchor", None),
                body.text,
                body.metadata.page_number,
            )
        )
    ids = assign_chunk_ids(
        [
            f"{section}\n{draft[0]}"
            for (section, _, _, _), draft in zip(sections, drafts, strict=True)
        ]
    )
    base = page_url.split("#")[0]
    chunks = []
    for chunk_id, (text, _, html), (section, anchor, first_text, page) in zip(
        ids, drafts, sections, strict=True
    ):
        link = _deep_link(base, anchor, first_text, page)
        chunks.append(
            Chunk(
                chunk_id=chunk_id,
                source_key=source_key,
                source_url=source_url,
                kind="web",
                text=text,
                deep_link=link,
                content_sha256=sha256_text(
                    embedding_text({"title": title, "section": section, "text": text})
                ),
                title=title,
                section=section,
                table_html=html,
                page_number=page,
            )
        )
    return chunks


def _deep_link(base: str, anchor: str | None, first_text: str, page: int | None) -> str:
    """Where a chunk starts: its PDF page (``#page=N``, which PDF viewers open at), else its
    heading's id, else a text fragment of its first words."""
    if page is not None:
        return f"{base}#page={page}"
    return f"{base}#{anchor}" if anchor else text_fragment(base, first_text)


def web_chunks_record(
    key: str, page: PageElementsRecord, settings: ChunkSettings | None = None
) -> WebChunksRecord:
    """The ``web_chunks`` record of partition ``key``'s page elements."""
    chunks = chunk_page(
        [PageElement.from_record(e) for e in page["elements"]],
        source_key=key,
        source_url=page["source_url"],
        page_url=page.get("page_url") or page["source_url"],
        title=page.get("title"),
        settings=settings,
    )
    return {
        "status": Status.OK,
        "source_url": page["source_url"],
        "title": page.get("title"),
        "chunks": [c.record() for c in chunks],
    }
