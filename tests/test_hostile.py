"""Hostile input: what a crawl or a user submission can throw at the fetchers.

A second server on 127.0.0.2 stands in for a cloud metadata or internal service: it is never
allow-listed (only 127.0.0.1 is), and every test that uses it ends by asserting that it received
no request at all. Each bad input asserts its status, class and message; batches that mix bad
and good URLs assert that the good ones come through.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from media_assets import deadletters
from media_assets.definitions import build_definitions
from media_assets.demo.server import SiteServer, folder_hook, serve
from media_assets.egress import Limits, egress_session
from media_assets.ingest import ingest
from media_assets.retry import TRANSIENT_CLASSES
from media_assets.search import search
from media_assets.video.info import extract_infos
from media_assets.web.render import RenderResult, RenderSettings, render_batch
from media_assets.web.safety import AllowEntry
from partitions.keys import partition_key
from resources import build_resources
from tests.conftest import CHROMIUM, needs_chromium

HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture
def internal(site_dir: Path) -> Iterator[SiteServer]:
    """The forbidden service. Whatever a test does, it must never be reached."""
    with serve(site_dir, host="127.0.0.2") as server:
        yield server
        assert sum(server.requests.values()) == 0, f"forbidden service reached: {server.requests}"


def trickle(total: int, chunk: int = 1024, every_s: float = 1.0) -> Iterator[bytes]:
    """A body that arrives at ``chunk / every_s`` bytes a second."""
    for _ in range(total // chunk):
        yield b"\0" * chunk
        time.sleep(every_s)


def hang(seconds: float) -> Iterator[bytes]:
    """A body that does not come (the headers do)."""
    time.sleep(seconds)
    yield b""


def stream(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    for _ in range(total // chunk):
        yield b"<p>" + b"x" * (chunk - 7) + b"</p>\n"


def settings(**overrides: object) -> RenderSettings:
    base: dict[str, object] = {
        "executable_path": CHROMIUM,
        "allow_hosts": ("127.0.0.1",),
        "requests_per_second_per_host": 100.0,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
    }
    return RenderSettings(**{**base, **overrides})  # type: ignore[arg-type]


def page(body: str, head: str = "") -> tuple[int, dict[str, str], bytes]:
    return 200, HTML, f"<html><head>{head}</head><body>{body}</body></html>".encode()


ARTICLE = "<h1>A good page</h1><p>Kelp forests grow up to half a metre a day in cold water.</p>"


# --- the address policy, at connect time --------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "allowed", "refused"),
    [
        ("127.0.0.1", [("127.0.0.1", 80), ("127.0.0.1", 8080)], [("127.0.0.2", 80)]),
        ("127.0.0.1:8080", [("127.0.0.1", 8080)], [("127.0.0.1", 8081)]),
        ("127.0.0.0/30", [("127.0.0.2", 1)], [("127.0.0.9", 1)]),
        ("[::1]:8080", [("::1", 8080)], [("::1", 80)]),
    ],
)
def test_allow_list_entries_name_a_host_a_port_or_a_network(
    entry: str, allowed: list[tuple[str, int]], refused: list[tuple[str, int]]
) -> None:
    import ipaddress

    from media_assets.web.safety import AddressPolicy

    policy = AddressPolicy([entry])
    for host, port in allowed:
        assert policy.refusal(host, port, [ipaddress.ip_address(host)]) is None
    for host, port in refused:
        assert "non-public address" in (policy.refusal(host, port, [ipaddress.ip_address(host)]))


@pytest.mark.parametrize(
    "entry", ["127.0.0.1:abc", "http://127.0.0.1", "10.0.0.0/33", "a b", "127.0.0.1:99999"]
)
def test_a_malformed_allow_list_entry_is_an_error_at_start(entry: str) -> None:
    with pytest.raises(ValueError, match="MEDIA_ASSETS_ALLOW_HOSTS"):
        AllowEntry.parse(entry)
    with pytest.raises(ValueError, match="not a host, host:port or network"):
        build_resources({"MEDIA_ASSETS_ALLOW_HOSTS": f"127.0.0.1,{entry}"})


def test_every_client_meets_the_policy_at_the_proxy(site: SiteServer, internal: SiteServer) -> None:
    """httpx, ffprobe and yt-dlp through the egress proxy: the refusal names its reason."""
    from media_assets.video.media import media_duration

    site.add_hook(
        lambda path: (
            (302, {"Location": f"{internal.base_url}/x.vtt"}, b"") if path == "/hop.vtt" else None
        )
    )
    with egress_session(["127.0.0.1"], Limits()) as egress:
        answer = httpx.get(f"{site.base_url}/hop.vtt", proxy=egress.url, follow_redirects=True)
        assert answer.status_code == 403 and "refused by fetch policy" in answer.reason_phrase
        with pytest.raises(httpx.ProxyError, match=r"non-public address 127\.0\.0\.2"):
            httpx.get(f"https://127.0.0.2:{internal.base_url.rsplit(':', 1)[1]}/", proxy=egress.url)
        assert egress.refused_count() == 2
    assert media_duration(f"{internal.base_url}/x.mp4", ["127.0.0.1"], 10) is None
    (info,) = extract_infos(
        [f"{site.base_url}/hop.vtt"], ["generic"], egress_session(["127.0.0.1"])
    )
    assert info.status == "failed" and info.error_class == "refused", info
    assert "127.0.0.2" in (info.error or "")


def test_dns_failure_is_transient_and_keeps_the_page(site: SiteServer) -> None:
    (result,) = render_batch(["http://no-such-host.invalid/page.html"], settings(max_attempts=1))
    assert result.status == "failed" and result.error_class == "dns"
    assert "no-such-host.invalid" in (result.error or "")
    assert result.transient and not result.gone
    assert "dns" in TRANSIENT_CLASSES


# --- rendering: redirects, hangs, caps ---------------------------------------------------------


@needs_chromium
def test_hostile_pages_fail_alone_with_their_true_class(
    site: SiteServer, internal: SiteServer
) -> None:
    secret = f"{internal.base_url}/docs/getting-started.html"
    answers = {
        "/good.html": page(ARTICLE),
        "/redirect-inside": (302, {"Location": secret}, b""),
        "/meta-inside": page(
            "<p>moving</p>", f"<meta http-equiv=refresh content='0;url={secret}'>"
        ),
        "/js-inside": page(f"<p>moving</p><script>location.href = '{secret}'</script>"),
        "/js-elsewhere": page("<p>moving</p><script>location.href = '/good.html'</script>"),
        "/meta-then-refused": page(
            "<p>moving</p>", "<meta http-equiv=refresh content='0;url=/redirect-inside'>"
        ),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/huge.html": (200, HTML, stream(50 << 20)),
        "/declared-huge.html": (200, {**HTML, "Content-Length": str(1 << 31)}, b"<html>"),
        "/trickle.html": (200, {**HTML, "Content-Length": "1000000"}, trickle(1_000_000)),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/hanging-script.html": page(ARTICLE + "<script src='/hang.js'></script>"),
        "/hang.js": (200, {"Content-Type": "application/javascript"}, hang(30)),
        "/busy.html": page(
            ARTICLE + "<script>setInterval(() => fetch('/good.html?poll'), 100)</script>"
        ),
        "/report.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4\n" + b"0" * 2000),
        "/photo.png": (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"0" * 100),
        "/blob": (200, {"Content-Type": "application/octet-stream"}, b"\0\1\2" * 1000),
        "/leaky-iframe.html": page(
            ARTICLE + f"<iframe src='{secret}'></iframe><img src='{internal.base_url}/i.png'>"
            f"<script src='https://127.0.0.2:{internal.base_url.rsplit(':', 1)[1]}/a.js'></script>"
        ),
    }
    site.add_hook(lambda path: answers.get(path))
    long_label = f"http://{'a' * 64}.example/page.html"  # IDNA refuses labels over 63
    names = [
        *(n for n in answers if n != "/hang.js"),
        long_label,
        "/good.html",
    ]  # the last one reuses a tab the others used
    results = dict(
        zip(
            [*names[:-1], "again"],
            render_batch(
                [n if n.startswith("http") else f"{site.base_url}{n}" for n in names],
                settings(
                    concurrency=2,
                    max_page_bytes=5_000_000,
                    navigation_timeout_s=4,
                    settle_timeout_s=2,
                    max_attempts=1,
                ),
            ),
            strict=True,
        )
    )

    def expect(name: str, status: str, error_class: str | None, words: str) -> RenderResult:
        result = results[name]
        assert (result.status, result.error_class) == (status, error_class), (name, result.error)
        assert words in (result.error or result.html or ""), (name, result.error)
        return result

    for name in ("/redirect-inside", "/meta-inside", "/js-inside", "/meta-then-refused"):
        refused = expect(name, "refused", "refused", "non-public address 127.0.0.2")
        assert refused.attempts == 1 and refused.gone
    expect("/js-elsewhere", "ok", None, "Kelp forests")
    assert results["/js-elsewhere"].final_url == f"{site.base_url}/good.html"
    expect("/loop", "failed", "redirect_loop", "redirect")
    expect("/huge.html", "failed", "too_large", "5000000-byte cap")
    # Stopped near the cap (plus what socket buffers held), not 50 MB later.
    assert site.bytes_sent["/huge.html"] < 20 << 20
    expect("/declared-huge.html", "failed", "too_large", "5000000-byte cap")
    expect("/trickle.html", "failed", "timeout", "timed out")
    expect("/to-file", "refused", "refused", "refuses")
    expect("/busy.html", "ok", None, "Kelp forests")  # never quiet: taken by the deadline
    assert results["/good.html"].settled
    # A script that never arrives holds the load event, not the text: captured as it is.
    assert not expect("/hanging-script.html", "ok", None, "Kelp forests").settled
    for name, kind in (("/photo.png", "'image/png'"), ("/blob", "'application/octet-stream'")):
        assert not expect(name, "failed", "unsupported_content_type", kind).transient
    # A PDF is taken as a file (reading it is the extraction stage's part).
    assert (document := expect("/report.pdf", "ok", None, "").document) is not None
    assert document.format == "pdf" and document.data.startswith(b"%PDF-1.4")
    expect(long_label, "refused", "refused", "not a valid host name")
    leaky = expect("/leaky-iframe.html", "ok", None, "Kelp forests")
    assert leaky.requests_refused >= 2
    expect("/good.html", "ok", None, "Kelp forests")
    expect("again", "ok", None, "Kelp forests")


# --- the video path through Dagster -----------------------------------------------------------


@needs_chromium
def test_hostile_videos_fail_alone_and_never_reach_the_forbidden_service(
    site: SiteServer,
    internal: SiteServer,
    demo_media: Path,
    tmp_path: Path,
    env: dict[str, str],
    instance: dg.DagsterInstance,
) -> None:
    site.add_hook(folder_hook("/media/", demo_media))
    internal.add_hook(folder_hook("/media/", demo_media))
    secret_mp4 = f"{internal.base_url}/media/pollination-talk.mp4"
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{secret_mp4}\n#EXT-X-ENDLIST\n"
    answers = {
        "/redirect.mp4": (302, {"Location": secret_mp4}, b""),
        "/video/inside.html": page(f"<h1>Talk</h1><video src='{secret_mp4}'></video>"),
        "/video/captions-inside.html": page(
            "<h1>Talk</h1><video src='/media/pollination-talk.mp4'>"
            f"<track kind=captions srclang=en src='{internal.base_url}/c.vtt'></video>"
        ),
        "/hls/list.m3u8": (
            200,
            {"Content-Type": "application/vnd.apple.mpegurl"},
            playlist.encode(),
        ),
    }
    # Streamed bodies are made afresh for each request (yt-dlp, ffprobe and the download each ask).
    streams = {
        "/slow.mp4": lambda: (
            200,
            {"Content-Type": "video/mp4", "Content-Length": "3000000"},
            trickle(3_000_000),
        ),
        "/big.m4a": lambda: (200, {"Content-Type": "audio/mp4"}, stream(1 << 30)),
    }
    site.add_hook(lambda path: answers.get(path.split("?")[0]))
    site.add_hook(lambda path: streams[path]() if path in streams else None)
    good = f"{site.base_url}/media/swarm-notes.m4a"
    urls = {name: f"{site.base_url}{name}" for name in [*answers, *streams]} | {"good": good}
    manifest = tmp_path / "videos.jsonl"
    manifest.write_text(
        "".join(json.dumps({"url": u, "kind": "video"}) + "\n" for u in urls.values())
    )
    defs = build_definitions(
        {
            **env,
            "MEDIA_ASSETS_VIDEO_MAX_BYTES": str(4 << 20),
            "MEDIA_ASSETS_VIDEO_DOWNLOAD_TIMEOUT_S": "6",
        }
    )
    report = ingest(manifest, defs, instance)

    keys = {name: partition_key(url) for name, url in urls.items()}
    store = defs.resources["object_store"]
    letters = {d.partition_key: d for d in deadletters.list_all(store)}
    expected = {
        "/redirect.mp4": ("video_info", "refused"),
        "/video/inside.html": ("media", "refused"),
        "/video/captions-inside.html": ("captions", "refused"),
        "/hls/list.m3u8": ("media", "refused"),
        "/slow.mp4": ("media", "timeout"),
        "/big.m4a": ("media", "too_large"),
    }
    for name, (asset, error_class) in expected.items():
        letter = letters[keys[name]]
        assert (letter.asset, letter.error_class) == (asset, error_class), (name, letter)
        assert letter.url == urls[name]
    assert "non-public address 127.0.0.2" in letters[keys["/redirect.mp4"]].message
    assert "time limit" in letters[keys["/slow.mp4"]].message
    assert "cap" in letters[keys["/big.m4a"]].message
    # Three readers (yt-dlp's sniff, ffprobe's duration, the download) of an endless body: each
    # stopped at its cap, so the server sent megabytes, not the gigabyte on offer.
    assert site.bytes_sent["/big.m4a"] < 40 << 20
    assert report.statuses["video"]["indexed"] == 1
    assert instance.get_materialized_partitions(dg.AssetKey("video_index_rows")) == {keys["good"]}
    index, embedder = defs.resources["vector_index"], defs.resources["embedder"]
    hits = search("pollination orchard blossoms", index, embedder, k=10, kind="video")
    assert all(hit.source_key == keys["good"] for hit in hits)  # nothing of the secret talk


@needs_chromium
def test_dns_rebinding_cannot_slip_between_check_and_connect(
    site: SiteServer, internal: SiteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that answers 127.0.0.1 to the first look-up (the early check) and 127.0.0.2 to
    every later one: the connection is made by the proxy to the address it checked itself."""
    import socket

    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        if host == "rebind.test":
            host = next(answers, "127.0.0.2")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.test:{internal.base_url.rsplit(':', 1)[1]}/docs/getting-started.html"
    (result,) = render_batch([url], settings(max_attempts=1))
    # Robots.txt, then the page, would have gone to 127.0.0.2 had any client resolved it again
    # itself; the fixture asserts the internal server saw nothing.
    assert result.status == "refused" and "127.0.0.2" in (result.error or ""), result
