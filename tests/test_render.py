"""Rendering in real Chromium against the local demo site: scripts run, robots.txt and the address
policy hold for every request the page makes."""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_assets.demo.server import SiteServer, serve
from media_assets.egress import EgressProxy
from media_assets.web import blocklist
from media_assets.web.render import RenderSettings, render_batch
from media_assets.web.safety import AddressPolicy, BlockedURLError
from tests.conftest import CHROMIUM, needs_chromium

pytestmark = needs_chromium


def settings(**overrides: object) -> RenderSettings:
    base = {
        "executable_path": CHROMIUM,
        "allow_hosts": ("127.0.0.1",),
        "requests_per_second_per_host": 100.0,
    }
    return RenderSettings(**{**base, **overrides})  # type: ignore[arg-type]


def test_rendered_page_has_text_a_plain_get_does_not(site: SiteServer) -> None:
    url = f"{site.base_url}/blog/winter-bees.html"
    raw = httpx.get(url).text
    assert "hibernate" not in raw  # the served HTML is an empty shell filled by script
    (result,) = render_batch([url], settings())
    assert result.status == "ok" and result.http_status == 200
    assert "A honeybee colony does not hibernate" in result.html
    assert result.title == "How honeybees survive the winter | Northwind Blog"


def test_spa_that_renders_after_load_event_and_an_api_call(site: SiteServer) -> None:
    (result,) = render_batch([f"{site.base_url}/app/index.html"], settings())
    assert "reliably doubles in volume" in result.html


def test_robots_disallow_renders_nothing(site: SiteServer) -> None:
    (result,) = render_batch([f"{site.base_url}/private/internal-notes.html"], settings())
    assert result.status == "blocked_by_robots" and result.html is None
    assert result.gone
    assert site.requests["/private/internal-notes.html"] == 0
    assert site.requests["/robots.txt"] == 1


def test_404_fails_with_its_reason(site) -> None:
    (result,) = render_batch([f"{site.base_url}/no-such-page.html"], settings())
    assert result.status == "failed" and result.http_status == 404
    assert "HTTP 404" in result.error and result.gone


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "javascript:alert(document.cookie)",
        "http://0.0.0.0/",
    ],
)
def test_dangerous_urls_are_refused_before_any_request(url: str) -> None:
    (result,) = render_batch([url], settings())
    assert result.status == "refused", result
    assert result.error


def test_loopback_is_refused_unless_allow_listed(site: SiteServer) -> None:
    port = site.base_url.rsplit(":", 1)[1]
    (result,) = render_batch(
        [f"http://localhost:{port}/docs/getting-started.html"], settings(allow_hosts=())
    )
    assert result.status == "refused" and "non-public address" in result.error
    assert site.requests["/docs/getting-started.html"] == 0


def test_policy_checks_resolved_addresses() -> None:
    policy = AddressPolicy()
    with pytest.raises(BlockedURLError, match=r"127\.0\.0\.1"):
        policy.check("http://localhost/")
    with pytest.raises(BlockedURLError, match="metadata"):
        policy.check("http://metadata.google.internal/computeMetadata/v1/")
    with pytest.raises(BlockedURLError, match=r"100\.64\.1\.1"):
        policy.check("http://100.64.1.1/")
    AddressPolicy(["10.0.0.0/8"]).check("http://10.1.2.3/")  # allow-listed network passes


def test_subresources_and_redirects_to_other_hosts_are_refused(
    site: SiteServer, site_dir: Path
) -> None:
    # A second server on another loopback address stands in for an internal service.
    with serve(site_dir, host="127.0.0.2") as internal:
        (site_dir / "leaky.html").write_text(
            "<html><body><h1>Leaky page</h1><p id=out>waiting</p><script>"
            f"fetch('{internal.base_url}/api/sourdough.json').then(r => r.text())"
            ".then(t => document.getElementById('out').textContent = 'LEAKED ' + t)"
            ".catch(() => document.getElementById('out').textContent = 'blocked');"
            f"</script><script src='{internal.base_url}/app/sourdough.js'></script></body></html>"
        )
        site.add_hook(
            lambda path: (
                (302, {"Location": f"{internal.base_url}/docs/getting-started.html"}, b"")
                if path == "/go-inside"
                else None
            )
        )
        leaky, redirect = render_batch(
            [f"{site.base_url}/leaky.html", f"{site.base_url}/go-inside"], settings()
        )
        assert leaky.status == "ok"
        assert 'id="out">blocked<' in leaky.html  # the script's fetch failed
        assert leaky.requests_refused >= 2
        assert redirect.status != "ok"
        assert sum(internal.requests.values()) == 0


def test_transient_errors_are_retried_and_permanent_ones_are_not(site: SiteServer) -> None:
    answers = iter([503, 503])

    def flaky(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path == "/flaky.html":
            status = next(answers, 200)
            body = b"<html><body><h1>Flaky</h1><p>Back after two 503s.</p></body></html>"
            return (
                status,
                {"Content-Type": "text/html; charset=utf-8"},
                body if status == 200 else b"",
            )
        return None

    site.add_hook(flaky)
    flaky_result, missing = render_batch(
        [f"{site.base_url}/flaky.html", f"{site.base_url}/gone.html"],
        settings(retry_initial_s=0.05, retry_max_s=0.2),
    )
    assert flaky_result.status == "ok" and flaky_result.attempts == 3
    assert "Back after two 503s" in flaky_result.html
    assert site.requests["/flaky.html"] == 3
    assert missing.status == "failed" and missing.attempts == 1 and not missing.transient
    assert missing.error_class == "http_client_error" and site.requests["/gone.html"] == 1


def test_retries_are_bounded(site: SiteServer) -> None:
    site.add_hook(lambda path: (503, {}, b"") if path == "/down.html" else None)
    (result,) = render_batch(
        [f"{site.base_url}/down.html"], settings(max_attempts=2, retry_initial_s=0.05)
    )
    assert result.status == "failed" and result.attempts == 2 and result.transient
    assert "HTTP 503" in result.error


def test_known_trackers_are_never_requested(
    site: SiteServer, site_dir: Path, tmp_path: Path
) -> None:
    # A "tracker" on another loopback address that would answer: only the list keeps it away.
    with serve(site_dir, host="127.0.0.3") as tracker:
        listed = tmp_path / "list.txt"
        listed.write_text("[Adblock Plus 2.0]\n||127.0.0.3^$script,third-party\n")
        (site_dir / "tracked.html").write_text(
            "<html><body><h1>Tracked page</h1><p>Body text of the tracked page.</p>"
            f"<script src='{tracker.base_url}/app/sourdough.js'></script></body></html>"
        )
        url = f"{site.base_url}/tracked.html"
        allow = ("127.0.0.1", "127.0.0.3")
        (blocked,) = render_batch([url], settings(allow_hosts=allow, blocklists=(str(listed),)))
        assert blocked.status == "ok" and "Body text of the tracked page" in blocked.html
        assert blocked.blocked_requests == 1 and tracker.requests["/app/sourdough.js"] == 0
        (allowed,) = render_batch([url], settings(allow_hosts=allow, block_trackers=False))
        assert allowed.status == "ok" and allowed.blocked_requests == 0
        assert tracker.requests["/app/sourdough.js"] == 1


def test_package_block_list_blocks_known_hosts_not_the_pages_own() -> None:
    if not blocklist.package_lists():
        pytest.skip(f"Debian's {blocklist.PACKAGE} is not installed (scripts/setup.sh installs it)")
    trackers = blocklist.load()
    assert trackers is not None and len(trackers) > 10_000
    assert (
        trackers.match("www.googletagmanager.com", {"news.example.org"}) == "googletagmanager.com"
    )
    assert trackers.match("stats.g.doubleclick.net", {"news.example.org"}) is not None
    assert trackers.match("news.example.org", {"news.example.org"}) is None
    # A listed host is never refused as the page being indexed.
    assert trackers.match("www.googletagmanager.com", {"www.googletagmanager.com"}) is None


def test_block_list_rules() -> None:
    trackers = blocklist.parse(
        [
            "||ads.example^",
            "||pixel.example^$third-party",
            "||cdn.example^$script,domain=news.example",  # narrowed to some pages: not a host rule
            "||popup.example^$popup",
            "||metrics.example^$image,ping",
            "@@||ok.ads.example^",
        ]
    )
    page = {"www.news.example"}
    assert trackers.match("x.ads.example", page) == "ads.example"
    assert trackers.match("ok.ads.example", page) is None  # the more specific exception wins
    assert trackers.match("a.b.metrics.example", page) == "metrics.example"
    assert trackers.match("cdn.example", page) is None
    assert trackers.match("popup.example", page) is None
    assert trackers.match("pixel.example", page) == "pixel.example"
    assert trackers.match("img.pixel.example", {"www.pixel.example"}) is None  # same site


def test_concurrent_look_ups_of_one_host_are_made_once() -> None:
    loop = asyncio.new_event_loop()
    proxy = EgressProxy(AddressPolicy(), loop)
    real, hosts = loop.getaddrinfo, []

    async def counted(host: str, *args: Any, **kwargs: Any) -> Any:
        hosts.append(host)
        return await real(host, *args, **kwargs)

    async def twenty_then_one() -> tuple[list[Any], Any]:
        lookups = (proxy._resolve("no-such-host.invalid", 5) for _ in range(20))
        return list(await asyncio.gather(*lookups)), await proxy._resolve("no-such-host.invalid", 5)

    loop.getaddrinfo = counted  # type: ignore[method-assign]
    try:
        answers, again = loop.run_until_complete(twenty_then_one())
    finally:
        loop.close()
    assert hosts == ["no-such-host.invalid"]  # twenty at once, then one from the cache
    assert all(isinstance(a, str) for a in answers) and again == answers[0]


def test_images_and_fonts_are_never_requested(site: SiteServer, site_dir: Path) -> None:
    (site_dir / "pictures.html").write_text(
        "<html><head><style>@font-face { font-family: F; src: url('/font.woff2'); }"
        "body { font-family: F; }</style></head><body><h1>Pictures</h1>"
        "<p>A page of pictures with a caption.</p><img src='/photo.png'>"
        "<picture><source srcset='/photo.webp'><img src='/photo2.png'></picture></body></html>"
    )
    (result,) = render_batch([f"{site.base_url}/pictures.html"], settings())
    assert result.status == "ok" and "A page of pictures" in result.html
    assert site.requests["/pictures.html"] == 1  # the page itself came through
    for path in ("/photo.png", "/photo.webp", "/photo2.png", "/font.woff2"):
        assert site.requests[path] == 0, path


def test_a_large_video_on_the_page_does_not_fail_it(site: SiteServer, site_dir: Path) -> None:
    def big(path: str) -> tuple[int, dict[str, str], Any] | None:
        if path != "/big.mp4":
            return None
        return 200, {"Content-Type": "video/mp4"}, (b"\0" * 65536 for _ in range(800))

    site.add_hook(big)
    (site_dir / "film.html").write_text(
        "<html><body><h1>Film night</h1><p>The club shows a silent film every Friday.</p>"
        "<video src='/big.mp4' preload='auto' autoplay muted></video></body></html>"
    )
    (result,) = render_batch([f"{site.base_url}/film.html"], settings(max_page_bytes=2_000_000))
    assert result.status == "ok", result.error
    assert "silent film every Friday" in result.html
