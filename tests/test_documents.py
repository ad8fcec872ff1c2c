"""Documents through the web chain: PDF, plain text and Markdown served from 127.0.0.1 are indexed
in one Dagster batch beside an HTML page, with page numbers and ``#page=N`` links for the PDF and
the heading path for Markdown; an image and an archive in the same batch end as
``unsupported_content_type`` naming their type, without costing the others anything.

The PDF is made at test time by Chromium (``page.pdf()``), three pages with a sentence each.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer
from media_assets.ingest import IngestReport, ingest
from media_assets.search import search
from media_assets.web.documents import (
    DocumentError,
    document_elements,
    document_format,
    markdown_elements,
    text_elements,
)
from media_assets.web.render import RenderSettings, render_batch
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from tests.helpers import CHROMIUM, needs_chromium, write_manifest

PAGE_SENTENCES = {
    1: "Honey bees forage in clover meadows during the first warm weeks of spring.",
    2: "Winter bees form a tight cluster and shiver their flight muscles to keep the queen warm.",
    3: "Almond orchards depend on rented hives carried in by lorry for a few weeks of bloom.",
}
PDF_HTML = "".join(
    f"<h2>Chapter {page}</h2><p>{sentence}</p>"
    + ("<div style='page-break-after: always'></div>" if page < 3 else "")
    for page, sentence in PAGE_SENTENCES.items()
)
MARKDOWN = """# Beekeeping field guide

Beekeepers open each colony once a week from April to July.

## Hives

### Langstroth hives

A Langstroth hive stacks movable frames spaced by the bee space of about eight millimetres.

## Swarms

A swarm hangs from a branch while its scouts dance for a new home.
"""
NOTES_MD = """# Apiary notes

## Varroa

Sugar roll counts above three mites per hundred bees call for treatment in August.
"""
TEXT = (
    "Tide tables are computed from harmonic constituents measured over a year.\n"
    "Each constituent is a wave\nwith its own period.\n\n"
    "Spring tides follow new and full moon; neap tides follow the quarters.\n"
)
PLAIN = "text/plain; charset=utf-8"
RUNNING_TITLE = "The apiary almanac"
PDF_TITLE = "Apiary year book"


def make_pdf(html: str) -> bytes:
    """A PDF of ``html`` printed by Chromium: A5, a running title at the top of each page and
    "Page N of M" at the bottom."""
    from playwright.async_api import async_playwright

    async def render() -> bytes:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = await browser.new_page()
            await page.set_content(f"<html><head><title>{PDF_TITLE}</title></head>{html}</html>")
            margin = {"top": "2cm", "bottom": "2cm", "left": "1.5cm", "right": "1.5cm"}
            small = "<div style='font-size:9px;width:100%;text-align:center'>{}</div>"
            data = await page.pdf(
                format="A5",
                margin=margin,
                display_header_footer=True,
                header_template=small.format(RUNNING_TITLE),
                footer_template=small.format(
                    "Page <span class='pageNumber'></span> of <span class='totalPages'></span>"
                ),
            )
            await browser.close()
            return data

    return asyncio.run(render())


@dataclass
class Batch:
    site: SiteServer
    defs: dg.Definitions
    report: IngestReport
    pdf: bytes

    def url(self, path: str) -> str:
        return f"{self.site.base_url}{path}"

    def key(self, path: str) -> str:
        return partition_key(self.url(path))

    def record(self, asset: str, path: str) -> dict:
        store = self.defs.resources["object_store"]
        return ArtifactStore(store, dg.AssetKey(asset), {}).read(self.key(path))

    def chunks(self, path: str) -> list[dict]:
        return self.record("web_chunks", path)["chunks"]


@pytest.fixture(scope="module")
def batch(
    module_site: SiteServer,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> Batch:
    pdf = make_pdf(PDF_HTML)
    answers = {
        "/files/bees.pdf": (200, {"Content-Type": "application/pdf"}, pdf),
        # Sent as a download: Chromium starts a download instead of showing it.
        "/files/get?id=7": (
            200,
            {
                "Content-Type": "application/pdf",
                "Content-Disposition": 'attachment; filename="bees.pdf"',
            },
            pdf,
        ),
        # A page that moves on to the PDF (a meta refresh): the PDF is what is indexed.
        "/files/latest": (
            200,
            {"Content-Type": "text/html; charset=utf-8"},
            b"<html><head><meta http-equiv=refresh content='0;url=/files/bees.pdf'></head></html>",
        ),
        "/files/tides.txt": (200, {"Content-Type": PLAIN}, TEXT.encode()),
        "/files/guide": (200, {"Content-Type": "text/markdown"}, MARKDOWN.encode()),
        "/files/notes.md": (200, {"Content-Type": PLAIN}, NOTES_MD.encode()),
        "/files/logo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(64)),
        "/files/site.zip": (200, {"Content-Type": "application/zip"}, b"PK\x03\x04" + bytes(64)),
    }
    module_site.add_hook(lambda path: answers.get(path))
    urls = [f"{module_site.base_url}{p}" for p in [*answers, "/docs/getting-started.html"]]
    manifest = write_manifest(module_tmp / "documents.jsonl", urls, kind="web")
    defs = build_definitions(module_env)
    return Batch(module_site, defs, ingest(manifest, defs, module_instance), pdf)


pytestmark = needs_chromium


def test_documents_are_indexed_and_other_types_fail_alone(batch: Batch) -> None:
    assert batch.report.ok
    assert batch.report.statuses["web"] == Counter({"indexed": 7, "failed": 2})
    assert batch.report.failed_partitions == {
        batch.key("/files/logo.png"),
        batch.key("/files/site.zip"),
    }


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/files/logo.png", "'image/png'"), ("/files/site.zip", "'application/zip'")],
)
def test_an_unindexed_type_is_named_in_its_status(
    batch: Batch, path: str, content_type: str
) -> None:
    render = batch.record("rendered_page", path)
    assert (render["status"], render["error_class"]) == ("failed", "unsupported_content_type")
    assert content_type in render["error"]
    letters = deadletters.for_partition(batch.defs.resources["object_store"], batch.key(path))
    assert letters[-1].error_class == "unsupported_content_type"
    assert content_type in letters[-1].message


@pytest.mark.parametrize(
    ("path", "served_at"),
    [
        ("/files/bees.pdf", "/files/bees.pdf"),
        ("/files/get?id=7", "/files/get?id=7"),
        ("/files/latest", "/files/bees.pdf"),
    ],
)
def test_pdf_chunks_carry_their_page_and_link_to_it(
    batch: Batch, path: str, served_at: str
) -> None:
    render = batch.record("rendered_page", path)
    document = render["document"]
    stored = batch.defs.resources["object_store"].get(document["file"])
    assert document["format"] == "pdf" and stored == batch.pdf
    assert document["sha256"] == hashlib.sha256(batch.pdf).hexdigest()
    assert batch.record("page_elements", path)["title"] == PDF_TITLE  # the PDF's own
    chunks = batch.chunks(path)
    assert [c["page_number"] for c in chunks] == [1, 2, 3]
    for chunk in chunks:
        page = chunk["page_number"]
        assert chunk["deep_link"] == f"{batch.url(served_at)}#page={page}"
        assert PAGE_SENTENCES[page] in chunk["text"]
        assert chunk["section"] == f"Chapter {page}"
        # The running title and page footer are on every page, not in every chunk.
        assert RUNNING_TITLE not in chunk["text"] and "Page " not in chunk["text"]


def test_a_sentence_on_page_two_is_found_on_page_two(batch: Batch) -> None:
    index, embedder = batch.defs.resources["vector_index"], batch.defs.resources["embedder"]
    hits = search("how do winter bees keep the queen warm", index, embedder, k=3)
    pdfs = {batch.key(p) for p in ("/files/bees.pdf", "/files/get?id=7", "/files/latest")}
    assert hits[0].source_key in pdfs
    assert hits[0].deep_link.endswith("#page=2")
    assert PAGE_SENTENCES[2] in hits[0].snippet


def test_markdown_headings_are_the_heading_path(batch: Batch) -> None:
    guide = {c["section"]: c["text"] for c in batch.chunks("/files/guide")}
    assert "bee space" in guide["Beekeeping field guide > Hives > Langstroth hives"]
    assert "scouts dance" in guide["Beekeeping field guide > Swarms"]
    assert batch.record("page_elements", "/files/guide")["title"] == "Beekeeping field guide"
    # A .md file served as text/plain is read as Markdown too.
    (notes,) = batch.chunks("/files/notes.md")
    assert notes["section"] == "Apiary notes > Varroa" and "Sugar roll" in notes["text"]
    assert "#" not in notes["text"]


def test_plain_text_is_indexed_as_its_paragraphs(batch: Batch) -> None:
    (chunk,) = batch.chunks("/files/tides.txt")
    assert "Each constituent is a wave with its own period." in chunk["text"]
    assert "neap tides follow the quarters" in chunk["text"]
    assert chunk["deep_link"].startswith(f"{batch.url('/files/tides.txt')}#:~:text=Tide")
    elements = batch.record("page_elements", "/files/tides.txt")
    assert (elements["format"], elements["title"]) == ("text", "tides.txt")


def test_a_web_page_in_the_same_batch_is_rendered_as_before(batch: Batch) -> None:
    render = batch.record("rendered_page", "/docs/getting-started.html")
    assert render["status"] == "ok" and "document" not in render and render["html_artifact"]
    assert all(c["page_number"] is None for c in batch.chunks("/docs/getting-started.html"))


def test_a_document_over_the_byte_cap_is_stopped_at_it(site: SiteServer) -> None:
    big = b"%PDF-1.4\n" + bytes(1_000_000)

    def answer(path: str) -> tuple[int, dict[str, str], bytes | Iterator[bytes]] | None:
        if path == "/big/declared.pdf":
            return 200, {"Content-Type": "application/pdf"}, big
        if path == "/big/streamed.txt":  # no length declared: counted as it comes
            return 200, {"Content-Type": PLAIN}, iter([big[:500_000], big[500_000:]])
        return None

    site.add_hook(answer)
    settings = RenderSettings(
        executable_path=CHROMIUM,
        allow_hosts=("127.0.0.1",),
        max_page_bytes=200_000,
        navigation_timeout_s=10,
        max_attempts=1,
    )
    urls = [f"{site.base_url}/big/declared.pdf", f"{site.base_url}/big/streamed.txt"]
    for result in render_batch(urls, settings):
        assert (result.status, result.error_class) == ("failed", "too_large"), result.error
        assert "200000-byte cap" in (result.error or "") and result.document is None


# --- reading documents, without a browser -------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "url", "expected"),
    [
        ("application/pdf", "http://h/report", "pdf"),
        ("application/octet-stream", "http://h/files/Report.PDF", "pdf"),
        ("application/octet-stream", "http://h/blob", None),
        ("text/plain; charset=utf-8", "http://h/readme.md", "markdown"),
        ("text/plain", "http://h/readme.txt", "text"),
        ("text/x-markdown", "http://h/x", "markdown"),
        ("image/png", "http://h/a.pdf", None),
        ("text/html", "http://h/a.md", None),
    ],
)
def test_document_format_comes_from_the_type_and_the_name(
    content_type: str, url: str, expected: str | None
) -> None:
    assert document_format(content_type, url) == expected


def test_markdown_keeps_structure_and_drops_markup() -> None:
    elements = markdown_elements(
        "# Top\n\nSome *emphasis* and [a link](http://x) `code`.\n\n"
        "- one\n- two\n\n> said once\n\n```\nprint(1)\n```\n\n| k | v |\n|---|---|\n| a | |\n"
    )
    assert [(e.kind, e.text) for e in elements] == [
        ("title", "Top"),
        ("text", "Some emphasis and a link code."),
        ("list_item", "one"),
        ("list_item", "two"),
        ("quote", "said once"),
        ("code", "print(1)"),
        ("table", "k | v\na | "),
    ]
    assert (
        elements[-1].html
        == "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td></td></tr></table>"
    )


def test_markdown_front_matter_is_not_text() -> None:
    text = "---\ntitle: Hive log\ntags: [bees]\n---\n# Hive log\n\nQueen seen on frame four.\n"
    assert [(e.kind, e.text) for e in markdown_elements(text)] == [
        ("title", "Hive log"),
        ("text", "Queen seen on frame four."),
    ]


def test_a_broken_pdf_is_named_corrupt_not_empty() -> None:
    with pytest.raises(DocumentError, match="the PDF cannot be read") as caught:
        document_elements(b"%PDF-1.4\n" + b"0" * 2000, "pdf")
    assert caught.value.error_class == "corrupt_document"


def test_plain_text_paragraphs_join_wrapped_lines() -> None:
    assert [e.text for e in text_elements("\ufeffOne\nline.\n\n \n\nTwo.")] == ["One line.", "Two."]
