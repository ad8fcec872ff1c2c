"""Main content of a rendered page, with its structure: headings, paragraphs, lists, tables, code.

trafilatura finds the main content (boilerplate such as navigation, footers, related links, cookie
banners and comments is left out); its XML keeps the structure, which is read back here into
typed elements. Heading ids come from the rendered DOM, since extraction drops attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html import escape
from typing import Any, Literal, NotRequired, TypedDict

import lxml.etree as etree
import lxml.html

from media_assets.records import StageRecord

ElementKind = Literal["title", "text", "list_item", "table", "code", "quote"]
SPACE = re.compile(r"\s+")
HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")


@dataclass
class PageElement:
    kind: ElementKind
    text: str
    level: int = 0  # heading level 1-6 for titles
    html: str | None = None  # tables keep their HTML
    anchor: str | None = None  # id a deep link can point at (headings)
    page_number: int | None = None  # in a PDF: the page it is on (a deep link opens that page)

    def record(self) -> ElementRecord:
        return {k: v for k, v in asdict(self).items() if v not in (None, 0)}  # type: ignore[return-value]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PageElement:
        return cls(**record)


class ElementRecord(TypedDict):
    """A ``PageElement`` in an artifact: fields that are unset (None, 0) are left out."""

    kind: ElementKind
    text: str
    level: NotRequired[int]
    html: NotRequired[str]
    anchor: NotRequired[str]
    page_number: NotRequired[int]


class PageElementsRecord(StageRecord):
    """The ``page_elements`` artifact (schemas/page_elements.json): a page's main content in
    reading order; ``empty`` when there is none."""

    page_url: str | None
    title: str | None
    format: NotRequired[str]  # a document's (pdf, text, markdown); absent for HTML
    elements: list[ElementRecord]


def _clean(text: str) -> str:
    return SPACE.sub(" ", text).strip()


def heading_anchors(html: str) -> dict[str, str]:
    """Map each heading's text to an id a link can target: its own, a child's, or its section's."""
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return {}
    anchors: dict[str, str] = {}
    for heading in root.iter(*HEADING_TAGS):
        text = _clean(heading.text_content()).lower()
        if not text or text in anchors:
            continue
        anchor = heading.get("id")
        if not anchor:
            inner = heading.xpath(".//*[@id]/@id | .//a[@name]/@name")
            anchor = inner[0] if inner else None
        if not anchor:
            parent = heading.getparent()
            first = (
                parent.xpath(
                    "./*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6][1]"
                )
                if parent is not None
                else []
            )
            if parent is not None and parent.get("id") and first and first[0] is heading:
                anchor = parent.get("id")
        if anchor:
            anchors[text] = anchor
    return anchors


def _table(node: etree._Element) -> PageElement | None:
    return table_element(
        [
            (
                [_clean("".join(cell.itertext())) for cell in row.iter("cell")],
                [cell.get("role") == "head" for cell in row.iter("cell")],
            )
            for row in node.iter("row")
        ]
    )


def table_element(rows: list[tuple[list[str], list[bool]]]) -> PageElement | None:
    """A table from its rows, each as (cell texts, whether each cell is a header cell); rows with
    no text are dropped, and a table without any is no table."""
    rows = [(cells, header) for cells, header in rows if any(cells)]
    if not rows:
        return None
    html_rows = "".join(
        "<tr>"
        + "".join(
            f"<{'th' if h else 'td'}>{escape(c)}</{'th' if h else 'td'}>"
            for c, h in zip(cells, header, strict=True)
        )
        + "</tr>"
        for cells, header in rows
    )
    text = "\n".join(" | ".join(cells) for cells, _ in rows)
    return PageElement("table", text, html=f"<table>{html_rows}</table>")


def _walk(node: etree._Element, anchors: dict[str, str], out: list[PageElement]) -> None:
    for child in node:
        tag = child.tag
        if tag == "head":
            text = _clean("".join(child.itertext()))
            rend = child.get("rend") or "h2"
            level = int(rend[1]) if re.fullmatch(r"h[1-6]", rend) else 2
            if text:
                out.append(
                    PageElement("title", text, level=level, anchor=anchors.get(text.lower()))
                )
        elif tag == "list":
            for item in child.iterchildren("item"):
                nested = [n for n in item if n.tag == "list"]
                for n in nested:
                    item.remove(n)
                text = _clean("".join(item.itertext()))
                if text:
                    out.append(PageElement("list_item", text))
                for n in nested:
                    wrapper = etree.Element("wrap")
                    wrapper.append(n)
                    _walk(wrapper, anchors, out)
        elif tag == "table":
            table = _table(child)
            if table:
                out.append(table)
        elif tag in ("code", "quote", "p"):
            raw = "".join(child.itertext())
            text = raw.strip("\n") if tag == "code" else _clean(raw)
            if text:
                out.append(PageElement({"p": "text", "code": "code", "quote": "quote"}[tag], text))
        elif tag == "div":
            _walk(child, anchors, out)


def extract_elements(html: str, url: str | None = None) -> list[PageElement]:
    """Main-content elements of ``html`` in reading order; empty when no content is found."""
    import trafilatura  # ~1 s to import: only the steps that extract pay it

    xml = trafilatura.extract(
        html,
        url=url,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        favor_precision=True,
        with_metadata=False,
    )
    if not xml:
        return []
    root = etree.fromstring(xml.encode("utf-8"))
    main = root.find("main")
    elements: list[PageElement] = []
    if main is not None:
        _walk(main, heading_anchors(html), elements)
    return elements
