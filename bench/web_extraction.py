"""Extraction quality: the text that lands in the index for each eval article, scored with the
shingle F1 of the article-extraction benchmark, against trafilatura's defaults on the same DOM.

    .venv/bin/python bench/web_extraction.py [--eval-dir DIR]

DIR is laid out like ../shared/eval/web-articles/: ground-truth.json and html/<id>.html.gz.
Pages are served from 127.0.0.1 and rendered in Chromium exactly as the pipeline does.
Last line: F1=<value> precision=<value> recall=<value> ms_per_page=<value>
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura

from bench.common import DEFAULT_EVAL
from media_assets.demo.server import gzip_page_hook, serve
from media_assets.quality import shingle_f1
from media_assets.web.chunk import chunk_page
from media_assets.web.extract import extract_elements
from media_assets.web.render import RenderSettings, render_batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL / "web-articles")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    truth_file = args.eval_dir / "ground-truth.json"
    if not truth_file.is_file():
        print(f"skipped: {truth_file} not found (evaluation data is not shipped with the repo)")
        return 0
    truth = json.loads(truth_file.read_text())
    pages = {f"/{key}.html": args.eval_dir / "html" / f"{key}.html.gz" for key in truth}
    settings = RenderSettings(
        executable_path=args.chromium,
        allow_hosts=("127.0.0.1",),
        requests_per_second_per_host=1000.0,
        respect_robots=False,
        # Offline, the pages' outside hosts would only time out: the text needs none of them.
        same_site_subresources_only=True,
    )
    with serve(Path(__file__).parent) as site:
        site.add_hook(gzip_page_hook(pages))
        urls = [f"{site.base_url}{path}" for path in pages]
        started = time.perf_counter()
        rendered = render_batch(urls, settings)
        render_s = time.perf_counter() - started
    ours, baseline = [], []
    extract_s = 0.0
    for key, result in zip(truth, rendered, strict=True):
        reference = truth[key]["articleBody"]
        html = result.html or ""
        t0 = time.perf_counter()
        chunks = chunk_page(
            extract_elements(html, truth[key]["url"]),
            source_key=key[:16],
            source_url=truth[key]["url"],
            page_url=truth[key]["url"],
            title=result.title,
        )
        extract_s += time.perf_counter() - t0
        ours.append(("\n".join(c.text for c in chunks), reference))
        baseline.append((trafilatura.extract(html) or "", reference))
    failed = sum(r.status != "ok" for r in rendered)
    base = shingle_f1(baseline)
    score = shingle_f1(ours)
    ms = (render_s + extract_s) / len(truth) * 1000
    print(
        f"pages={len(truth)} render_failures={failed} render_s={render_s:.1f} "
        f"extract_chunk_ms_per_page={extract_s / len(truth) * 1000:.1f}"
    )
    print(
        f"baseline trafilatura defaults on the same DOM: F1={base.f1:.4f} "
        f"precision={base.precision:.4f} recall={base.recall:.4f}"
    )
    print(f"ratio_f1={score.f1 / base.f1 if base.f1 else 0:.4f}")
    print(
        f"F1={score.f1:.4f} precision={score.precision:.4f} recall={score.recall:.4f} "
        f"ms_per_page={ms:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
