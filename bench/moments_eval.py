"""Moment search on the dev fixture (``../shared/eval/video-moments/``), through the real pipeline.

    .venv/bin/python bench/moments_eval.py [--eval DIR] [--out RESULTS.json] [--k 3]

The fixture's ``talk.mp4`` is served from 127.0.0.1 and ingested as a video URL through Dagster
on the embedded defaults (download, speech recognition, speakers, key frames, OCR, chapters,
chunks, then ``video_moments`` and ``video_moments_index``); each query of ``queries.json`` is
answered by ``find_moments`` and the moments are written in ``score.py``'s format, which the
fixture's own ``score.py`` scores (top moment's temporal IoU with the expected interval; a hit
at 0.5 or more). Nothing is copied out of the fixture.
Last line: moments_hit1=<hits/queries> mean_iou=<mean top-1 IoU>
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg

from bench.common import DEFAULT_EVAL
from media_assets.definitions import build_definitions
from media_assets.demo.server import folder_hook, serve
from media_assets.ingest import ingest
from media_assets.instance import local_instance_config
from media_assets.moments import MomentQuery, find_moments

FIXTURE = "video-moments"


@dataclass
class Evaluation:
    results: dict[str, list[dict[str, float]]]  # query id -> moments, best first (score.py's)
    scores: str  # score.py's report, one line per query, then the summary line
    hit1: float
    mean_iou: float
    ingest_s: float
    query_ms: list[float]


def ingest_talk(fixture: Path, work: Path) -> tuple[dg.Definitions, float]:
    """Serve the fixture's talk on 127.0.0.1 and ingest it as a video; the definitions whose
    resources (object store, moments index) now hold it, and the seconds the ingest took."""
    (work / "site").mkdir(parents=True, exist_ok=True)
    env = {"MEDIA_ASSETS_DATA": str(work / "data"), "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1"}
    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    defs = build_definitions(env)
    with (
        serve(work / "site") as site,
        dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as instance,
    ):
        site.add_hook(folder_hook("/media/", fixture))
        manifest = work / "manifest.jsonl"
        url = f"{site.base_url}/media/talk.mp4"
        manifest.write_text(json.dumps({"url": url, "kind": "video"}) + "\n")
        started = time.perf_counter()
        report = ingest(manifest, defs, instance)
        seconds = time.perf_counter() - started
    if report.statuses.get("video", {}).get("indexed") != 1:
        raise RuntimeError(f"the talk was not indexed: {dict(report.statuses)}")
    return defs, seconds


def answer(
    queries: list[dict], defs: dg.Definitions, k: int
) -> tuple[dict[str, list[dict[str, float]]], list[float]]:
    """Each query's moments in score.py's format, and the milliseconds each query took."""
    index, embedder = defs.resources["moments_index"], defs.resources["embedder"]
    embedder.embed_query("warm up")  # the model loads once, not inside the first query's time
    results, latencies = {}, []
    for q in queries:
        query = MomentQuery(
            said=q.get("said"), on_screen=q.get("on_screen"), speaker=q.get("speaker")
        )
        started = time.perf_counter()
        moments = find_moments(query, index, embedder, k=k)
        latencies.append((time.perf_counter() - started) * 1000)
        results[q["id"]] = [{"start_s": m.start_s, "end_s": m.end_s} for m in moments]
    return results, latencies


def evaluate(fixture: Path, work: Path, k: int = 3, out: Path | None = None) -> Evaluation:
    """Ingest, answer and score: the whole evaluation, in ``work``."""
    queries = json.loads((fixture / "queries.json").read_text())
    defs, ingest_s = ingest_talk(fixture, work)
    results, latencies = answer(queries, defs, k)
    out = out or work / "results.json"
    out.write_text(json.dumps(results, indent=1))
    scored = subprocess.run(
        [sys.executable, str(fixture / "score.py"), str(fixture / "queries.json"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = dict(part.split("=") for part in scored.strip().splitlines()[-1].split())
    return Evaluation(
        results,
        scored,
        float(summary["moments_hit1"]),
        float(summary["mean_iou"]),
        ingest_s,
        latencies,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--out", type=Path, help="where to keep the results (score.py's format)")
    parser.add_argument("--k", type=int, default=3, help="moments per query")
    args = parser.parse_args()
    fixture = args.eval / FIXTURE
    if not (fixture / "talk.mp4").is_file():
        raise SystemExit(f"no fixture at {fixture}: the eval data is not shipped with the repo")
    with tempfile.TemporaryDirectory(prefix="bench-moments-") as tmp:
        result = evaluate(fixture, Path(tmp), args.k, args.out)
    print(result.scores.rstrip().rsplit("\n", 1)[0])
    print(
        f"ingest (whole chain, one video) {result.ingest_s:.1f} s; query p50 "
        f"{statistics.median(result.query_ms):.0f} ms, max {max(result.query_ms):.0f} ms"
    )
    print(f"moments_hit1={result.hit1:.3f} mean_iou={result.mean_iou:.3f}")


if __name__ == "__main__":
    main()
