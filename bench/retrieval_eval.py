"""Retrieval quality on real pages: the eval articles ingested through the pipeline, each query
scored in the three search modes and against a naive anchor, side by side in one run.

    .venv/bin/python bench/retrieval_eval.py [--eval-dir DIR] [--queries FILE] [--reuse DIR]

DIR is laid out like ../shared/eval/web-articles/ (ground-truth.json and html/<id>.html.gz);
FILE holds one JSON query a line with its ``page_id`` and ``answer`` (the exact passage that
answers it), like ../shared/eval/web-queries.jsonl. The pages are served decompressed from
127.0.0.1 and go through `media_assets.ingest.ingest` with the default settings (robots honoured,
Chromium, default chunking, the default embedder and index), in a fresh DAGSTER_HOME and data
folder.

``--reuse DIR`` keeps that state in DIR and serves the pages on the same port next time, so the
URLs and partitions stay the same: when the code that makes chunks, vectors or the text index has
not changed since, the stored index is searched as it is (for iterating on ranking); when it has,
the ingest runs again with those stages' code versions changed, which re-renders nothing.

Scores (../shared/eval/SOURCES.md): the right page in the top 5; a result from the right page whose
chunk holds the answer (80 % of its words and a run of 6 of them in order) at rank 1 and in the
top 5; MRR@10 of that passage. The anchor: trafilatura text of the raw HTML cut into fixed
1,000-character chunks, all-MiniLM-L6-v2 cosine (the project's embedder), top 10.
Last line (hybrid): page_hit5=<> passage_hit5=<> mrr10=<> anchor_passage_hit5=<> anchor_mrr10=<>
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg
import numpy as np

from bench.common import DEFAULT_EVAL, ROOT
from media_assets.quality import RetrievalScores, holds_passage, retrieval_scores
from media_assets.search import search
from resources import build_resources
from resources.embedder import Embedder

MODES = ("hybrid", "vector", "text")
ANCHOR_CHARS = 1000
TOP = 10
# What makes the stored chunks, vectors and text index: a change here means ingesting again.
INGEST_CODE = (
    "media_assets/web/extract.py",
    "media_assets/web/chunk.py",
    "media_assets/chunks.py",
    "media_assets/assets/tail.py",
    "resources/embedder.py",
)
# Stages after rendering, whose code versions a changed INGEST_CODE replaces.
LATER_STAGES = ("page_elements", "web_chunks", "web_embeddings", "web_index_rows")


def ingest_fingerprint() -> str:
    from resources.index import FTS_OPTIONS

    digest = hashlib.sha256(repr(sorted(FTS_OPTIONS.items())).encode())
    for name in INGEST_CODE:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def page_path(page_id: str) -> str:
    return f"/{page_id}.html"


def ingest_pages(
    eval_dir: Path, page_ids: list[str], work: Path, reuse: bool
) -> tuple[dict[str, str], str]:
    """The pages ingested into ``work`` (or found there): the pipeline's environment and what
    was done ("ingested", "re-ingested", "reused")."""
    from media_assets.definitions import build_definitions
    from media_assets.demo.server import gzip_page_hook, serve
    from media_assets.ingest import ingest
    from media_assets.instance import ensure_local_instance

    state_file = work / "state.json"
    state = json.loads(state_file.read_text()) if reuse and state_file.is_file() else {}
    fingerprint = ingest_fingerprint()
    env = {"MEDIA_ASSETS_DATA": str(work / "data"), "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1"}
    if state and state.get("pages") != page_ids:
        raise SystemExit(f"{work} holds an ingest of other pages: reuse another folder")
    if state.get("fingerprint") == fingerprint:
        return env, "reused"
    if state:
        # The rendered pages stay; every later stage runs again under a new code version.
        env["MEDIA_ASSETS_CODE_VERSIONS"] = ",".join(
            f"{stage}=bench-{fingerprint}" for stage in LATER_STAGES
        )
    site_dir = work / "site"
    site_dir.mkdir(parents=True, exist_ok=True)
    # Robots are checked as for any site: this one allows everything.
    (site_dir / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    pages = {page_path(p): eval_dir / "html" / f"{p}.html.gz" for p in page_ids}
    home = work / "dagster_home"
    with ExitStack() as stack:
        # The same port as before: the URLs, and so the partitions, stay the same.
        try:
            site = stack.enter_context(serve(site_dir, port=state.get("port", 0)))
        except OSError as exc:
            raise SystemExit(f"the stored ingest's port is taken ({exc})") from exc
        site.add_hook(gzip_page_hook(pages))
        manifest = work / "manifest.jsonl"
        manifest.write_text("".join(json.dumps({"url": site.base_url + p}) + "\n" for p in pages))
        os.environ["DAGSTER_HOME"] = str(home)
        ensure_local_instance(home)  # as the command line sets one up
        defs = build_definitions(env)
        started = time.perf_counter()
        with dg.DagsterInstance.get() as instance:
            report = ingest(manifest, defs, instance, force=bool(state))
        statuses = report.statuses.get("web", Counter())
        print(
            f"ingest: {len(page_ids)} pages in {time.perf_counter() - started:.1f} s, "
            + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items()))
        )
        port = int(site.base_url.rsplit(":", 1)[1])
    done = "re-ingested" if state else "ingested"
    # An ingest that lost pages is not reused as it is: the next run tries them again.
    complete = statuses["indexed"] == len(page_ids)
    state_file.write_text(
        json.dumps(
            {"pages": page_ids, "fingerprint": fingerprint if complete else None, "port": port}
        )
    )
    return env, done


def anchor_rankings(
    eval_dir: Path, page_ids: list[str], queries: list[dict[str, Any]], embedder: Embedder
) -> list[list[tuple[str, str]]]:
    """Top results of the naive anchor for each query: fixed cuts of trafilatura's text."""
    import trafilatura

    chunks: list[tuple[str, str]] = []
    for page_id in page_ids:
        html = gzip.decompress((eval_dir / "html" / f"{page_id}.html.gz").read_bytes())
        text = trafilatura.extract(html.decode("utf-8", errors="replace")) or ""
        chunks += [(page_id, text[i : i + ANCHOR_CHARS]) for i in range(0, len(text), ANCHOR_CHARS)]
    vectors = embedder.embed_documents([text for _, text in chunks])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rankings = []
    for query in queries:
        q = embedder.embed_query(query["query"])
        order = np.argsort(-(vectors @ (q / np.linalg.norm(q))))[:TOP]
        rankings.append([chunks[i] for i in order])
    return rankings


def line(name: str, scores: RetrievalScores) -> str:
    return (
        f"{name:<7} page_hit5={scores.page_hit5:.2f} passage_hit1={scores.passage_hit1:.2f} "
        f"passage_hit5={scores.passage_hit5:.2f} mrr10={scores.mrr10:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL / "web-articles")
    parser.add_argument("--queries", type=Path, default=DEFAULT_EVAL / "web-queries.jsonl")
    parser.add_argument(
        "--reuse", type=Path, help="keep the ingested state here and reuse it while it is current"
    )
    parser.add_argument("--pages", type=int, help="only the first N pages (sorted by id)")
    parser.add_argument(
        "--misses",
        action="store_true",
        help="list the queries whose passage hybrid does not rank first (H: the passage, *: the "
        "right page, .: another page)",
    )
    args = parser.parse_args()
    truth_file = args.eval_dir / "ground-truth.json"
    if not truth_file.is_file() or not args.queries.is_file():
        missing = truth_file if not truth_file.is_file() else args.queries
        print(f"skipped: {missing} not found (evaluation data is not shipped with the repo)")
        return 0
    page_ids = sorted(json.loads(truth_file.read_text()))[: args.pages]
    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    queries = [q for q in queries if q["page_id"] in page_ids]

    with ExitStack() as stack:
        if args.reuse:
            work = args.reuse.absolute()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env, done = ingest_pages(args.eval_dir, page_ids, work, reuse=bool(args.reuse))
        embedder = build_resources(env)["embedder"]
        # Which page a result is from: its URL's path names the page.
        page_of = {page_path(p): p for p in page_ids}
        rows = build_resources(env)["vector_index"].rows()
        print(
            f"index ({done}): {len(rows)} chunks from {len({r['source_key'] for r in rows})} of "
            f"{len(page_ids)} pages; {len(queries)} queries"
        )
        scores: dict[str, RetrievalScores] = {}
        per_query: dict[str, list[float]] = {}  # reciprocal rank of the passage, per query
        embedder.embed_query("warm up")  # the model loads once, before any mode is timed
        hybrid_rankings: list[list[tuple[str, str]]] = []
        relevance: tuple[list[float], list[float]] = ([], [])
        for mode in MODES:
            # A fresh index resource per mode: each starts with nothing cached.
            index = build_resources(env)["vector_index"]
            started = time.perf_counter()
            rankings = []
            answers, others = [], []  # relevance of the answering chunk, of another page's best
            for query in queries:
                results = search(query["query"], index, embedder, k=TOP, mode=mode)
                ranked = [
                    (page_of.get("/" + r.source_url.split("/", 3)[-1], ""), r.text) for r in results
                ]
                rankings.append((ranked, query["page_id"], query["answer"]))
                right = [page == query["page_id"] for page, _ in ranked]
                answers += [
                    r.score
                    for r, ok in zip(results, right, strict=True)
                    if ok and holds_passage(r.text, query["answer"])
                ][:1]
                others += [r.score for r, ok in zip(results, right, strict=True) if not ok][:1]
            ms = (time.perf_counter() - started) / max(len(queries), 1) * 1000
            scores[mode] = retrieval_scores(rankings)
            per_query[mode] = [retrieval_scores([r]).mrr10 for r in rankings]
            print(f"{line(mode, scores[mode])} ms_per_query={ms:.1f}")
            if mode == "hybrid":
                hybrid_rankings = [ranked for ranked, _, _ in rankings]
                relevance = (answers, others)
        anchor_ranked = anchor_rankings(args.eval_dir, page_ids, queries, embedder)
        anchor_rows = [
            (ranked, q["page_id"], q["answer"])
            for q, ranked in zip(queries, anchor_ranked, strict=True)
        ]
        anchor = retrieval_scores(anchor_rows)
        per_query["anchor"] = [retrieval_scores([r]).mrr10 for r in anchor_rows]
        print(line("anchor", anchor))
    # Whether one relevance threshold serves every query: answers against other pages' best.
    answers, others = (np.asarray(v) for v in relevance)
    print(
        f"hybrid relevance: answering chunk median {np.median(answers):.2f} "
        f"(90 % above {np.quantile(answers, 0.1):.2f}); best chunk of another page median "
        f"{np.median(others):.2f} (90 % below {np.quantile(others, 0.9):.2f})"
    )
    # Paired, query by query: how often hybrid ranks the passage higher or lower than the others.
    for other in ("text", "vector", "anchor"):
        pairs = list(zip(per_query["hybrid"], per_query[other], strict=True))
        better = sum(h > o for h, o in pairs)
        worse = sum(h < o for h, o in pairs)
        print(f"hybrid vs {other}: passage ranked higher for {better} queries, lower for {worse}")
    if args.misses:
        for query, ranked, rr in zip(queries, hybrid_rankings, per_query["hybrid"], strict=True):
            if rr < 1:
                marks = " ".join(
                    ("H" if holds_passage(text, query["answer"]) else "*")
                    if page == query["page_id"]
                    else "."
                    for page, text in ranked
                )
                print(f"miss at 1: {query['id']} [{marks}] {query['query']}")
    hybrid = scores["hybrid"]
    print(
        f"page_hit5={hybrid.page_hit5:.2f} passage_hit5={hybrid.passage_hit5:.2f} "
        f"mrr10={hybrid.mrr10:.3f} anchor_passage_hit5={anchor.passage_hit5:.2f} "
        f"anchor_mrr10={anchor.mrr10:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
