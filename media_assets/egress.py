"""One address policy for every fetch, checked where the connection is made.

Every tool that fetches on behalf of a URL — Chromium, httpx, yt-dlp, ffmpeg and ffprobe — goes
through a forward proxy on 127.0.0.1 inside this process. The proxy resolves each host itself,
checks every address against the fetch policy and connects to exactly the address it checked, so
redirects, a page's own scripts, HLS/DASH segments and a DNS answer that changes between a check
and a connect (rebinding) all meet the same rule. It also bounds what a fetch may cost — bytes,
a minimum rate, an idle limit, a deadline — counted as the bytes arrive, so a cap stops a transfer
instead of judging it after it is in memory.

Clients reach it through a :class:`Session` (``with egress_session(allow, limits) as s``), whose
URL carries the session's name as proxy credentials: the limits and the record of what was
refused or cut belong to that session. A refusal is answered ``403`` with the reason in the status
line (which every client quotes in its own error) and in the ``X-Media-Assets-Egress`` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from media_assets.web.blocklist import TrackerBlocklist, site
from media_assets.web.safety import AddressPolicy, BlockedURLError, DNSLookupError, IPAddress

EventKind = Literal[
    "refused", "blocked", "dns", "unreachable", "too_large", "too_slow", "stalled", "deadline"
]
EGRESS_HEADER = "X-Media-Assets-Egress"
# What each kind of event means for the URL that caused it (see media_assets.retry).
ERROR_CLASS: dict[str, str] = {
    "refused": "refused",
    "blocked": "refused",
    "dns": "dns",
    "unreachable": "network",
    "too_large": "too_large",
    "too_slow": "timeout",
    "stalled": "timeout",
    "deadline": "timeout",
}
REFUSED_TEXT = "refused by fetch policy"
DNS_TEXT = "DNS lookup failed"
CHUNK = 64 * 1024
DNS_TTL_S = 30.0
DNS_FAILURE_TTL_S = 10.0


@dataclass(frozen=True)
class Limits:
    """What one session's fetches may cost. ``None`` or 0 means no limit of that kind."""

    max_bytes: int | None = None  # all of the session's responses together
    max_bytes_per_connection: int | None = None
    min_bytes_per_s: float = 0.0  # average per connection, judged after ``grace_s``
    grace_s: float = 15.0
    idle_s: float = 60.0  # no byte from the server for this long
    # The first byte from a host outside the session's ``first_party`` sites (a page's third-party
    # scripts): a server that accepts and never answers costs this, not ``idle_s``.
    first_byte_s: float | None = None
    deadline_s: float | None = None  # from the session's start
    # Refuse a response whose declared length is over a cap before its body comes. Off where a
    # client reads only the start of large responses (yt-dlp sniffing a media link).
    judge_declared_length: bool = True
    connect_timeout_s: float = 15.0
    dns_timeout_s: float = 10.0
    # What a person can do about a cut, by event kind ("raise MEDIA_ASSETS_… if it is wanted").
    hints: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EgressEvent:
    kind: EventKind
    target: str  # host:port, or the URL of a plain-HTTP request
    message: str
    at: float

    @property
    def error_class(self) -> str:
        return ERROR_CLASS[self.kind]


@dataclass
class Session:
    """One client's use of the proxy: its limits, its byte count, what was refused or cut."""

    proxy: EgressProxy
    name: str
    limits: Limits
    started: float = field(default_factory=time.monotonic)
    bytes_received: int = 0
    requests: int = 0
    events: list[EgressEvent] = field(default_factory=list)
    # Known ad and tracker hosts are answered at once (no look-up, no connection), except the
    # hosts of the pages being fetched (``first_party``), which are never refused for a list.
    blocklist: TrackerBlocklist | None = None
    first_party: set[str] = field(default_factory=set)
    blocked_targets: set[str] = field(default_factory=set)
    first_party_sites: set[str] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        """Proxy URL for httpx, yt-dlp and ffmpeg (the session's name as credentials)."""
        return f"http://{self.name}:x@127.0.0.1:{self.proxy.port}"

    def playwright_proxy(self) -> dict[str, str]:
        """Proxy settings for a Playwright browser context. ``<-loopback>`` matters: Chromium
        otherwise never proxies loopback hosts, and 127.0.0.2 is loopback."""
        return {
            "server": f"http://127.0.0.1:{self.proxy.port}",
            "username": self.name,
            "password": "x",
            "bypass": "<-loopback>",
        }

    def first(self, *kinds: EventKind, since: float = 0.0, target: str = "") -> EgressEvent | None:
        """The first event of one of ``kinds`` (all kinds when none given), at or after
        ``since``, whose target names ``target`` (a host) when one is given."""
        for event in list(self.events):
            if (
                (not kinds or event.kind in kinds)
                and event.at >= since
                and (not target or target in event.target)
            ):
                return event
        return None

    def refused_count(self, since: float = 0.0) -> int:
        return sum(1 for e in list(self.events) if e.kind == "refused" and e.at >= since)

    def record(self, kind: EventKind, target: str, message: str) -> EgressEvent:
        event = EgressEvent(kind, target, message, time.monotonic())
        self.events.append(event)
        return event

    def add_first_party(self, host: str) -> None:
        """A host whose pages are fetched: never blocked, and its site waits ``idle_s``."""
        self.first_party.add(host.lower())
        self.first_party_sites.add(site(host))

    def first_byte_s(self, host: str) -> float:
        """How long ``host`` may take to send its first byte."""
        if self.limits.first_byte_s and site(host) not in self.first_party_sites:
            return min(self.limits.first_byte_s, self.limits.idle_s)
        return self.limits.idle_s

    def close(self) -> None:
        self.proxy.end_session(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Cut(Exception):
    """A transfer stopped by a limit; the event is already recorded."""


class EgressProxy:
    """A forward proxy (plain HTTP and CONNECT) enforcing one :class:`AddressPolicy`."""

    def __init__(self, policy: AddressPolicy, loop: asyncio.AbstractEventLoop):
        self.policy = policy
        self.loop = loop
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._names = itertools.count(1)
        self._dns: dict[str, tuple[float, list[IPAddress] | str]] = {}
        # One look-up per host at a time: a page asking an unresolvable host for twenty scripts
        # at once waits on one answer, not twenty in the resolver's small thread pool.
        self._lookups: dict[str, asyncio.Future[list[IPAddress] | str]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]

    def session(self, limits: Limits | None = None) -> Session:
        with self._lock:
            session = Session(self, f"s{next(self._names)}{os.getpid()}", limits or Limits())
            self._sessions[session.name] = session
        return session

    def end_session(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.name, None)
        for writer in list(session._writers):
            self.loop.call_soon_threadsafe(_abort, writer)

    # --- one client connection --------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            _abort(writer)
            return
        try:
            await self._serve(head, reader, writer)
        except (OSError, asyncio.IncompleteReadError, _Cut):
            pass
        finally:
            _abort(writer)

    async def _serve(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3:
            await _reply(writer, 400, "Bad Request", "malformed request line", "invalid")
            return
        method, target, version = parts
        headers = [line for line in header_lines if line]
        session = self._session_for(headers)
        if session is None:
            await _reply(
                writer,
                407,
                "Proxy Authentication Required",
                "no egress session",
                "auth",
                extra={"Proxy-Authenticate": 'Basic realm="media-assets egress"'},
            )
            return
        session.requests += 1
        if method == "CONNECT":
            host, port = _split_host_port(target, 443)
            label = f"{host}:{port}"
        else:
            split = urlsplit(target)
            if split.scheme != "http" or not split.hostname:
                await _reply(
                    writer, 400, "Bad Request", f"not a proxy request: {target[:200]}", "invalid"
                )
                return
            host, port, label = split.hostname, split.port or 80, target
        upstream = await self._open(session, host, port, label, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        session._writers.update((writer, up_writer))
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(_origin_request(method, target, version, headers))
                await up_writer.drain()
            first_byte_s = session.first_byte_s(host)
            await self._relay(session, label, reader, writer, up_reader, up_writer, first_byte_s)
        finally:
            session._writers.discard(writer)
            session._writers.discard(up_writer)
            _abort(up_writer)

    def _session_for(self, headers: list[str]) -> Session | None:
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() != "basic":
                    return None
                try:
                    user = base64.b64decode(token).decode().partition(":")[0]
                except ValueError:
                    return None
                with self._lock:
                    return self._sessions.get(user)
        return None

    async def _open(
        self, session: Session, host: str, port: int, label: str, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Resolve, check every address, connect to a checked one; or answer why not."""
        host = host.lower().rstrip(".")
        if session.blocklist and (listed := session.blocklist.match(host, session.first_party)):
            message = f"{host} is a known ad or tracker host ({listed}); not requested"
            session.blocked_targets.add(label)
            session.record("blocked", label, message)
            await _reply(writer, 403, "Forbidden", message, "blocked")
            return None
        addresses = await self._resolve(host, session.limits.dns_timeout_s)
        if isinstance(addresses, str):
            message = f"{DNS_TEXT} for {host}: {addresses} (retried later; check the host name)"
            session.record("dns", label, message)
            await _reply(writer, 502, "Bad Gateway", message, "dns")
            return None
        refusal = self.policy.refusal(host, port, addresses)
        if refusal is None and any(a.is_loopback for a in addresses) and port == self.port:
            refusal = f"{host}:{port} is the egress proxy itself"
        if refusal:
            message = f"{REFUSED_TEXT}: {refusal}"
            session.record("refused", label, message)
            await _reply(writer, 403, "Forbidden", message, "refused")
            return None
        errors = []
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=CHUNK),
                    session.limits.connect_timeout_s,
                )
            except (OSError, TimeoutError) as exc:
                errors.append(
                    f"{address}: {exc.strerror or type(exc).__name__}"
                    if isinstance(exc, OSError)
                    else f"{address}: timed out"
                )
        message = f"cannot connect to {host}:{port} ({'; '.join(errors)})"
        session.record("unreachable", label, message)
        await _reply(writer, 502, "Bad Gateway", message, "unreachable")
        return None

    async def _resolve(self, host: str, timeout: float) -> list[IPAddress] | str:
        """Addresses of ``host`` or why there are none; answers are kept briefly (a failed
        look-up too, so a page asking an unreachable host fifty times waits once)."""
        with contextlib.suppress(ValueError):
            return [ipaddress.ip_address(host.strip("[]"))]
        cached = self._dns.get(host)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        if host in self._lookups:
            return await asyncio.shield(self._lookups[host])
        lookup = self._lookups[host] = self.loop.create_future()
        try:
            answer = await self._lookup(host, timeout)
        except BaseException:
            lookup.cancel()  # this connection went away mid-look-up: the waiters' go too
            raise
        finally:
            del self._lookups[host]
        lookup.set_result(answer)
        return answer

    async def _lookup(self, host: str, timeout: float) -> list[IPAddress] | str:
        try:
            infos = await asyncio.wait_for(
                self.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout
            )
            answer: list[IPAddress] | str = sorted(
                {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos},
                key=lambda a: (a.version, str(a)),
            )
            ttl = DNS_TTL_S
        except (OSError, UnicodeError, TimeoutError) as exc:
            answer = getattr(exc, "strerror", None) or type(exc).__name__
            ttl = DNS_FAILURE_TTL_S
        self._dns[host] = (time.monotonic() + ttl, answer)
        return answer

    async def _relay(
        self,
        session: Session,
        label: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        first_byte_s: float,
    ) -> None:
        """Client bytes go up as they come; server bytes come down counted against the limits.
        The exchange ends when the server is done (or cut); the client's end of sending is not
        the end of the response."""
        upward = asyncio.create_task(_pipe(reader, up_writer))
        try:
            await self._download(session, label, up_reader, writer, first_byte_s)
        finally:
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upward

    async def _download(
        self,
        session: Session,
        label: str,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        first_byte_s: float,
    ) -> None:
        limits = session.limits
        started, received = time.monotonic(), 0
        # A plain-HTTP response's head is readable here: a declared length over a cap ends the
        # transfer before the body (a tunnelled one is judged by its bytes alone).
        plain = label.startswith("http://")
        head = b"" if plain and limits.judge_declared_length else None
        while True:
            now = time.monotonic()
            wait = limits.idle_s if received else first_byte_s
            if limits.deadline_s:
                wait = min(wait, session.started + limits.deadline_s - now)
            if wait <= 0:
                self._cut(
                    session,
                    "deadline",
                    label,
                    f"stopped after the {limits.deadline_s:.0f} s time limit",
                )
            try:
                data = await asyncio.wait_for(up_reader.read(CHUNK), wait)
            except TimeoutError:
                if limits.deadline_s and time.monotonic() >= session.started + limits.deadline_s:
                    self._cut(
                        session,
                        "deadline",
                        label,
                        f"stopped after the {limits.deadline_s:.0f} s time limit",
                    )
                idle = limits.idle_s if received else first_byte_s
                self._cut(session, "stalled", label, f"no data from the server for {idle:.0f} s")
            if not data:
                return
            if head is not None:
                head += data
                if b"\r\n\r\n" in head or len(head) > CHUNK:
                    self._check_declared_length(session, label, head)
                    head = None
            received += len(data)
            session.bytes_received += len(data)
            self._check_limits(session, label, received, time.monotonic() - started)
            writer.write(data)
            await writer.drain()

    def _check_declared_length(self, session: Session, label: str, head: bytes) -> None:
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head.split(b"\r\n\r\n")[0], re.I)
        declared = int(match.group(1)) if match else 0
        for cap in (session.limits.max_bytes_per_connection, session.limits.max_bytes):
            if cap and declared > cap:
                self._cut(
                    session,
                    "too_large",
                    label,
                    f"response declares {declared} bytes, over the {cap}-byte cap",
                )

    def _check_limits(self, session: Session, label: str, received: int, elapsed: float) -> None:
        limits = session.limits
        if limits.max_bytes_per_connection and received > limits.max_bytes_per_connection:
            self._cut(
                session,
                "too_large",
                label,
                f"response over the {limits.max_bytes_per_connection}-byte cap",
            )
        if limits.max_bytes and session.bytes_received > limits.max_bytes:
            self._cut(session, "too_large", label, f"download over the {limits.max_bytes}-byte cap")
        if limits.min_bytes_per_s and elapsed > limits.grace_s:
            rate = received / elapsed
            if rate < limits.min_bytes_per_s:
                self._cut(
                    session,
                    "too_slow",
                    label,
                    f"server sent {rate:.0f} B/s, under the minimum of "
                    f"{limits.min_bytes_per_s:.0f} B/s",
                )

    @staticmethod
    def _cut(session: Session, kind: EventKind, label: str, message: str) -> None:
        if hint := session.limits.hints.get(kind):
            message = f"{message}; {hint}"
        session.record(kind, label, message)
        raise _Cut(message)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


def _split_host_port(target: str, default_port: int) -> tuple[str, int]:
    split = urlsplit(f"//{target}")
    try:
        port = split.port or default_port
    except ValueError:
        port = default_port
    return split.hostname or "", port


HOP_BY_HOP = frozenset(
    {"connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "upgrade"}
)


def _origin_request(method: str, target: str, version: str, headers: list[str]) -> bytes:
    """The request as the origin server expects it: origin-form target, no proxy headers, and
    ``Connection: close`` so one proxied connection carries one request to one checked host."""
    split = urlsplit(target)
    path = split.path or "/"
    if split.query:
        path += f"?{split.query}"
    kept = [h for h in headers if h.partition(":")[0].strip().lower() not in HOP_BY_HOP]
    if not any(h.lower().startswith("host:") for h in kept):
        kept.insert(0, f"Host: {split.netloc}")
    lines = [f"{method} {path} {version}", *kept, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _reply(
    writer: asyncio.StreamWriter,
    status: int,
    reason: str,
    message: str,
    kind: str,
    extra: dict[str, str] | None = None,
) -> None:
    # The message rides in the status line: it is what curl, urllib, httpx and ffmpeg print.
    line = "".join(c if 32 <= ord(c) < 127 else "?" for c in message)[:300]
    body = (message + "\n").encode()
    head = [
        f"HTTP/1.1 {status} {reason}: {line}",
        f"{EGRESS_HEADER}: {kind}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    with contextlib.suppress(OSError):
        await writer.drain()


class _EgressHost:
    """The proxies of this process, one per policy, served from one event loop on its own
    thread so a busy stage (or Chromium's loop) never delays another's bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[tuple[str, ...], EgressProxy] = {}

    def proxy(self, allow_hosts: Sequence[str]) -> EgressProxy:
        key = tuple(sorted(allow_hosts))
        with self._lock:
            if key in self._proxies:
                return self._proxies[key]
            policy = AddressPolicy(key)  # a malformed entry fails here, before any fetch
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="egress", daemon=True).start()
            proxy = EgressProxy(policy, self._loop)
            asyncio.run_coroutine_threadsafe(proxy.start(), self._loop).result(timeout=10)
            self._proxies[key] = proxy
            return proxy


_HOST = _EgressHost()


def egress_session(
    allow_hosts: Sequence[str],
    limits: Limits | None = None,
    blocklist: TrackerBlocklist | None = None,
) -> Session:
    """A session on this process's proxy for ``allow_hosts``; use it as a context manager."""
    session = _HOST.proxy(allow_hosts).session(limits)
    session.blocklist = blocklist
    return session


def raise_for_refusal(status_line: str, marker: str | None = None) -> None:
    """Raise what the proxy's answer means — the refusal or DNS failure, with its reason — for a
    client that got it as a response (plain HTTP) or as a failed tunnel (HTTPS)."""
    if marker == "refused" or REFUSED_TEXT in status_line:
        raise BlockedURLError(status_line[status_line.find(REFUSED_TEXT) :] or status_line)
    if marker == "dns" or DNS_TEXT in status_line:
        raise DNSLookupError(status_line[status_line.find(DNS_TEXT) :] or status_line)


def subprocess_env(session: Session) -> dict[str, str]:
    """Environment for ffmpeg/ffprobe: every http(s) connection through ``session``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env["http_proxy"] = env["https_proxy"] = session.url
    return env


@contextlib.contextmanager
def session_or_none(allow_hosts: Sequence[str] | None, limits: Limits) -> Iterator[Session | None]:
    """A session when a policy is given; ``None`` otherwise (local files only)."""
    if allow_hosts is None:
        yield None
        return
    with egress_session(allow_hosts, limits) as session:
        yield session
