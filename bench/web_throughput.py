"""End-to-end throughput: JS-rendered pages through Dagster (batched runs) vs. a plain script that
calls the same stage functions in one loop, measured in one run on the same pages; then the real
pages of ../shared/eval/web-articles/ end to end (render → index, default settings, fresh state).

    .venv/bin/python bench/web_throughput.py [--pages 100] [--batch-size 50] [--eval-dir DIR]
        [--real-only] [--embed-precision float32|int8]

Both local paths start their own browser, render with the same settings, extract, chunk, embed and
write to their own LanceDB index; the embedding model is loaded once before either is timed. The
real pages are served from 127.0.0.1 as a browser received them; their outside hosts are not
reachable here (look-ups fail), as for the peers in ../shared/peers/crawl4ai_bench.py.
Lines: real_pages=<n> real_indexed=<n> real_render_failures=<n> real_pages_per_s=<v> (when the
eval pages are there), then last: ratio=<dagster time / plain time> pages_per_s=<dagster pages/s>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg
import numpy as np

from bench.common import write_spa_site
from media_assets.assets.tail import index_row
from media_assets.chunks import embedding_text
from media_assets.definitions import build_definitions
from media_assets.demo.server import gzip_page_hook, serve
from media_assets.enrich import classify, enrich_chunks, topic_vectors
from media_assets.ingest import ingest
from media_assets.instance import ensure_local_instance
from media_assets.web.chunk import chunk_page
from media_assets.web.extract import extract_elements
from media_assets.web.render import render_batch
from partitions.keys import partition_key
from resources import build_resources


def plain_loop(urls: list[str], env: dict[str, str]) -> int:
    """The same stages without Dagster: returns the number of rows indexed."""
    res = build_resources(env)
    pages = render_batch(urls, res["browser"].settings(res["fetch_policy"]))
    policy = res["text_enrichment"].policy
    rows = []
    for page in pages:
        key = partition_key(page.requested_url)
        elements = extract_elements(page.html or "", page.final_url)
        chunks = [
            c.record()
            for c in chunk_page(
                elements,
                source_key=key,
                source_url=page.requested_url,
                page_url=page.final_url or page.requested_url,
                title=page.title,
            )
        ]
        # As web_chunks does: entities, keywords and the PII gate before anything is embedded.
        rows += enrich_chunks(chunks, policy).chunks
    # What the embedder reads in the pipeline: each chunk under its title and heading path; then
    # each chunk's content class from its vector, and the row as the index stores it.
    embedder = res["embedder"]
    vectors = np.asarray(embedder.embed_documents([embedding_text(r) for r in rows]))
    classes = classify(vectors, topic_vectors(embedder))
    rows = [
        index_row(r, c, score, embedder.model_id)
        for r, (c, score) in zip(rows, classes, strict=True)
    ]
    keys = sorted({r["source_key"] for r in rows})
    res["vector_index"].replace_sources(rows, vectors, keys)
    return len(rows)


def step_seconds(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """Seconds each step took, summed over the runs (where the Dagster path spends its time)."""
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    totals: dict[str, float] = {}
    for run_id in run_ids:
        started: dict[str, float] = {}
        for record in instance.get_records_for_run(run_id, of_type=kinds).records:
            entry = record.event_log_entry
            step = entry.step_key or "?"
            if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                started[step] = entry.timestamp
            elif step in started:
                totals[step] = totals.get(step, 0.0) + entry.timestamp - started[step]
    return totals


DEFAULT_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval" / "web-articles"


@dataclass
class RealRun:
    pages: int
    indexed: int
    failed: int
    seconds: float
    steps: dict[str, float]


def real_pages(eval_dir: Path, work: Path, batch_size: int, base_env: dict[str, str]) -> RealRun:
    """Ingest the eval pages through Dagster with default settings into a fresh state. Robots on
    (the server has no robots.txt for them)."""
    truth = json.loads((eval_dir / "ground-truth.json").read_text())
    pages = {f"/{key}.html": eval_dir / "html" / f"{key}.html.gz" for key in truth}
    with serve(work / "empty") as site:
        site.add_hook(gzip_page_hook(pages))
        manifest = work / "real.jsonl"
        manifest.write_text("".join(f'{{"url": "{site.base_url}{p}"}}\n' for p in pages))
        env = {**base_env, "MEDIA_ASSETS_DATA": str(work / "real")}
        defs = build_definitions(env)
        with dg.DagsterInstance.get() as instance:
            started = time.perf_counter()
            report = ingest(manifest, defs, instance, batch_size=batch_size)
            seconds = time.perf_counter() - started
            steps = step_seconds(instance, [run_id for run_id, _ in report.runs])
    web = report.statuses.get("web", {})
    failed = sum(n for status, n in web.items() if status in ("failed", "missing"))
    return RealRun(len(pages), web.get("indexed", 0), failed, seconds, steps)


def print_steps(steps: dict[str, float], total_s: float) -> None:
    print(
        "dagster steps: "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items())
        + f"; outside steps {total_s - sum(steps.values()):.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--real-only", action="store_true", help="only the eval pages")
    parser.add_argument(
        "--embed-precision",
        choices=("float32", "int8"),
        help="MEDIA_ASSETS_EMBED_PRECISION for both paths (default: the embedder's)",
    )
    args = parser.parse_args()
    # Every path's settings: pages on loopback, and the embedding precision when asked.
    base_env = {"MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1"}
    if args.embed_precision:
        base_env["MEDIA_ASSETS_EMBED_PRECISION"] = args.embed_precision
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "empty").mkdir()
        os.environ["DAGSTER_HOME"] = str(work / "dagster_home")
        ensure_local_instance(work / "dagster_home")  # as the command line sets one up
        build_resources({**base_env, "MEDIA_ASSETS_DATA": str(work / "warm")})[
            "embedder"
        ].embed_documents(["warm up"])  # load once
        real_ok = True
        if (args.eval_dir / "ground-truth.json").is_file():
            real = real_pages(args.eval_dir, work, args.batch_size, base_env)
            print_steps(real.steps, real.seconds)
            print(
                f"real_pages={real.pages} real_indexed={real.indexed} "
                f"real_render_failures={real.failed} real_s={real.seconds:.1f} "
                f"real_pages_per_s={real.pages / real.seconds:.2f}",
                flush=True,
            )
            real_ok = real.failed == 0
        else:
            print(f"real pages skipped: {args.eval_dir} not found (eval data is not shipped)")
        if args.real_only:
            return 0 if real_ok else 1
        paths = write_spa_site(work / "site", args.pages)
        with serve(work / "site") as site:
            urls = [site.base_url + p for p in paths]
            manifest = work / "manifest.jsonl"
            manifest.write_text("".join(f'{{"url": "{u}"}}\n' for u in urls))
            # Untimed: the enrichment's models load on first use, once per process for both.
            plain_loop(urls[:2], {**base_env, "MEDIA_ASSETS_DATA": str(work / "warm")})

            started = time.perf_counter()
            rows = plain_loop(urls, {**base_env, "MEDIA_ASSETS_DATA": str(work / "plain")})
            plain_s = time.perf_counter() - started

            defs = build_definitions({**base_env, "MEDIA_ASSETS_DATA": str(work / "dagster")})
            with dg.DagsterInstance.get() as instance:
                started = time.perf_counter()
                report = ingest(manifest, defs, instance, batch_size=args.batch_size)
                dagster_s = time.perf_counter() - started
                steps = step_seconds(instance, [run_id for run_id, _ in report.runs])
            indexed = report.statuses["web"]["indexed"]
    print(
        f"plain loop: {args.pages} pages, {rows} rows in {plain_s:.1f} s "
        f"({args.pages / plain_s:.2f} pages/s)"
    )
    print(
        f"dagster: {len(report.runs)} runs, {indexed} pages indexed in {dagster_s:.1f} s "
        f"({args.pages / dagster_s:.2f} pages/s)"
    )
    print_steps(steps, dagster_s)
    print(f"ratio={dagster_s / plain_s:.3f} pages_per_s={args.pages / dagster_s:.2f}")
    return 0 if indexed == args.pages and real_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
