"""Render pages in a real browser: one Chromium, one context, many pages at once.

Every request the page makes (subresources, fetch/XHR, and each redirect hop) goes through the
address policy; images, media and fonts are refused because the text does not need them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from media_assets.retry import TRANSIENT_CLASSES, TRANSIENT_HTTP
from media_assets.web.robots import HostThrottle, RobotsCache, RobotsUnavailableError
from media_assets.web.safety import AddressPolicy, BlockedURLError

T = TypeVar("T")

RenderStatus = Literal["ok", "failed", "blocked_by_robots", "refused"]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
]
# Reads the page's visible text size; the wait loop stops once it and the network are quiet.
TEXT_SIZE_JS = "document.body ? document.body.innerText.length : 0"


@dataclass(frozen=True)
class RenderSettings:
    executable_path: str = "/usr/bin/chromium"
    concurrency: int = 4
    user_agent: str = "media-assets/0.1 (+batch indexer)"
    allow_hosts: tuple[str, ...] = ()
    requests_per_second_per_host: float = 10.0
    respect_robots: bool = True
    same_site_subresources_only: bool = False
    # The text needs none of these; stylesheets too are skipped, as the DOM is read, not painted.
    blocked_resource_types: tuple[str, ...] = ("image", "media", "font", "stylesheet")
    max_page_bytes: int = 10_000_000
    navigation_timeout_s: float = 20.0
    settle_timeout_s: float = 5.0
    settle_poll_s: float = 0.05
    # Transient failures (timeouts, dropped connections, 429/5xx) are tried again with backoff.
    max_attempts: int = 3
    retry_initial_s: float = 1.0
    retry_max_s: float = 10.0


@dataclass
class RenderResult:
    requested_url: str
    status: RenderStatus
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    html: str | None = None
    error: str | None = None
    content_type: str | None = None
    bytes: int = 0
    requests_refused: int = 0
    attempts: int = 1
    # Why it failed, in a word: the retry policy and dead letters read this.
    error_class: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def transient(self) -> bool:
        """Failed in a way the same request may not fail again (worth a retry)."""
        return self.status == "failed" and self.error_class in TRANSIENT_CLASSES

    @property
    def gone(self) -> bool:
        """The page is permanently unavailable to us; its indexed rows should go."""
        return self.status in ("blocked_by_robots", "refused") or self.http_status in (404, 410)

    def record(self) -> dict[str, object]:
        """JSON-ready record, HTML included (the IO manager stores it as a sidecar file)."""
        return asdict(self)


def classify_http(status: int) -> str:
    return "http_transient" if status in TRANSIENT_HTTP else "http_client_error"


def _site(host: str) -> str:
    parts = host.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else host


class _PageGuard:
    """Route handler for one browser context: refuses what the policy or settings exclude."""

    def __init__(self, policy: AddressPolicy, settings: RenderSettings):
        self.policy = policy
        self.settings = settings
        self.refused: dict[int, int] = {}
        # Status of each page's last document response: Chromium reports an error page with an
        # empty body as net::ERR_HTTP_RESPONSE_CODE_FAILURE, without the status.
        self.document_status: dict[int, int] = {}
        self.sites: set[str] = set()

    async def __call__(self, route: Route) -> None:
        request = route.request
        if request.resource_type in self.settings.blocked_resource_types:
            await route.abort("blockedbyclient")
            return
        try:
            _, host = self.policy.check_scheme(request.url)
            if (
                self.settings.same_site_subresources_only
                and not request.is_navigation_request()
                and _site(host) not in self.sites
            ):
                raise BlockedURLError(f"third-party host {host}")
            await self.policy.check_async(request.url)
            # Playwright does not route redirect hops, so the request is made here with redirects
            # off and each Location is checked before the browser may follow it.
            response = await route.fetch(
                max_redirects=0, timeout=self.settings.navigation_timeout_s * 1000
            )
            if request.is_navigation_request() and request.frame.parent_frame is None:
                self.document_status[id(request.frame.page)] = response.status
            location = response.headers.get("location")
            if 300 <= response.status < 400 and location:
                await self.policy.check_async(urljoin(request.url, location))
        except BlockedURLError:
            self._refuse(request)
            await route.abort("blockedbyclient")
            return
        except PlaywrightError:
            await route.abort("failed")
            return
        await route.fulfill(response=response)

    def _refuse(self, request: Request) -> None:
        page_id = id(request.frame.page)
        self.refused[page_id] = self.refused.get(page_id, 0) + 1


class PageRenderer:
    """Renders URLs with a shared browser; use as an async context manager."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_hosts)
        self.robots = RobotsCache(self.policy, settings.user_agent)
        self.throttle = HostThrottle(settings.requests_per_second_per_host)
        self.guard = _PageGuard(self.policy, settings)
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._http: httpx.AsyncClient | None = None
        self._pages: asyncio.Queue[Page] = asyncio.Queue()
        self._inflight: dict[int, set[object]] = {}

    async def _new_page(self) -> Page:
        assert self._context is not None
        page = await self._context.new_page()
        inflight = self._inflight.setdefault(id(page), set())
        # Playwright tags handlers with attributes, so they must be Python functions.
        page.on("request", lambda request: inflight.add(request))
        page.on("requestfinished", lambda request: inflight.discard(request))
        page.on("requestfailed", lambda request: inflight.discard(request))
        return page

    async def __aenter__(self) -> PageRenderer:
        self._browser = await _BROWSERS.browser(self.settings.executable_path)
        self._context = await self._browser.new_context(
            user_agent=self.settings.user_agent,
            service_workers="block",
            viewport={"width": 1280, "height": 1600},
        )
        self._context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        await self._context.route("**/*", self.guard)
        self._http = httpx.AsyncClient()
        # Pages are reused across URLs: opening a tab costs more than navigating one.
        for _ in range(self.settings.concurrency):
            self._pages.put_nowait(await self._new_page())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http:
            await self._http.aclose()
        if self._context:
            await self._context.close()  # the batch's cookies and tabs go; the browser stays

    async def render_many(
        self,
        urls: Sequence[str],
        on_done: Callable[[str, RenderResult], None] | None = None,
    ) -> list[RenderResult]:

        async def one(url: str) -> RenderResult:
            result = await self.render(url)
            if on_done:
                # In a thread: a checkpoint write waiting out an S3 outage must not stall the
                # event loop, or every page in flight would run into its navigation timeout.
                await asyncio.to_thread(on_done, url, result)
            return result

        return list(await asyncio.gather(*(one(u) for u in urls)))

    async def render(self, url: str) -> RenderResult:
        """Render one URL, trying again with exponential backoff and jitter while the failure is
        transient; permanent ones (robots, refused, 4xx, too large) are returned at once."""
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda result: result.transient),
            wait=wait_exponential_jitter(self.settings.retry_initial_s, self.settings.retry_max_s),
            stop=stop_after_attempt(self.settings.max_attempts),
            retry_error_callback=lambda state: state.outcome.result(),  # the last result
        )
        result: RenderResult = await retrying(self._attempt, url)
        result.attempts = retrying.statistics.get("attempt_number", 1)
        return result

    async def _attempt(self, url: str) -> RenderResult:
        """Render one URL once, with a tab from the pool (waiting for one to be free)."""
        result = RenderResult(requested_url=url, status="failed")
        queued = time.perf_counter()
        page = await self._pages.get()
        started = time.perf_counter()
        result.timings_ms["queue"] = round((started - queued) * 1000, 1)
        try:
            await self._render_into(url, page, result)
        except BlockedURLError as exc:
            result.status, result.error, result.error_class = "refused", str(exc), "refused"
        except RobotsUnavailableError as exc:
            result.error = f"robots.txt unavailable, not fetching: {exc}"
            result.error_class = "robots_unavailable"
        except PlaywrightTimeout:
            result.error = f"render timed out after {self.settings.navigation_timeout_s:.0f} s"
            result.error_class = "timeout"
        except PlaywrightError as exc:
            message = str(exc).splitlines()[0]
            status = self.guard.document_status.get(id(page))
            if "ERR_HTTP_RESPONSE_CODE_FAILURE" in message and status:
                result.http_status = status
                result.error = f"HTTP {status}"
                result.error_class = classify_http(status)
            else:
                result.error = f"browser error: {message}"
                result.error_class = "network" if "net::ERR_" in message else "browser"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            result.error, result.error_class = f"{type(exc).__name__}: {exc}", "invalid"
        finally:
            # A tab that failed before any response may be stuck mid-navigation: replace it.
            await self._recycle(
                page, healthy=result.http_status is not None or result.status != "failed"
            )
        result.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    async def _render_into(self, url: str, page: Page, result: RenderResult) -> None:
        settings = self.settings
        await self.policy.check_async(url)
        self.guard.sites.add(_site(urlsplit(url).hostname or ""))
        assert self._context is not None and self._http is not None
        t0 = time.perf_counter()
        crawl_delay = 0.0
        if settings.respect_robots:
            rules = await self.robots.rules_for(url, self._http)
            if not rules.allowed(url, settings.user_agent):
                result.status = "blocked_by_robots"
                result.error = f"robots.txt disallows {urlsplit(url).path} for this user agent"
                result.error_class = "robots_disallow"
                return
            crawl_delay = rules.crawl_delay(settings.user_agent)
        result.timings_ms["robots"] = round((time.perf_counter() - t0) * 1000, 1)
        result.timings_ms["throttle"] = round(await self.throttle.wait(url, crawl_delay) * 1000, 1)

        inflight = self._inflight[id(page)]
        inflight.clear()
        self.guard.refused.pop(id(page), None)
        self.guard.document_status.pop(id(page), None)
        t1 = time.perf_counter()
        response = await page.goto(url, wait_until="domcontentloaded")
        result.timings_ms["navigate"] = round((time.perf_counter() - t1) * 1000, 1)
        result.final_url = page.url
        if response is None:
            result.error, result.error_class = "no response for the document", "network"
            return
        result.http_status = response.status
        result.content_type = (await response.all_headers()).get("content-type")
        if response.status >= 400:
            result.error = f"HTTP {response.status} {response.status_text}".strip()
            result.error_class = classify_http(response.status)
            return
        body = await response.body()
        if len(body) > settings.max_page_bytes:
            result.error = f"page is {len(body)} bytes, over the {settings.max_page_bytes} cap"
            result.error_class = "too_large"
            return
        t2 = time.perf_counter()
        await self._settle(page, inflight)
        result.timings_ms["settle"] = round((time.perf_counter() - t2) * 1000, 1)
        html = await page.content()
        if len(html.encode()) > settings.max_page_bytes:
            result.error = f"rendered page is over the {settings.max_page_bytes}-byte cap"
            result.error_class = "too_large"
            return
        result.html, result.bytes = html, len(body)
        result.title = (await page.title()) or None
        result.requests_refused = self.guard.refused.pop(id(page), 0)
        result.status = "ok"

    async def _recycle(self, page: Page, healthy: bool) -> None:
        """Return the tab to the pool; one that failed mid-navigation is replaced by a fresh one."""
        if not healthy:
            self._inflight.pop(id(page), None)
            await page.close()
            page = await self._new_page()
        self._pages.put_nowait(page)

    async def _settle(self, page: Page, inflight: set[object]) -> None:
        """Wait until the network is quiet and the visible text stops changing.

        Cheaper than Playwright's ``networkidle`` (a fixed 500 ms of silence per page) and right for
        single-page apps that fill the body from script after the document has loaded.
        """
        settings = self.settings
        deadline = time.monotonic() + settings.settle_timeout_s
        previous, stable = -1, 0
        while time.monotonic() < deadline:
            size = await page.evaluate(TEXT_SIZE_JS)
            stable = stable + 1 if (size == previous and not inflight) else 0
            if stable >= 2 and size > 0:
                return
            previous = size
            await asyncio.sleep(settings.settle_poll_s)


class _BrowserHost:
    """One Chromium per process, driven from one event loop on a thread of its own.

    Starting Playwright and Chromium costs ~0.5 s and stopping them ~0.15 s; a batch run pays that
    once per step otherwise. Each batch still gets a fresh context (cookies, cache, tabs), so
    batches share nothing but the browser process. Closed when the process exits; if the process
    is killed, Playwright's driver sees its pipe close and takes Chromium down with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._executable: str | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the browser's loop and wait for its result."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="chromium", daemon=True
                ).start()
                atexit.register(self.close)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def browser(self, executable_path: str) -> Browser:
        if self._browser is not None and (
            not self._browser.is_connected() or self._executable != executable_path
        ):
            await self._shutdown()
        if self._browser is None:
            self._playwright = await async_playwright().start()
            try:
                self._browser = await self._playwright.chromium.launch(
                    executable_path=executable_path, headless=True, args=CHROMIUM_ARGS
                )
            except PlaywrightError as exc:
                await self._shutdown()
                raise RuntimeError(
                    f"cannot start Chromium at {executable_path!r}: install Debian's chromium "
                    "(scripts/setup.sh does) or set MEDIA_ASSETS_CHROMIUM to its path"
                ) from exc
            self._executable = executable_path
        return self._browser

    async def _shutdown(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        if browser is not None:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        if playwright is not None:
            with contextlib.suppress(PlaywrightError):
                await playwright.stop()

    def close(self) -> None:
        if self._loop is not None and self._loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)


_BROWSERS = _BrowserHost()


async def render_urls(
    urls: Sequence[str],
    settings: RenderSettings,
    on_done: Callable[[str, RenderResult], None] | None = None,
) -> list[RenderResult]:
    async with PageRenderer(settings) as renderer:
        return await renderer.render_many(urls, on_done)


def render_batch(
    urls: Sequence[str],
    settings: RenderSettings,
    on_done: Callable[[str, RenderResult], None] | None = None,
) -> list[RenderResult]:
    """Blocking entry point: render all ``urls`` in one browser context, ``concurrency`` at a
    time, on the process's Chromium."""
    return _BROWSERS.run(render_urls(urls, settings, on_done))
