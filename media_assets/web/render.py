"""Render pages in a real browser: one Chromium, one context, many pages at once.

Every request the page makes (subresources, fetch/XHR, and each redirect hop) goes through the
address policy, in the egress proxy; images and web fonts are never loaded (browser settings)
because the text does not need them, and known ad and tracker hosts are never asked. Requests are
not routed through Python unless a setting needs a per-request decision (routing costs a round
trip per request and turns the browser's cache off).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypeVar
from urllib.parse import urlsplit

import httpx

# Playwright's client (its generated API, ~0.1-0.2 s to import) is imported when a browser
# starts, so that a process that loads the code location but never renders (a step pod of any
# other stage, the sensors) does not pay for it. Its two exception classes, which the except
# clauses below need, are the same objects in this small module (tests/test_startup.py).
from playwright._impl._errors import Error as PlaywrightError
from playwright._impl._errors import TimeoutError as PlaywrightTimeout
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from media_assets.egress import (
    EGRESS_HEADER,
    EgressEvent,
    EventKind,
    Limits,
    Session,
    egress_session,
)
from media_assets.names import Status
from media_assets.records import StageRecord
from media_assets.retry import TRANSIENT_CLASSES, classify_http
from media_assets.web import blocklist
from media_assets.web.documents import (
    UNSUPPORTED,
    DocumentError,
    DocumentFile,
    DocumentFormat,
    FetchedDocument,
    document_format,
    fetch_document,
    unsupported_message,
)
from media_assets.web.robots import HostThrottle, RobotsCache, RobotsUnavailableError
from media_assets.web.safety import AddressPolicy, BlockedURLError, DNSLookupError

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Frame,
        Page,
        Playwright,
        Request,
        Response,
        Route,
    )

T = TypeVar("T")

# The values of ``Status`` (media_assets/names.py) a render can end with.
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
    # The text needs neither; refused inside the browser, they cost nothing per request.
    "--blink-settings=imagesEnabled=false",
    "--disable-remote-fonts",
]
# Reads the page's visible text size; the wait loop stops once it and the network are quiet.
TEXT_SIZE_JS = "document.body ? document.body.innerText.length : 0"
# The same, scrolling to the bottom whenever the page grew (a few times at most): content that
# loads on scroll (lazy sections, IntersectionObserver) is then in the DOM when it is read.
SCROLL_TEXT_SIZE_JS = """() => {
  const body = document.body, root = document.documentElement;
  if (!body || !root) return 0;
  const height = root.scrollHeight, seen = window.__mediaAssetsScroll || [0, 0];
  if (seen[1] < 3 && height !== seen[0]) {
    window.__mediaAssetsScroll = [height, seen[1] + 1];
    window.scrollTo(0, height);
  }
  return [body.innerText.length, location.href];
}"""
# The DOM as HTML, with each same-origin frame's body put in place of its <iframe> (an article
# shown in a frame is the page's text; cross-origin frames cannot be read and stay as they are).
# Frames without a URL of their own (about:blank, written by script) are ad slots: left out.
CONTENT_JS = """() => {
  const inline = (doc, depth) => {
    for (const frame of Array.from(doc.querySelectorAll('iframe, frame'))) {
      const src = (frame.getAttribute('src') || '').trim();
      if (!src || /^(about|javascript|data|blob):/i.test(src)) continue;
      let inner = null;
      try { inner = frame.contentDocument; } catch (e) { inner = null; }
      if (!inner || !inner.body || depth > 3) continue;
      inline(inner, depth + 1);
      const div = doc.createElement('div');
      div.setAttribute('data-frame-src', frame.getAttribute('src') || '');
      div.innerHTML = inner.body.innerHTML;
      frame.replaceWith(div);
    }
  };
  inline(document, 0);
  const type = document.doctype;
  const doctype = type ? new XMLSerializer().serializeToString(type) : '';
  return doctype + (document.documentElement ? document.documentElement.outerHTML : '');
}"""


@dataclass(frozen=True)
class RenderSettings:
    executable_path: str = "/usr/bin/chromium"
    concurrency: int = 4
    user_agent: str = "media-assets/0.1 (+batch indexer; honours robots.txt)"
    allow_hosts: tuple[str, ...] = ()
    requests_per_second_per_host: float = 10.0
    respect_robots: bool = True
    same_site_subresources_only: bool = False
    # More resource types to refuse (e.g. "stylesheet", "media"), decided per request in Python:
    # slower on pages with many requests (images and fonts are off in the browser regardless).
    blocked_resource_types: tuple[str, ...] = ()
    max_page_bytes: int = 10_000_000
    # Known ad and tracker hosts are never requested (EasyList/EasyPrivacy host rules); the lists
    # are the Debian package's unless files are named here.
    block_trackers: bool = True
    blocklists: tuple[str, ...] = ()
    navigation_timeout_s: float = 20.0
    settle_timeout_s: float = 5.0
    settle_poll_s: float = 0.05
    # How long the text and the URL must stay as they are for the page to count as settled: a
    # single-page app that shows "loading…" and swaps the article in from a timer (or a history
    # API route) must not be taken in between, even when a loaded machine delays its timers.
    settle_quiet_s: float = 0.4
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
    blocked_requests: int = 0  # to known ad and tracker hosts, answered without a connection
    # False when the page never went quiet (polling, hanging scripts) and was taken at a deadline.
    settled: bool = True
    attempts: int = 1
    # Why it failed, in a word: the retry policy and dead letters read this.
    error_class: str | None = None
    traceback: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    # A PDF, plain text or Markdown file, fetched as it is instead of rendered.
    document: FetchedDocument | None = field(default=None, repr=False)

    @property
    def transient(self) -> bool:
        """Failed in a way the same request may not fail again (worth a retry)."""
        return self.status == Status.FAILED and self.error_class in TRANSIENT_CLASSES

    @property
    def gone(self) -> bool:
        """The page is permanently unavailable to us; its indexed rows should go."""
        gone = (Status.BLOCKED_BY_ROBOTS, Status.REFUSED)
        return self.status in gone or self.http_status in (404, 410)

    def record(self) -> dict[str, object]:
        """JSON-ready record, HTML included (the IO manager stores it as a sidecar file); a
        document's bytes are not (the stage stores them as a file of their own)."""
        return {k: v for k, v in asdict(self).items() if k != "document"}

    def page_record(
        self, source_url: str, input_sha256: str, document: DocumentFile | None = None
    ) -> RenderedPage:
        """The ``rendered_page`` artifact of this render of ``source_url``; ``document`` is the
        record of the fetched file, stored by the caller."""
        record = {
            **self.record(),
            "source_url": source_url,
            "gone": self.gone,
            "input_sha256": input_sha256,
        }
        if document is not None:
            record["document"] = document
        return record  # type: ignore[return-value]


class RenderedPage(StageRecord):
    """The ``rendered_page`` artifact (schemas/rendered_page.json): ``RenderResult``'s fields,
    whether the page is gone for good, and the fetched document when the URL answered one."""

    requested_url: str
    final_url: str | None
    http_status: int | None
    title: str | None
    html: str | None
    content_type: str | None
    bytes: int
    requests_refused: int
    blocked_requests: int
    settled: bool
    attempts: int
    timings_ms: dict[str, float]
    gone: bool
    document: NotRequired[DocumentFile]


def _site(host: str) -> str:
    parts = host.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else host


class _PageGuard:
    """Route handler for one browser context: refuses what the settings exclude before it
    leaves the browser. Addresses are not checked here: every connection the browser makes goes
    through the egress proxy, which checks the address it connects to (redirect hops included,
    which Playwright never routes)."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.sites: set[str] = set()

    async def __call__(self, route: Route) -> None:
        request = route.request
        if request.resource_type in self.settings.blocked_resource_types:
            await route.abort("blockedbyclient")
            return
        try:
            _, host = AddressPolicy.check_scheme(request.url)
            if (
                self.settings.same_site_subresources_only
                and not request.is_navigation_request()
                and _site(host) not in self.sites
            ):
                raise BlockedURLError(f"third-party host {host}")
        except BlockedURLError:
            _watch(request.frame.page).refused += 1
            await route.abort("blockedbyclient")
            return
        with contextlib.suppress(PlaywrightError):  # the page may have closed meanwhile
            await route.continue_()


@dataclass(frozen=True)
class _Document:
    """A top-level document response as the tab saw it (the response event's view, which holds
    even when ``goto`` itself timed out or the browser cannot give the body)."""

    status: int
    url: str
    headers: dict[str, str]

    @property
    def egress(self) -> str | None:
        return self.headers.get(EGRESS_HEADER.lower())

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class _PageWatch:
    """What one tab saw while rendering its current URL."""

    inflight: set[Request] = field(default_factory=set)
    refused_requests: set[Request] = field(default_factory=set)
    refused: int = 0  # refused inside the browser (scheme, third-party rule)
    blocked: set[Request] = field(default_factory=set)  # to known ad and tracker hosts
    # The last top-level document response. Chromium reports an error page with an empty body as
    # net::ERR_HTTP_RESPONSE_CODE_FAILURE, without the status.
    document: _Document | None = None
    navigations: int = 0
    went: bool = False  # a navigation was started: the tab may be mid-way somewhere
    # Where the tab's requests went, as the egress proxy names them: the URL of a plain-HTTP
    # request, host:port of an HTTPS tunnel. Its events are matched to the tab by these.
    targets: set[str] = field(default_factory=set)

    def saw(self, request: Request) -> None:
        self.inflight.add(request)
        self.targets.add(_egress_target(request.url))

    def reset(self) -> None:
        self.targets.clear()
        self.inflight.clear()
        self.refused_requests.clear()
        self.blocked.clear()
        self.refused, self.document, self.navigations, self.went = 0, None, 0, False


_WATCHES: dict[int, _PageWatch] = {}


def _watch(page: Page) -> _PageWatch:
    return _WATCHES.setdefault(id(page), _PageWatch())


class RenderFailure(Exception):
    """A render that ends with a known class and message (set on the result as they are)."""

    def __init__(self, message: str, error_class: str, status: RenderStatus = Status.FAILED):
        super().__init__(message)
        self.error_class = error_class
        self.status = status


class PageRenderer:
    """Renders URLs with a shared browser; use as an async context manager."""

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self.policy = AddressPolicy(settings.allow_hosts)
        self.robots = RobotsCache(self.policy, settings.user_agent)
        self.throttle = HostThrottle(settings.requests_per_second_per_host)
        self.guard = _PageGuard(settings)
        self.egress: Session | None = None
        self._context: BrowserContext | None = None
        self._http: httpx.AsyncClient | None = None
        self._pages: asyncio.Queue[Page] = asyncio.Queue()

    async def _new_page(self) -> Page:
        assert self._context is not None
        page = await asyncio.wait_for(self._context.new_page(), CLOSE_TIMEOUT_S)
        watch = _watch(page)

        def on_response(response: Response) -> None:
            request = response.request
            if request.is_navigation_request() and request.frame.parent_frame is None:
                watch.document = _Document(response.status, response.url, response.headers)
            marker = response.headers.get(EGRESS_HEADER.lower())
            if marker == "refused":
                watch.refused_requests.add(request)
            elif marker == "blocked":
                watch.blocked.add(request)

        def on_failed(request: Request) -> None:
            watch.inflight.discard(request)
            target = _egress_target(request.url)
            if self.egress and target in self.egress.blocked_targets:
                watch.blocked.add(request)  # a tunnel to a tracker host, answered by the proxy
            elif self.egress and self.egress.first("refused", target=target):
                watch.refused_requests.add(request)

        # Playwright tags handlers with attributes, so they must be Python functions.
        page.on("request", watch.saw)
        page.on("requestfinished", lambda request: watch.inflight.discard(request))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
        page.on("framenavigated", lambda frame: _count_navigation(watch, frame))
        return page

    async def __aenter__(self) -> PageRenderer:
        settings = self.settings
        browser = await _BROWSERS.browser(settings.executable_path)
        trackers = (
            await asyncio.to_thread(blocklist.load, settings.blocklists)
            if settings.block_trackers
            else None
        )
        # Every connection of this batch, the browser's and robots.txt's, through one session:
        # the address checked is the address connected to, and no response outgrows the cap.
        self.egress = egress_session(
            settings.allow_hosts,
            Limits(
                max_bytes_per_connection=settings.max_page_bytes,
                idle_s=settings.navigation_timeout_s,
                # A subresource host that does not answer costs seconds, not the page's budget.
                connect_timeout_s=5,
                dns_timeout_s=5,
                first_byte_s=SUBRESOURCE_FIRST_BYTE_S,
                hints={"too_large": "raise MEDIA_ASSETS_MAX_PAGE_BYTES if this page is wanted"},
            ),
            trackers,
        )
        self._context = await browser.new_context(
            user_agent=settings.user_agent,
            service_workers="block",
            viewport={"width": 1280, "height": 1600},
            proxy=self.egress.playwright_proxy(),  # type: ignore[arg-type]
        )
        self._context.set_default_navigation_timeout(settings.navigation_timeout_s * 1000)
        self._context.set_default_timeout(settings.navigation_timeout_s * 1000)
        if settings.same_site_subresources_only or settings.blocked_resource_types:
            await self._context.route("**/*", self.guard)
        self._http = httpx.AsyncClient(proxy=self.egress.url, trust_env=False)
        # Pages are reused across URLs: opening a tab costs more than navigating one.
        for _ in range(settings.concurrency):
            self._pages.put_nowait(await self._new_page())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http:
            await self._http.aclose()
        if self._context:
            # The batch's cookies and tabs go; the browser stays — unless the context will not
            # close (a tab stuck mid-navigation), then the browser goes with it.
            try:
                await asyncio.wait_for(self._context.close(), CLOSE_TIMEOUT_S * 2)
            except (TimeoutError, PlaywrightError):
                await _BROWSERS.discard()
        if self.egress:
            self.egress.close()

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

    @property
    def deadline_s(self) -> float:
        """The most one attempt may take, whatever the page does: robots, navigation, settling."""
        return self.settings.navigation_timeout_s * 2 + self.settings.settle_timeout_s + 5

    async def _attempt(self, url: str) -> RenderResult:
        """Render one URL once, with a tab from the pool (waiting for one to be free)."""
        result = RenderResult(requested_url=url, status=Status.FAILED)
        queued = time.perf_counter()
        page = await self._pages.get()
        started = time.perf_counter()
        result.timings_ms["queue"] = round((started - queued) * 1000, 1)
        since = time.monotonic()
        try:
            await asyncio.wait_for(self._render_into(url, page, result), self.deadline_s)
        except RenderFailure as exc:
            result.status, result.error, result.error_class = exc.status, str(exc), exc.error_class
        except BlockedURLError as exc:
            result.status, result.error, result.error_class = Status.REFUSED, str(exc), "refused"
        except DNSLookupError as exc:
            result.error, result.error_class = str(exc), "dns"
        except RobotsUnavailableError as exc:
            result.error = f"robots.txt unavailable, not fetching: {exc}"
            result.error_class = "robots_unavailable"
        except (PlaywrightTimeout, TimeoutError):
            result.error = self._timeout_message(page, since)
            result.error_class = "timeout"
        except PlaywrightError as exc:
            self._classify_browser_error(url, page, str(exc).splitlines()[0], since, result)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as exc:
            result.error, result.error_class = f"{type(exc).__name__}: {exc}", "invalid"
        except Exception as exc:  # a bug or a surprise: this URL's failure, never the batch's
            result.error = f"{type(exc).__name__}: {exc}"
            result.error_class = "exception"
            result.traceback = traceback.format_exc()
        finally:
            # A tab whose render went wrong after navigating may still be on its way somewhere
            # (an error page, a redirect, a script): replace it rather than lend it on.
            watch = _watch(page)
            healthy = (
                not watch.went
                or result.status == Status.OK
                or result.error_class in ("http_client_error", "http_transient")
            )
            await self._recycle(page, healthy)
        result.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    def _timeout_message(self, page: Page, since: float) -> str:
        cut = self._event(page, since, "too_large", "stalled")
        if cut:
            return f"render timed out: {cut.message} ({cut.target[:120]})"
        return (
            f"render timed out after {time.monotonic() - since:.0f} s (navigation limit "
            f"{self.settings.navigation_timeout_s:.0f} s) with no text on the page; retried on "
            "the next ingest (MEDIA_ASSETS_NAVIGATION_TIMEOUT_S for slow sites)"
        )

    def _classify_browser_error(
        self, url: str, page: Page, message: str, since: float, result: RenderResult
    ) -> None:
        """The class of a browser failure, from what the egress proxy saw when the browser only
        says a tunnel failed or a connection closed."""
        document = _watch(page).document
        event = self._event(page, since)
        if "ERR_HTTP_RESPONSE_CODE_FAILURE" in message and document:
            result.http_status = document.status
            result.error = f"HTTP {document.status}"
            result.error_class = classify_http(document.status)
        elif event and event.kind in ("refused", "blocked"):
            result.status, result.error_class = Status.REFUSED, "refused"
            result.error = f"{url[:200]} leads to a refused address: {event.message}"
        elif event and event.kind in ("dns", "unreachable", "too_large"):
            result.error, result.error_class = event.message, event.error_class
        elif "Download is starting" in message or (
            document and not _is_page(document.content_type)
        ):
            result.content_type = (document.content_type or None) if document else None
            result.error = f"{url[:200]}: {unsupported_message(result.content_type)}"
            result.error_class = UNSUPPORTED
        elif "ERR_TOO_MANY_REDIRECTS" in message:
            result.error, result.error_class = "redirect loop: too many redirects", "redirect_loop"
        elif "ERR_BLOCKED_BY_CLIENT" in message or "ERR_UNSAFE_REDIRECT" in message:
            result.status, result.error_class = Status.REFUSED, "refused"
            result.error = f"{url[:200]} redirects to a URL the fetch policy refuses (not http(s))"
        else:
            result.error = f"browser error: {message}"
            result.error_class = "network" if "net::ERR_" in message else "browser"

    async def _render_into(self, url: str, page: Page, result: RenderResult) -> None:
        settings = self.settings
        await self.policy.check_async(url)
        host = (urlsplit(url).hostname or "").lower()
        self.guard.sites.add(_site(host))
        if self.egress is not None:
            self.egress.add_first_party(host)
        assert self._context is not None and self._http is not None
        t0 = time.perf_counter()
        crawl_delay = 0.0
        if settings.respect_robots:
            rules = await self.robots.rules_for(url, self._http)
            if not rules.allowed(url, settings.user_agent):
                result.status = Status.BLOCKED_BY_ROBOTS
                result.error = f"robots.txt disallows {urlsplit(url).path} for this user agent"
                result.error_class = "robots_disallow"
                return
            crawl_delay = rules.crawl_delay(settings.user_agent)
        result.timings_ms["robots"] = round((time.perf_counter() - t0) * 1000, 1)
        result.timings_ms["throttle"] = round(await self.throttle.wait(url, crawl_delay) * 1000, 1)

        watch = _watch(page)
        watch.reset()
        since = time.monotonic()
        t1 = time.perf_counter()
        watch.went = True
        loaded = True
        try:
            await page.goto(url, wait_until="domcontentloaded")
        except PlaywrightTimeout:
            # Scripts that hang hold the DOM's loaded event, not what arrived: a page whose
            # document came and shows text is captured as it is (settled: false); a timeout is
            # worth a retry only when nothing of the page loaded.
            if watch.document is None or not await _shows_text(page):
                raise
            loaded = False
        except PlaywrightError as exc:
            # A document sent as a download (Content-Disposition: attachment) is taken as one.
            if "Download is starting" not in str(exc) or not _is_document(watch.document):
                raise
        result.timings_ms["navigate"] = round((time.perf_counter() - t1) * 1000, 1)
        document = watch.document
        if document is None:
            raise RenderFailure("no response for the document", "network")
        if await self._judge_document(page, document, since, result):
            return
        t2 = time.perf_counter()
        settled = await self._settle(page, watch) if loaded else False
        result.timings_ms["settle"] = round((time.perf_counter() - t2) * 1000, 1)
        moved = watch.document
        # A meta refresh or a script moved the tab on: judge the document it ended on.
        if (
            moved is not None
            and moved.url != document.url
            and await self._judge_document(page, moved, since, result)
        ):
            return
        html = await self._content(page, watch)
        result.final_url = page.url
        # The document over the cap fails the page; a subresource cut there (a large video the
        # page preloads) costs only itself.
        last = watch.document or document
        cut = self._event(page, since, "too_large", only=_egress_target(last.url))
        if cut or len(html.encode()) > settings.max_page_bytes:
            raise RenderFailure(
                f"page is over the {settings.max_page_bytes}-byte cap; the transfer was stopped",
                "too_large",
            )
        result.html, result.bytes = html, len(html.encode())
        result.title = await self._title(page)
        result.requests_refused = watch.refused + len(watch.refused_requests)
        result.blocked_requests = len(watch.blocked)
        result.settled = settled
        result.status = Status.OK

    def _event(
        self, page: Page, since: float, *kinds: EventKind, only: str | None = None
    ) -> EgressEvent | None:
        """What the egress proxy refused or cut for this tab since ``since`` (other tabs of the
        batch share the proxy session, so events are matched by where the tab's requests went),
        or for the one target ``only``."""
        if self.egress is None:
            return None
        targets = {only} if only else _watch(page).targets
        return next(
            (
                e
                for e in list(self.egress.events)
                if e.at >= since and (not kinds or e.kind in kinds) and e.target in targets
            ),
            None,
        )

    def _check_document(
        self, page: Page, document: _Document, since: float, result: RenderResult
    ) -> None:
        """Fail the render when the document is the proxy's refusal, an HTTP error, over the
        cap by its declared length, or not a page at all."""
        if document.egress:
            event = self._event(page, since)
            message = event.message if event else f"egress proxy: {document.egress}"
            error_class = event.error_class if event else "network"
            raise RenderFailure(
                message, error_class, Status.REFUSED if error_class == "refused" else Status.FAILED
            )
        result.http_status = document.status
        if document.status >= 400:
            raise RenderFailure(f"HTTP {document.status}", classify_http(document.status))
        declared = int(document.headers.get("content-length") or 0)
        if declared > self.settings.max_page_bytes:
            raise RenderFailure(
                f"page declares {declared} bytes, over the {self.settings.max_page_bytes}-byte cap;"
                " raise MEDIA_ASSETS_MAX_PAGE_BYTES if this page is wanted",
                "too_large",
            )
        result.content_type = document.content_type or None
        if not _is_page(document.content_type) and not _is_document(document):
            raise RenderFailure(unsupported_message(document.content_type), UNSUPPORTED)

    async def _judge_document(
        self, page: Page, document: _Document, since: float, result: RenderResult
    ) -> bool:
        """Check the document (``_check_document``); a PDF, plain text or Markdown file is then
        taken as it is, and True says the render is done."""
        self._check_document(page, document, since, result)
        fmt = document_format(document.content_type, document.url)
        if fmt is not None:
            await self._take_document(page, document.url, fmt, since, result)
        return fmt is not None

    async def _take_document(
        self, page: Page, url: str, fmt: DocumentFormat, since: float, result: RenderResult
    ) -> None:
        """Take a PDF, plain text or Markdown file as it is, fetched through the egress proxy
        under the page's byte cap (Chromium's PDF viewer and downloads do not give the bytes);
        the extraction stage reads it."""
        assert self._http is not None
        started = time.perf_counter()
        try:
            fetched = await fetch_document(
                self._http,
                url,
                fmt,
                user_agent=self.settings.user_agent,
                max_bytes=self.settings.max_page_bytes,
                timeout_s=self.settings.navigation_timeout_s,
            )
        except DocumentError as exc:
            # The proxy's cut (bytes, stall) says more than the connection it closed.
            cut = self._event(page, since, "too_large", "too_slow", "stalled", "deadline")
            if cut and exc.error_class in ("network", "timeout"):
                raise RenderFailure(cut.message, cut.error_class) from exc
            raise RenderFailure(str(exc), exc.error_class) from exc
        if self._event(page, since, "too_large"):
            # A body without a declared length ends where the proxy cut it, which looks whole.
            raise RenderFailure(
                f"document is over the {self.settings.max_page_bytes}-byte cap; the transfer was"
                " stopped (raise MEDIA_ASSETS_MAX_PAGE_BYTES if this document is wanted)",
                "too_large",
            )
        result.timings_ms["document"] = round((time.perf_counter() - started) * 1000, 1)
        result.document, result.bytes = fetched, len(fetched.data)
        result.final_url, result.http_status = fetched.url, fetched.http_status
        result.content_type = fetched.media_type.split(";")[0].strip().lower() or None
        result.status = Status.OK

    async def _content(self, page: Page, watch: _PageWatch) -> str:
        """The DOM as HTML; a tab still navigating (a late script redirect) is given the time
        to arrive once more before its HTML is read."""
        for _ in range(MAX_PAGE_NAVIGATIONS):
            try:
                return await page.evaluate(CONTENT_JS)
            except PlaywrightError as exc:
                if not _navigating(exc):
                    raise
                await page.wait_for_load_state("domcontentloaded")
        raise RenderFailure(
            f"the page kept navigating ({watch.navigations} navigations)", "redirect_loop"
        )

    @staticmethod
    async def _title(page: Page) -> str | None:
        """The title, or none when a late navigation took the document away meanwhile (the
        HTML is already read; the title is not worth a failure)."""
        try:
            return (await page.title()) or None
        except PlaywrightError as exc:
            if not _navigating(exc):
                raise
            return None

    async def _recycle(self, page: Page, healthy: bool) -> None:
        """Return the tab to the pool; one that failed mid-navigation is replaced by a fresh one.
        A tab that will not close is left to die with its context at the end of the batch."""
        if not healthy:
            _WATCHES.pop(id(page), None)
            with contextlib.suppress(TimeoutError, PlaywrightError):
                await asyncio.wait_for(page.close(), CLOSE_TIMEOUT_S)
            page = await self._new_page()
        self._pages.put_nowait(page)

    async def _settle(self, page: Page, watch: _PageWatch) -> bool:
        """Wait until the network is quiet and the visible text stops changing.

        Cheaper than Playwright's ``networkidle`` (a fixed 500 ms of silence per page) and right for
        single-page apps that fill the body from script after the document has loaded; ``False``
        when the page was still busy at the deadline (it is captured as it is then). A meta
        refresh or script redirect destroys the page being measured: the new document is waited
        for and measured instead, up to a few times (a loop is a loop).
        """
        settings = self.settings
        deadline = time.monotonic() + settings.settle_timeout_s
        previous: list[Any] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            try:
                state = await page.evaluate(SCROLL_TEXT_SIZE_JS)
            except PlaywrightError as exc:
                if not _navigating(exc):
                    raise
                if watch.navigations > MAX_PAGE_NAVIGATIONS:
                    raise RenderFailure(
                        f"the page kept navigating ({watch.navigations} navigations)",
                        "redirect_loop",
                    ) from exc
                with contextlib.suppress(PlaywrightError):
                    await page.wait_for_load_state(
                        "domcontentloaded", timeout=max(deadline - time.monotonic(), 0.1) * 1000
                    )
                previous = None
                continue
            now = time.monotonic()
            if state != previous or watch.inflight:
                previous, quiet_since = state, now
            elif state[0] > 0 and now - quiet_since >= settings.settle_quiet_s:
                return True
            await asyncio.sleep(settings.settle_poll_s)
        return False  # never quiet: captured at the deadline, and the artifact says so


MAX_PAGE_NAVIGATIONS = 5
# A third-party host that accepts a connection and never answers holds a parser-blocking script,
# and so the page's text, this long.
SUBRESOURCE_FIRST_BYTE_S = 5.0
CLOSE_TIMEOUT_S = 5.0


async def _shows_text(page: Page) -> bool:
    with contextlib.suppress(PlaywrightError):
        return bool(await page.evaluate(TEXT_SIZE_JS))
    return False


def _navigating(exc: PlaywrightError) -> bool:
    text = str(exc)
    return "Execution context was destroyed" in text or "is navigating" in text


def _count_navigation(watch: _PageWatch, frame: Frame) -> None:
    if frame.parent_frame is None:
        watch.navigations += 1


# text/plain is a document (media_assets/web/documents.py), fetched as a file, not rendered.
PAGE_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")


def _is_page(content_type: str) -> bool:
    """Whether a document of this type has text to index; a missing type is given the benefit of
    the doubt (Chromium sniffs it)."""
    return not content_type or content_type in PAGE_TYPES


def _is_document(document: _Document | None) -> bool:
    """Whether the response is a PDF, plain text or Markdown file to take as it is."""
    return document is not None and document_format(document.content_type, document.url) is not None


def _egress_target(url: str) -> str:
    """How the egress proxy names a request: by URL when plain HTTP, by host:port when tunnelled."""
    if url.startswith("http:"):
        return url.split("#")[0]
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or 443}"


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
            from playwright.async_api import async_playwright

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
        # Bounded: a browser that will not close is taken down with Playwright's driver.
        if browser is not None:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT_S * 2)
        if playwright is not None:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                await asyncio.wait_for(playwright.stop(), CLOSE_TIMEOUT_S * 2)

    async def discard(self) -> None:
        """Drop the browser (a context that would not close); the next batch starts a new one."""
        await self._shutdown()

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
