"""`media-assets`: map URLs to keys and back, ingest a manifest, run the demo, search."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from media_assets.enrich import OTHER_TOPIC, TOPICS

DEMO_PORT = 8765


def _resources() -> dict:
    from resources import build_resources

    return build_resources()


def cmd_key(args: argparse.Namespace) -> int:
    from partitions.keys import InvalidURLError, normalize_url, partition_key

    try:
        print(f"{partition_key(args.url)}\t{normalize_url(args.url)}")
    except InvalidURLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    from media_assets import registry
    from partitions.keys import KEY_LENGTH

    store = _resources()["object_store"]
    key = args.key
    if len(key) == KEY_LENGTH:  # the bare hash, as older keys and logs show it
        known = [s.key for s in registry.all_sources(store) if s.key.endswith(key)]
        key = known[0] if len(known) == 1 else key
    try:
        source = registry.lookup(store, key)
    except registry.UnknownPartitionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{source.url}\t{source.kind}")
    return 0


def _relevance(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"a relevance lies between 0 and 1, not {value}")
    return number


def cmd_search(args: argparse.Namespace) -> int:
    from media_assets.search import format_result, search

    res = _resources()
    results = search(
        args.query,
        res["vector_index"],
        res["embedder"],
        k=args.k,
        kind=args.kind,
        mode=args.mode,
        min_score=args.min_score,
        entity=getattr(args, "entity", None),
        topic=getattr(args, "topic", None),
    )
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    elif not results and args.min_score > 0:
        print(f"no results with a relevance of at least {args.min_score}")
    elif not results:
        print("no results: is anything indexed yet? (run `make run` or `media-assets ingest`)")
    for rank, result in enumerate(results, start=1):
        if not args.json:
            print(format_result(rank, result))
    return 0


def cmd_moments(args: argparse.Namespace) -> int:
    from media_assets.moments import MomentQuery, find_moments, format_moment

    query = MomentQuery(
        said=args.said, on_screen=args.on_screen, speaker=args.speaker, entity=args.entity
    )
    if not query.conditions:
        print("error: give --said, --on-screen, --speaker or --entity", file=sys.stderr)
        return 2
    res = _resources()
    moments = find_moments(query, res["moments_index"], res["embedder"], k=args.k)
    if args.json:
        print(json.dumps([m.record() for m in moments], indent=1))
        return 0
    if not moments:
        print(
            "no moments where all of that holds: is any video ingested yet? (`media-assets ingest`)"
        )
    for rank, moment in enumerate(moments, start=1):
        print(format_moment(rank, moment))
    return 0


def _instance():
    import dagster as dg

    from media_assets.instance import ensure_local_instance

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path("data/dagster_home").absolute())))
    ensure_local_instance(home)
    return dg.DagsterInstance.get()


def _print_report(report, manifest_path: str) -> None:
    for problem in report.manifest.problems:
        verdict = "skipped" if problem.severity == "error" else "warning:"
        print(f"{verdict} {manifest_path} {problem}")
    for kind, count in report.skipped_kinds.items():
        print(f"{count} {kind} URL(s) wait: the {kind} chain is not part of this code location yet")
    failed_runs = [run_id for run_id, ok in report.runs if not ok]
    print(
        f"runs: {len(report.runs)} ({len(failed_runs)} failed, "
        f"{len(report.unexplained_runs)} not explained by a URL)"
    )
    if report.stale_partitions:
        print(f"{len(report.stale_partitions)} stale URL(s) run again")
    if report.failed_partitions:
        print(
            f"{len(report.failed_partitions)} URL(s) in the dead letters: "
            "`media-assets dead-letters` lists them, `media-assets retry` runs them again"
        )
    for kind, counts in report.statuses.items():
        print(f"{kind}: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))


def cmd_ingest(args: argparse.Namespace) -> int:
    from media_assets.manifest import ManifestError, read_manifest

    path = args.manifest or os.environ.get("MEDIA_ASSETS_MANIFEST")
    if not path:
        print(
            "error: no manifest: pass a .jsonl, .csv or .txt path, or set MEDIA_ASSETS_MANIFEST",
            file=sys.stderr,
        )
        return 2
    try:  # before the definitions load: an unreadable file is reported at once
        manifest, _ = read_manifest(path)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from media_assets.definitions import defs
    from media_assets.ingest import ingest

    report = ingest(
        manifest,
        defs,
        _instance(),
        batch_size=args.batch_size,
        force=args.force,
        refresh=args.refresh,
        stale=args.stale,
    )
    _print_report(report, path)
    return 0 if report.ok else 1


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from media_assets import deadletters

    letters = deadletters.list_all(_resources()["object_store"])
    if args.json:
        print(json.dumps([deadletters.as_dict(d) for d in letters], indent=1))
        return 0
    if not letters:
        print("no dead letters")
    for d in letters:
        print(
            f"{d.partition_key}  {d.asset}  {d.error_class}  attempts={d.attempts}  "
            f"last={d.last_at}\n  {d.url}\n  {d.message}"
        )
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from media_assets.definitions import defs
    from media_assets.ingest import retry_dead_letters

    letters, report = retry_dead_letters(defs, _instance(), asset=args.asset, reason=args.reason)
    print(f"retrying {len(letters)} dead-lettered URL(s)")
    _print_report(report, "dead letters")
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    from media_assets.status import STATUS_KEY, current_status, summary

    store = _resources()["object_store"]
    # The stored table, read again only for URLs with runs or registrations since it was built.
    frame = current_status(store, _instance())
    print(summary(frame))
    print(f"per-URL table: {store.uri(STATUS_KEY)}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve Prometheus metrics computed from the instance and the status table at each scrape."""
    import time

    from media_assets.definitions import defs
    from media_assets.metrics import serve_metrics

    server = serve_metrics(defs, _instance(), args.port)
    print(f"metrics on http://127.0.0.1:{server.server_address[1]}/metrics (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def cmd_prepare_models(args: argparse.Namespace) -> int:
    """Export the embedding model to ONNX now (set-up and image builds), not in the first step."""
    embedder = _resources()["embedder"]
    print(f"{embedder.model_id}: {embedder.dimension} dimensions, ready")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the demo site on 127.0.0.1, ingest its manifest, show a search with its deep link."""
    from media_assets.demo.media import make_demo_media
    from media_assets.demo.server import folder_hook, serve

    media = make_demo_media()  # generated once at set-up; here only if missing
    with serve(port=args.port) as site:
        site.add_hook(folder_hook("/media/", media))
        # The demo site lives on loopback, which the fetch policy refuses unless allow-listed.
        os.environ.setdefault("MEDIA_ASSETS_ALLOW_HOSTS", "127.0.0.1")
        template = (Path(__file__).parent / "demo" / "manifest.jsonl").read_text()
        manifest = Path("data/demo-manifest.jsonl")
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(template.replace("{base}", site.base_url))
        print(f"demo site on {site.base_url}; manifest {manifest}")
        code = cmd_ingest(
            argparse.Namespace(
                manifest=str(manifest),
                batch_size=50,
                force=args.force,
                refresh=args.force,
                stale=False,
            )
        )
    for query, kind in (
        ("how much honey does a colony need in winter", None),
        ("how many colonies per hectare for apple pollination", "video"),
    ):
        print(f'\nexample: media-assets search{" --kind " + kind if kind else ""} "{query}"')
        cmd_search(
            argparse.Namespace(query=query, k=3, kind=kind, mode="hybrid", json=False, min_score=0)
        )
    print(f"\nDagster UI: DAGSTER_HOME={os.environ['DAGSTER_HOME']} make ui")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="media-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("key", help="partition key (and normalized form) of a URL")
    p.add_argument("url")
    p.set_defaults(func=cmd_key)
    p = sub.add_parser("url", help="the URL behind a partition key")
    p.add_argument("key")
    p.set_defaults(func=cmd_url)
    p = sub.add_parser("search", help="search the index")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--kind", choices=["web", "video"])
    p.add_argument("--mode", choices=["hybrid", "vector", "text"], default="hybrid")
    p.add_argument(
        "--json", action="store_true", help="machine-readable output, with each chunk's full text"
    )
    p.add_argument(
        "--min-score",
        type=_relevance,
        default=0.0,
        help="leave out results whose relevance (0 to 1, the same scale for every query) is lower",
    )
    p.add_argument("--entity", help="only chunks naming this entity (its words, any case: 'curie')")
    p.add_argument("--topic", choices=[*TOPICS, OTHER_TOPIC], help="only chunks of this class")
    p.set_defaults(func=cmd_search)
    p = sub.add_parser(
        "moments",
        help="moments of videos where everything given holds at once (said, on screen, speaker, "
        "entity)",
    )
    p.add_argument("--said", help="words heard (a paraphrase will do; numbers either way)")
    p.add_argument("--on-screen", help="words seen on screen (OCR's misread letters tolerated)")
    p.add_argument("--speaker", help="a speaker's name or label (e.g. SPEAKER_01)")
    p.add_argument("--entity", help="a named entity said or shown (its words, any case)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_moments)
    p = sub.add_parser("ingest", help="ingest a manifest through Dagster")
    p.add_argument("manifest", nargs="?")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument(
        "--force",
        action="store_true",
        help="run materialized URLs again (unchanged stages reuse their artifacts)",
    )
    p.add_argument("--refresh", action="store_true", help="fetch pages again (implies --force)")
    p.add_argument(
        "--stale",
        action="store_true",
        help="also run URLs the UI shows stale (a stage's code version or an upstream artifact "
        "changed); unchanged stages reuse their artifacts",
    )
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("dead-letters", help="URLs that failed for good or ran out of retries")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dead_letters)
    p = sub.add_parser("retry", help="run dead-lettered URLs again")
    p.add_argument("--asset", help="only those that failed at this asset, e.g. rendered_page")
    p.add_argument("--reason", help="only those whose error class or message contains this")
    p.set_defaults(func=cmd_retry)
    p = sub.add_parser("status", help="per-URL state of every stage, summed up")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("metrics", help="serve Prometheus metrics on 127.0.0.1")
    p.add_argument("--port", type=int, default=9108)
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("prepare-models", help="export the embedding model to ONNX once")
    p.set_defaults(func=cmd_prepare_models)
    p = sub.add_parser("demo", help="serve the demo site and ingest it")
    p.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", DEMO_PORT)))
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
