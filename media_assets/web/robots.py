"""robots.txt (via protego) and a per-host rate limit that honours Crawl-delay."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
from protego import Protego

from media_assets.egress import EGRESS_HEADER, raise_for_refusal
from media_assets.web.safety import AddressPolicy, BlockedURLError

MAX_ROBOTS_BYTES = 512_000
MAX_REDIRECTS = 5


class RobotsUnavailableError(Exception):
    """robots.txt could not be read (5xx or network): per RFC 9309, assume disallowed for now."""


@dataclass
class RobotsRules:
    parser: Protego | None  # None: no robots.txt (4xx), everything allowed

    def allowed(self, url: str, user_agent: str) -> bool:
        return self.parser is None or self.parser.can_fetch(url, user_agent)

    def crawl_delay(self, user_agent: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(user_agent)
        rate = self.parser.request_rate(user_agent)
        from_rate = rate.seconds / rate.requests if rate and rate.requests else 0.0
        return max(float(delay or 0.0), from_rate)


@dataclass
class RobotsCache:
    """Fetches each origin's robots.txt once, through the same address policy as the pages."""

    policy: AddressPolicy
    user_agent: str
    timeout_s: float = 10.0
    _rules: dict[str, RobotsRules] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @staticmethod
    def origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    async def rules_for(self, url: str, client: httpx.AsyncClient) -> RobotsRules:
        origin = self.origin(url)
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._rules:
                self._rules[origin] = await self._fetch(origin, client)
        return self._rules[origin]

    async def _fetch(self, origin: str, client: httpx.AsyncClient) -> RobotsRules:
        target = f"{origin}/robots.txt"
        for _ in range(MAX_REDIRECTS + 1):
            await self.policy.check_async(target)
            try:
                response = await client.get(
                    target,
                    headers={"User-Agent": self.user_agent},
                    timeout=self.timeout_s,
                    follow_redirects=False,
                )
            except httpx.ProxyError as exc:
                raise_for_refusal(str(exc))
                raise RobotsUnavailableError(f"{target}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise RobotsUnavailableError(f"{target}: {type(exc).__name__}: {exc}") from exc
            raise_for_refusal(response.reason_phrase, response.headers.get(EGRESS_HEADER))
            if response.is_redirect and "location" in response.headers:
                target = urljoin(target, response.headers["location"])
                continue
            if response.status_code >= 500:
                raise RobotsUnavailableError(f"{target}: HTTP {response.status_code}")
            if response.status_code >= 400:
                return RobotsRules(None)
            return RobotsRules(Protego.parse(response.text[:MAX_ROBOTS_BYTES]))
        raise RobotsUnavailableError(f"{origin}/robots.txt: more than {MAX_REDIRECTS} redirects")


@dataclass
class HostThrottle:
    """Spaces requests to one host by max(1 / rate, Crawl-delay)."""

    requests_per_second: float
    _next_slot: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def wait(self, url: str, crawl_delay: float = 0.0) -> float:
        """Sleep until this host's next slot; returns the seconds waited."""
        host = urlsplit(url).netloc
        interval = max(
            1.0 / self.requests_per_second if self.requests_per_second > 0 else 0.0, crawl_delay
        )
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, now))
            self._next_slot[host] = slot + interval
        delay = slot - now
        if delay > 0:
            await asyncio.sleep(delay)
        return delay


__all__ = [
    "BlockedURLError",
    "HostThrottle",
    "RobotsCache",
    "RobotsRules",
    "RobotsUnavailableError",
]
