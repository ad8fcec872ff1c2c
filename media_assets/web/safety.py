"""Which destinations may be fetched: http(s) only, no private or metadata addresses unless
allow-listed.

The rule is applied to the addresses a host name resolves to, so a public-looking name that points
at 127.0.0.1 or 169.254.169.254 is refused like the literal address. ``media_assets.egress``
applies it where each connection is made; the checks here answer early, with the reason, for a
URL about to be fetched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints that are not all covered by the link-local rule.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")


class BlockedURLError(Exception):
    """A URL the fetch policy refuses; permanent for that URL."""

    error_class = "refused"


class DNSLookupError(Exception):
    """A host name that does not resolve now; worth another try later (resolvers have outages)."""

    error_class = "dns"


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a host name or a network, on any port or on one."""

    host: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowEntry:
        """``example.internal``, ``example.internal:8080``, ``10.0.0.0/8``, ``127.0.0.1``,
        ``127.0.0.1:8080``, ``[::1]:8080`` or ``::1``; anything else is an error now, not a
        policy that silently refuses everything later."""
        text = entry.strip()
        problem = (
            f"allow-list entry {entry!r} is not a host, host:port or network (CIDR); "
            "fix MEDIA_ASSETS_ALLOW_HOSTS (comma-separated), e.g. 127.0.0.1,10.0.0.0/8,"
            "intranet.example:8080"
        )
        if not text:
            raise ValueError(problem)
        try:
            return cls(network=ipaddress.ip_network(text.strip("[]"), strict=False))
        except ValueError:
            pass
        if "://" in text or "/" in text:
            raise ValueError(problem)
        split = urlsplit(f"//{text}")
        try:
            port = split.port
        except ValueError:
            raise ValueError(problem) from None
        host = (split.hostname or "").rstrip(".")
        if not host:
            raise ValueError(problem)
        try:
            return cls(network=ipaddress.ip_network(host), port=port)
        except ValueError:
            pass
        if not HOST_NAME.match(host):
            raise ValueError(problem)
        return cls(host=host, port=port)

    def allows(self, host: str, port: int, address: IPAddress | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        return address is not None and self.network is not None and address in self.network


@dataclass
class AddressPolicy:
    """Refuses non-public destinations unless the host or network is allow-listed."""

    allow: Iterable[str] = ()
    entries: list[AllowEntry] = field(init=False, default_factory=list)
    _resolved: dict[str, list[IPAddress]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.entries = [AllowEntry.parse(entry) for entry in self.allow]

    @staticmethod
    def is_public(address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return not (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or address in CARRIER_GRADE_NAT
        )

    def refusal(self, host: str, port: int, addresses: Iterable[IPAddress]) -> str | None:
        """Why ``host:port`` at ``addresses`` may not be fetched, or ``None`` when it may."""
        if any(e.allows(host, port, None) for e in self.entries if e.host):
            return None
        if host in METADATA_HOSTS:
            return f"cloud metadata host {host!r} is never fetched"
        for address in addresses:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not self.is_public(address) and not any(
                e.allows(host, port, address) for e in self.entries
            ):
                return (
                    f"{host}:{port} resolves to non-public address {address}; allow-list it in "
                    "the fetch policy (MEDIA_ASSETS_ALLOW_HOSTS) if this is intended"
                )
        return None

    @staticmethod
    def check_scheme(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedURLError(
                f"scheme {parts.scheme or '(none)'!r} refused in {url[:200]!r}: "
                "only http(s) is fetched"
            )
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise BlockedURLError(f"no host in {url[:200]!r}")
        return parts.scheme, host

    @staticmethod
    def port_of(url: str) -> int:
        parts = urlsplit(url)
        try:
            return parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise BlockedURLError(f"invalid port in {url[:200]!r}") from exc

    def check_addresses(self, url: str, host: str, addresses: Iterable[IPAddress]) -> None:
        reason = self.refusal(host, self.port_of(url), addresses)
        if reason:
            raise BlockedURLError(f"{url[:200]!r}: {reason}")

    def check(self, url: str) -> None:
        """Blocking check, resolving DNS with the system resolver."""
        _, host = self.check_scheme(url)
        self.check_addresses(url, host, [])  # names refused as names need no look-up
        self.check_addresses(url, host, self._resolve_sync(host))

    async def check_async(self, url: str) -> None:
        _, host = self.check_scheme(url)
        self.check_addresses(url, host, [])
        if host not in self._resolved and not self._host_allowed(host):
            self._resolved[host] = await asyncio.to_thread(self._lookup, host)
        self.check_addresses(url, host, self._resolved.get(host, []))

    def _host_allowed(self, host: str) -> bool:
        return any(e.host == host for e in self.entries)

    def _resolve_sync(self, host: str) -> list[IPAddress]:
        if host not in self._resolved and not self._host_allowed(host):
            self._resolved[host] = self._lookup(host)
        return self._resolved.get(host, [])

    @staticmethod
    def _lookup(host: str) -> list[IPAddress]:
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            return [literal]
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise DNSLookupError(
                f"cannot resolve host {host!r}: {exc.strerror} (retried later; the page keeps its "
                "index rows meanwhile; check the host name)"
            ) from exc
        except UnicodeError as exc:
            raise BlockedURLError(f"host {host[:80]!r} is not a valid host name: {exc}") from exc
        return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
