"""The PII gate on its planted corpus (media_assets/demo/pii_corpus.py), through the real pipeline.

    .venv/bin/python bench/pii_eval.py [--policy redact]

Two pages and a captioned call, served from 127.0.0.1, are ingested through Dagster with
``MEDIA_ASSETS_PII`` set (default ``redact``); the index is then read back: a planted item is
caught when no indexed text holds it any more, and every placeholder beyond the planted items
caught is a false redaction (harmless text taken for personal data).
Last line: planted=<n> caught=<n> false_redactions=<n>
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

from media_assets import pii
from media_assets.definitions import build_definitions
from media_assets.demo import pii_corpus
from media_assets.demo.server import serve
from media_assets.ingest import ingest
from media_assets.instance import local_instance_config
from partitions.keys import partition_key


def evaluate(policy: str, work: Path) -> tuple[pii_corpus.Score, pii_corpus.Score, float]:
    """Scores of the chunk index (pages and call) and of the moments index (the call), and the
    ingest's seconds."""
    site_dir = pii_corpus.write_site(work / "site")
    env = {
        "MEDIA_ASSETS_DATA": str(work / "data"),
        "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
        pii.PII_ENV: policy,
    }
    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    defs = build_definitions(env)
    with (
        serve(site_dir) as site,
        dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as instance,
    ):
        urls = {p: site.base_url + p for p in [*pii_corpus.PAGES, pii_corpus.VIDEO_PAGE]}
        manifest = work / "manifest.jsonl"
        manifest.write_text(
            "".join(
                json.dumps({"url": u, "kind": "video" if p == pii_corpus.VIDEO_PAGE else "web"})
                + "\n"
                for p, u in urls.items()
            )
        )
        started = time.perf_counter()
        report = ingest(manifest, defs, instance)
        seconds = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"the corpus was not ingested: {dict(report.statuses)}")
    chunks = defs.resources["vector_index"].rows()  # type: ignore[union-attr]
    texts = [str(r.get(f) or "") for r in chunks for f in ("text", "title", "section")]
    made = sum(len(pii.PLACEHOLDER.findall(str(r["text"]))) for r in chunks)
    moments = defs.resources["moments_index"].rows(  # type: ignore[union-attr]
        partition_key(urls[pii_corpus.VIDEO_PAGE])
    )
    sentences = list(dict.fromkeys(str(r["context"]) for r in moments if r["context"]))
    return (
        pii_corpus.score(texts, placeholders=made),
        pii_corpus.score(
            sentences,
            pii_corpus.SPOKEN_PLANTED,
            placeholders=sum(len(pii.PLACEHOLDER.findall(s)) for s in sentences),
            neighbours=pii_corpus.SPOKEN_NON_PII,
        ),
        seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="redact", choices=["redact", "drop"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pii-eval-") as folder:
        chunks, moments, seconds = evaluate(args.policy, Path(folder))
    print(
        f"ingest of 2 pages and 1 captioned call: {seconds:.1f} s (MEDIA_ASSETS_PII={args.policy})"
    )
    for name, result in (("moments index (the call)", moments), ("chunk index", chunks)):
        missed = ", ".join(f"{p.type} {p.text!r}" for p in result.missed) or "none"
        print(
            f"{name}: {result.line()}; missed: {missed}; neighbours lost: {result.lost or 'none'}"
        )
    print(chunks.line())
    return 0 if not chunks.missed and not chunks.false_redactions else 1


if __name__ == "__main__":
    raise SystemExit(main())
