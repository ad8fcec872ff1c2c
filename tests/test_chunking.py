"""Main-content extraction and heading-aware chunks (no browser needed: static HTML)."""

from media_assets.demo.server import SITE_DIR
from media_assets.web.chunk import ChunkSettings, chunk_page
from media_assets.web.extract import extract_elements

URL = "https://example.com/page"


def chunks_of(html: str, settings: ChunkSettings | None = None):
    return chunk_page(
        extract_elements(html, URL),
        source_key="0" * 16,
        source_url=URL,
        page_url=URL,
        title="T",
        settings=settings,
    )


def test_boilerplate_is_left_out_and_structure_kept() -> None:
    elements = extract_elements((SITE_DIR / "news" / "harbour-bridge.html").read_text(), URL)
    text = "\n".join(e.text for e in elements)
    assert "1,400 rivets by hand" in text
    for boilerplate in (
        "We use cookies",
        "Privacy policy",
        "Ferry timetable",
        "Walked across it",
        "Subscribe",
        "Advertisement",
    ):
        assert boilerplate not in text
    titles = [(e.level, e.text, e.anchor) for e in elements if e.kind == "title"]
    assert (2, "Traffic and access", "traffic") in titles


def test_sections_lists_code_and_deep_links() -> None:
    chunks = chunks_of((SITE_DIR / "docs" / "getting-started.html").read_text())
    by_section = {c.section: c for c in chunks}
    wiring = by_section[
        "Getting started with the RG-5 rain gauge > Installation > Wiring the logger"
    ]
    assert wiring.deep_link == f"{URL}#wiring"
    assert "logger start --interval 10m" in wiring.text
    mounting = by_section[
        "Getting started with the RG-5 rain gauge > Installation > Mounting the gauge"
    ]
    assert "Drive the post 40 centimetres" in mounting.text
    assert all(
        c.kind == "web" and c.source_url == URL and len(c.content_sha256) == 64 for c in chunks
    )


def test_table_kept_whole_with_its_html_and_text_fragment_link_without_ids() -> None:
    rows = "".join(f"<tr><th>Property {i}</th><td>Value {i}</td></tr>" for i in range(8))
    html = (
        f"<html><body><article><h1>Spec sheet</h1><p>{'Intro sentence here. ' * 12}</p>"
        f"<h2>Specifications</h2><table>{rows}</table></article></body></html>"
    )
    chunks = chunks_of(html)
    (table,) = [c for c in chunks if c.table_html]
    assert table.text.startswith("Specifications")
    assert all(f"Property {i} | Value {i}" in table.text for i in range(8))
    assert table.table_html.count("<tr>") == 8
    assert "#:~:text=" in chunks[0].deep_link and "Intro%20sentence" in chunks[0].deep_link


def test_size_bounds_split_long_sections() -> None:
    paragraphs = "".join(
        f"<p>Paragraph {i} " + "lorem ipsum dolor sit amet " * 12 + "</p>" for i in range(20)
    )
    html = f"<html><body><article><h1>Long</h1>{paragraphs}</article></body></html>"
    chunks = chunks_of(html, ChunkSettings(max_characters=800, new_after_n_chars=600))
    assert len(chunks) > 5
    assert all(len(c.text) <= 800 for c in chunks)
    assert all(c.section == "Long" for c in chunks)


def test_chunk_ids_survive_edits_elsewhere_on_the_page() -> None:
    html = (SITE_DIR / "docs" / "getting-started.html").read_text()
    before = {c.section: c.chunk_id for c in chunks_of(html)}
    after = {c.section: c.chunk_id for c in chunks_of(html.replace("127 tips", "125 tips"))}
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"Getting started with the RG-5 rain gauge > Calibration"}
