"""Cost of the two video paths, one run: the same 5-minute video ingested with captions and
without, through Dagster on the embedded defaults.

    .venv/bin/python bench/video_paths.py [--minutes 5] [--eval DIR]

The talk is generated (espeak-ng voices over ffmpeg slides) with matching WebVTT captions and
served from 127.0.0.1 on two pages: one with a ``<track>``, one without. A short captioned video
is ingested first so both timed runs find Dagster, yt-dlp and the embedding model warm; the
speech and speaker models load inside the fallback run, as they would in production. Bytes are
response bytes the server sent for each path. With ``--eval`` (default ../shared/eval), WER on
jfk.flac and DER on two-speakers.wav are reported too, through the same stage functions.
Last line: time_ratio=<caption/fallback> bytes_ratio=<caption/fallback> rtf=<speech RTF>
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg

from bench.common import DEFAULT_EVAL
from bench.speech_eval import evaluate
from media_assets.definitions import build_definitions
from media_assets.demo.media import POLLINATION_TALK, SWARM_NOTES, make_talk
from media_assets.demo.server import serve
from media_assets.ingest import ingest
from media_assets.instance import local_instance_config
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><video controls src="/talk.mp4">{track}</video></body></html>"""


def run_path(site_url: str, page: str, env: dict[str, str], instance: dg.DagsterInstance,
             server_bytes: dict[str, int], work: Path) -> tuple[float, int, dict]:  # fmt: skip
    url = f"{site_url}/{page}"
    manifest = work / f"{page}.jsonl"
    manifest.write_text(json.dumps({"url": url, "kind": "video"}) + "\n")
    defs = build_definitions(env)
    before = dict(server_bytes)
    started = time.perf_counter()
    report = ingest(manifest, defs, instance)
    seconds = time.perf_counter() - started
    if report.statuses["video"].get("indexed") != 1:
        raise SystemExit(f"{page} was not indexed: {report.statuses}")
    sent = sum(server_bytes.values()) - sum(before.values())
    transcript = ArtifactStore(defs.resources["object_store"], dg.AssetKey("transcript"), {}).read(
        partition_key(url)
    )
    return seconds, sent, transcript


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--eval", type=Path, default=DEFAULT_EVAL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        work = Path(tmp)
        site = work / "site"
        lines = list(POLLINATION_TALK + SWARM_NOTES)
        # about 5 s a line: repeat the script until the talk is long enough
        script = lines * max(1, round(args.minutes * 60 / (5.2 * len(lines))))
        t = time.perf_counter()
        vtt = make_talk(script, site / "talk.mp4")
        make_talk(SWARM_NOTES, site / "warm.mp4")
        print(f"generated the talk in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        (site / "talk.vtt").write_text(vtt)
        (site / "warm.vtt").write_text(vtt)
        track = '<track kind="captions" src="/talk.vtt" srclang="en" label="English">'
        (site / "captioned.html").write_text(PAGE.format(title="Talk (captioned)", track=track))
        (site / "uncaptioned.html").write_text(PAGE.format(title="Talk (no captions)", track=""))
        (site / "warm.html").write_text(
            PAGE.replace("/talk.mp4", "/warm.mp4").format(
                title="Warm-up", track=track.replace("talk.vtt", "warm.vtt")
            )
        )
        env = {"MEDIA_ASSETS_DATA": str(work / "data"), "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1"}
        home = work / "dagster_home"
        home.mkdir()
        with (
            serve(site) as server,
            dg.instance_for_test(
                temp_dir=str(home), overrides=local_instance_config(home)
            ) as instance,
        ):
            run_path(server.base_url, "warm.html", env, instance, server.bytes_sent, work)
            cap_s, cap_b, _ = run_path(
                server.base_url, "captioned.html", env, instance, server.bytes_sent, work
            )
            fb_s, fb_b, transcript = run_path(
                server.base_url, "uncaptioned.html", env, instance, server.bytes_sent, work
            )
    rtf = transcript["seconds"] / transcript["audio_s"]
    print(f"video: {transcript['audio_s']:.0f} s of speech and slides")
    print(f"captions path: {cap_s:.2f} s, {cap_b} bytes fetched")
    print(f"fallback path: {fb_s:.2f} s, {fb_b} bytes fetched (download, speech, speakers, frames)")
    if args.eval.is_dir():
        scores = evaluate(args.eval / "audio" / "jfk.flac", args.eval / "audio" / "jfk.txt", None)
        speakers = evaluate(
            args.eval / "audio" / "two-speakers.wav",
            None,
            args.eval / "audio" / "two-speakers.rttm",
        )
        print(f"jfk.flac WER={scores['WER']}; two-speakers.wav DER={speakers['DER']}")
    else:
        print(f"no eval data at {args.eval}: WER and DER not measured")
    print(f"time_ratio={cap_s / fb_s:.4f} bytes_ratio={cap_b / fb_b:.5f} rtf={rtf:.3f}")


if __name__ == "__main__":
    main()
