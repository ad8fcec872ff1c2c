"""What a PDF costs the extraction stage, against the same text as an HTML page, in one run.

    .venv/bin/python bench/documents.py [--pages N]

Chromium prints one HTML document (N pages of headings and paragraphs) both as a PDF and as
rendered HTML; the PDF is read by media_assets.web.documents (unstructured, fast strategy), the
HTML by media_assets.web.extract (trafilatura), each twice, and the warm times are compared. The
first PDF in a process also pays for importing unstructured's PDF stack and loading spaCy's
English pipeline (the step that meets a PDF pays it once). Also checks that every page's text
arrived with its page number.
Last line: pages=<n> pdf_cold_s=<s> pdf_s_per_page=<s> html_s_per_page=<s> pdf_vs_html=<ratio>
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media_assets.web import documents
from media_assets.web.extract import extract_elements


def document_html(pages: int, trees: str = "lime") -> str:
    sections = []
    for n in range(1, pages + 1):
        paragraphs = "".join(
            f"<p>Paragraph {k} of section {n}: the colony at hive {n} sent {k * n + 3} foragers "
            f"to the {trees} trees before noon, and returned with pollen on day {k + 1}.</p>"
            for k in range(8)
        )
        brk = "<div style='page-break-after: always'></div>" if n < pages else ""
        sections.append(f"<h2>Section {n}</h2>{paragraphs}{brk}")
    body = "".join(sections)
    return f"<html><head><title>Hive ledger</title></head><body><main>{body}</main></body></html>"


async def print_both(html: str, chromium: str) -> tuple[bytes, str]:
    """``html`` printed as a PDF, and as Chromium rendered it."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page()
        await page.set_content(html)
        margin = {"top": "2cm", "bottom": "2cm", "left": "2cm", "right": "2cm"}
        pdf = await page.pdf(format="A4", margin=margin)
        rendered = await page.content()
        await browser.close()
        return pdf, rendered


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    pdf, rendered = asyncio.run(print_both(document_html(args.pages), args.chromium))
    # Warmed on another text: unstructured caches spaCy's work per text, which would flatter a
    # second run over the same document.
    warm_pdf, warm_html = asyncio.run(print_both(document_html(2, "willow"), args.chromium))

    cold = timed(documents._partitioner)  # imports and the spaCy pipeline, once per process
    documents.pdf_elements(warm_pdf)
    pdf_s = timed(lambda: documents.pdf_elements(pdf))
    extract_elements(warm_html)
    html_s = timed(lambda: extract_elements(rendered))

    elements = documents.pdf_elements(pdf)
    pages = {e.page_number for e in elements}
    missing = [
        n
        for n in range(1, args.pages + 1)
        if f"section {n}:" not in " ".join(e.text for e in elements if e.page_number == n)
    ]
    if pages != set(range(1, args.pages + 1)) or missing:
        print(f"FAILED: pages seen {sorted(p for p in pages if p)}, text missing on {missing}")
        return 1
    n = args.pages
    print(
        f"pages={n} pdf_cold_s={cold:.1f} pdf_s_per_page={pdf_s / n:.3f} "
        f"html_s_per_page={html_s / n:.4f} pdf_vs_html={pdf_s / max(html_s, 1e-9):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
