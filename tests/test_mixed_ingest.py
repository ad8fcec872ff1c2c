"""A small mixed ingest as an operator meets it, shared by the module: two hosts, one asking for a
Crawl-delay and one whose robots.txt fails; good pages, a 404, a page robots.txt forbids; a
captioned video whose media is downloaded anyway (``always_download``) and a truncated one.

Then the module moves on as an operator would: robots.txt comes back and a plain ingest takes
the URL up again; the 404 page appears and `media-assets retry` runs the dead letters its filters
select. Tests run in file order; each phase's tests say which state they need (``Phases``).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from media_assets import deadletters
from media_assets.assets.status import ingest_status
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer, serve
from media_assets.ingest import IngestReport, ingest
from media_assets.status import STATUS_KEY
from partitions.keys import partition_key
from resources.io_manager import ArtifactStore
from resources.storage import ObjectStore
from tests.helpers import Phases, needs_chromium, run_cli, write_articles

pytestmark = needs_chromium
INGESTED, ROBOTS_BACK = "ingested", "robots.txt back, ingested again"
RETRIED_MEDIA, RETRIED_404 = "retry --asset media", "retry --reason http_client_error"
ROBOTS = "User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n"


@dataclass
class RequestLog:
    """Each request a server saw, with when it arrived (the server's counter has no times)."""

    seen: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, path: str) -> None:  # a hook that answers nothing: the file is served
        with self.lock:
            self.seen.append((time.monotonic(), path.split("?")[0]))

    def times(self, paths: set[str]) -> list[float]:
        with self.lock:
            return sorted(t for t, p in self.seen if p in paths)


@dataclass
class Mixed:
    site: SiteServer  # host A: Crawl-delay 1
    other: SiteServer  # host B: robots.txt answers 503 until ``robots_down`` is cleared
    site_dir: Path
    log: RequestLog  # host A's requests
    robots_down: threading.Event
    env: dict[str, str]  # what `media-assets` runs with, DAGSTER_HOME included
    defs: dg.Definitions
    instance: dg.DagsterInstance
    manifest: Path
    urls: dict[str, str]
    report: IngestReport
    phases: Phases = field(default_factory=lambda: Phases(INGESTED))

    @property
    def store(self) -> ObjectStore:
        return self.defs.resources["object_store"]

    def key(self, name: str) -> str:
        return partition_key(self.urls[name])

    def letters(self) -> dict[tuple[str, str], deadletters.DeadLetter]:
        """Dead letters by (URL name, asset)."""
        names = {self.key(name): name for name in self.urls}
        return {(names[d.partition_key], d.asset): d for d in deadletters.list_all(self.store)}

    def artifact(self, asset: str, name: str) -> dict[str, Any] | None:
        return ArtifactStore(self.store, dg.AssetKey(asset), {}).read_or_none(self.key(name))

    def indexed(self, name: str) -> bool:
        return bool(self.defs.resources["vector_index"].rows(self.key(name)))


@pytest.fixture(scope="module")
def other_host(module_site_dir: Path) -> Iterator[SiteServer]:
    with serve(module_site_dir) as server:
        yield server


@pytest.fixture(scope="module")
def mixed(
    module_site: SiteServer,
    other_host: SiteServer,
    module_site_dir: Path,
    demo_media: Path,
    module_tmp: Path,
    module_env: dict[str, str],
    module_instance: dg.DagsterInstance,
) -> Mixed:
    site, other = module_site, other_host
    write_articles(module_site_dir, 3)  # 0 and 1 on host A, 2 on host B
    (module_site_dir / "robots.txt").write_text(ROBOTS)
    log = RequestLog()
    site.add_hook(log)  # first, so it sees every request
    robots_down = threading.Event()
    robots_down.set()
    unavailable = (503, {"Content-Type": "text/plain"}, b"robots.txt is having a bad day")
    other.add_hook(lambda p: unavailable if p == "/robots.txt" and robots_down.is_set() else None)
    # The captioned video's media: audio only, so no frames to read, just a download.
    audio = (200, {"Content-Type": "video/mp4"}, (demo_media / "swarm-notes.m4a").read_bytes())
    site.add_hook(lambda path: audio if path == "/video/hive-tour.mp4" else None)
    talk = (demo_media / "pollination-talk.mp4").read_bytes()
    cut = (200, {"Content-Type": "video/mp4"}, talk[:20_000])  # truncated: no moov atom
    site.add_hook(lambda path: cut if path == "/cut.mp4" else None)

    a, b = site.base_url, other.base_url
    web = {
        "article-0": f"{a}/article-0.html",
        "article-1": f"{a}/article-1.html",
        "late": f"{a}/late.html",  # 404 now; the page appears before `retry`
        "private": f"{a}/private/internal-notes.html",
        "robots_down": f"{b}/article-2.html",
    }
    video = {"captioned": f"{a}/video/hive-tour.html", "truncated": f"{a}/cut.mp4"}
    manifest = module_tmp / "mixed.jsonl"
    rows = [{"url": u} for u in web.values()] + [
        {"url": u, "kind": "video"} for u in video.values()
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = {
        **module_env,
        "MEDIA_ASSETS_VIDEO_ALWAYS_DOWNLOAD": "true",
        "DAGSTER_HOME": module_instance.root_directory,  # the CLI sees the same runs
    }
    defs = build_definitions(env)
    report = ingest(manifest, defs, module_instance)
    return Mixed(
        site,
        other,
        module_site_dir,
        log,
        robots_down,
        env,
        defs,
        module_instance,
        manifest,
        {**web, **video},
        report,
    )


@pytest.fixture
def ingested(mixed: Mixed) -> Mixed:
    mixed.phases.expect(INGESTED)
    return mixed


def test_good_urls_are_indexed_and_every_failure_is_explained(ingested: Mixed) -> None:
    assert ingested.report.ok
    assert dict(ingested.report.statuses["web"]) == {
        "indexed": 2,
        "failed": 2,
        "blocked_by_robots": 1,
    }
    assert dict(ingested.report.statuses["video"]) == {"indexed": 1, "failed": 1}


def test_crawl_delay_spaces_the_navigations_to_its_host(ingested: Mixed) -> None:
    pages = {"/article-0.html", "/article-1.html", "/late.html"}
    arrivals = ingested.log.times(pages)
    assert len(arrivals) == 3, ingested.log.seen
    # Four tabs render at once: without the Crawl-delay the three arrive 0.1-0.3 s apart (the
    # default 10 requests/s per host). The throttle spaces the starts of navigations; arrivals
    # also carry each navigation's own latency, hence the margin on each gap.
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert all(gap >= 0.75 for gap in gaps) and arrivals[-1] - arrivals[0] >= 1.8, gaps


def test_an_unreadable_robots_txt_means_the_page_is_not_fetched(ingested: Mixed) -> None:
    assert ingested.other.requests["/robots.txt"] >= 1
    assert ingested.other.requests["/article-2.html"] == 0
    letter = ingested.letters()[("robots_down", "rendered_page")]
    assert letter.error_class == "robots_unavailable"
    assert "robots.txt unavailable" in letter.message and "503" in letter.message


def test_robots_unavailable_is_transient(ingested: Mixed) -> None:
    # Settled URLs (failed for good) are left alone by the next ingest; this one is not settled.
    keys = [ingested.key(name) for name in ("robots_down", "late", "private", "truncated")]
    settled = deadletters.settled(ingested.store, keys)
    assert settled == set(keys) - {ingested.key("robots_down")}


def test_always_download_fetches_a_captioned_videos_media(ingested: Mixed) -> None:
    assert ingested.site.requests["/video/hive-tour.mp4"] >= 1
    media = ingested.artifact("media", "captioned")
    assert media is not None and media["path"] == "downloaded"
    assert media["probe"]["audio_codec"] and ingested.store.exists(media["files"]["audio_16k"])


def test_always_download_still_takes_the_transcript_from_the_captions(ingested: Mixed) -> None:
    transcript = ingested.artifact("transcript", "captioned")
    assert transcript is not None and transcript["source"] == "captions"
    assert transcript["text"].startswith("Welcome to the hive tour. Today we open a colony")
    turns = ingested.artifact("speaker_turns", "captioned")
    assert turns is not None and turns["engine"] == "caption voice tags"
    assert turns["speakers"] == ["Mira Okonkwo", "Tomasz Lindqvist"]


def stage_table(text: str, kind: str) -> dict[str, dict[str, int]]:
    """The per-stage counts `media-assets status` prints under a kind's line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{kind}: "))
    header = lines[start + 1].split()
    table = {}
    for line in lines[start + 2 :]:
        stage, *counts = line.split()
        if len(counts) != len(header) or not all(c.isdigit() for c in counts):
            break  # the next kind's line, or the table's path
        table[stage] = dict(zip(header, map(int, counts), strict=True))
    return table


def test_status_command_sums_up_each_kind_and_stage(ingested: Mixed) -> None:
    done = run_cli(ingested.env, "status", timeout_s=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "video: 2 URLs — failed at media 1, indexed 1" in out.splitlines()
    web_line = "web: 5 URLs — failed at rendered_page 3, indexed 2"
    assert web_line in out.splitlines(), out
    web = stage_table(out, "web")
    assert web["rendered_page"] == {"failed": 3, "missing": 0, "ok": 2}
    assert web["web_index_rows"] == {"failed": 0, "missing": 3, "ok": 2}
    assert "media" not in web  # the other kind's stages are left out
    video = stage_table(out, "video")
    assert video["media"] == {"failed": 1, "missing": 0, "ok": 1}
    assert video["video_index_rows"] == {"failed": 0, "missing": 1, "ok": 1}
    uri = out.splitlines()[-1].removeprefix("per-URL table: ")
    assert uri.endswith(STATUS_KEY) and Path(uri.removeprefix("file://")).is_file()


def test_status_table_asset_shows_each_url_with_its_path_and_error(ingested: Mixed) -> None:
    result = dg.materialize(
        [ingest_status], instance=ingested.instance, resources={"object_store": ingested.store}
    )
    metadata = result.asset_materializations_for_node("ingest_status")[0].metadata
    assert metadata["urls"].value == 7
    assert metadata["state: indexed"].value == 3
    table = {r.data["url"]: r.data for r in metadata["table"].value.records}
    expect = {  # name: (state, path, error class)
        "article-0": ("indexed", "render", None),
        "late": ("failed at rendered_page", "render", "http_client_error"),
        "private": ("failed at rendered_page", "render", "robots_disallow"),
        "robots_down": ("failed at rendered_page", "render", "robots_unavailable"),
        "captioned": ("indexed", "download", None),
        # A failed media record names no path: the table leaves it empty.
        "truncated": ("failed at media", None, "corrupt_media"),
    }
    for name, (state, path, error_class) in expect.items():
        row = table[ingested.urls[name]]
        assert (row["state"], row["path"], row["error_class"]) == (state, path, error_class), name
    frame = pd.read_parquet(io.BytesIO(ingested.store.get(STATUS_KEY)))
    assert set(frame["url"]) == set(ingested.urls.values())


# --- robots.txt comes back: a plain ingest takes the transient failure up again -------------


@dataclass
class RobotsBack:
    report: IngestReport
    robots_requests_before: int
    late_requests_after: int


@pytest.fixture(scope="module")
def robots_back(mixed: Mixed) -> RobotsBack:
    mixed.phases.advance(ROBOTS_BACK)
    before = mixed.other.requests["/robots.txt"]
    mixed.robots_down.clear()
    report = ingest(mixed.manifest, mixed.defs, mixed.instance)
    return RobotsBack(report, before, mixed.site.requests["/late.html"])


def test_a_plain_ingest_runs_only_the_transient_failure_again(
    mixed: Mixed, robots_back: RobotsBack
) -> None:
    assert robots_back.report.ok and [ok for _, ok in robots_back.report.runs] == [True]
    assert mixed.other.requests["/robots.txt"] > robots_back.robots_requests_before
    assert mixed.other.requests["/article-2.html"] == 1
    assert mixed.indexed("robots_down")
    assert ("robots_down", "rendered_page") not in mixed.letters()  # cleared once through
    # Settled failures were not tried again.
    assert robots_back.late_requests_after == 1


# --- `media-assets retry` with filters ------------------------------------------------------


@dataclass
class Retried:
    done: CompletedProcess[str]
    before: dict[tuple[str, str], deadletters.DeadLetter]
    after: dict[tuple[str, str], deadletters.DeadLetter]
    late_requests: int  # how often the late page was fetched by the retry
    late_indexed: bool


def retry(mixed: Mixed, *filters: str) -> Retried:
    """`media-assets retry FILTERS`, and the dead letters and the late page around it."""
    before, late = mixed.letters(), mixed.site.requests["/late.html"]
    done = run_cli(mixed.env, "retry", *filters)
    fetched = mixed.site.requests["/late.html"] - late
    return Retried(done, before, mixed.letters(), fetched, mixed.indexed("late"))


@pytest.fixture(scope="module")
def retried_media(mixed: Mixed, robots_back: RobotsBack) -> Retried:
    """The 404 page exists now, but only letters at ``media`` are retried."""
    mixed.phases.advance(RETRIED_MEDIA)
    (mixed.site_dir / "late.html").write_text(
        "<html><head><title>Late</title></head><body><main><h1>Late tides</h1><p>This page "
        "came late: the harbour master posts the autumn tide tables after the equinox.</p>"
        "</main></body></html>"
    )
    return retry(mixed, "--asset", "media")


def test_retry_by_asset_runs_only_the_letters_at_that_asset(
    mixed: Mixed, retried_media: Retried
) -> None:
    done = retried_media.done
    assert "retrying 1 dead-lettered URL(s)" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr  # the failure is explained
    before, after = retried_media.before, retried_media.after
    truncated = ("truncated", "media")
    assert after[truncated].attempts == before[truncated].attempts + 1
    assert after[truncated].error_class == "corrupt_media"  # still truncated
    for other in (("late", "rendered_page"), ("private", "rendered_page")):
        assert after[other] == before[other], other
    assert retried_media.late_requests == 0 and not retried_media.late_indexed


@pytest.fixture(scope="module")
def retried_404(mixed: Mixed, retried_media: Retried) -> Retried:
    mixed.phases.advance(RETRIED_404)
    return retry(mixed, "--reason", "http_client_error")


def test_retry_by_reason_indexes_the_url_that_now_works(mixed: Mixed, retried_404: Retried) -> None:
    done = retried_404.done
    assert "retrying 1 dead-lettered URL(s)" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0 and "web: indexed 1" in done.stdout, done.stdout + done.stderr
    assert retried_404.late_requests == 1 and retried_404.late_indexed
    rows = mixed.defs.resources["vector_index"].rows(mixed.key("late"))
    assert any("autumn tide tables" in r["text"] for r in rows)
    before, after = retried_404.before, retried_404.after
    assert ("late", "rendered_page") not in after  # through the whole chain: letter cleared
    for other in (("truncated", "media"), ("private", "rendered_page")):
        assert after[other] == before[other], other
