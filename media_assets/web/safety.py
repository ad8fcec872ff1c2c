"""Which URLs may be fetched: http(s) only, no private or metadata addresses unless allow-listed.

The check runs on the addresses a host name resolves to, so a public-looking name that points at
127.0.0.1 or 169.254.169.254 is refused like the literal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints that are not all covered by the link-local rule.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")


class BlockedURLError(Exception):
    """A URL the fetch policy refuses; permanent for that URL."""


@dataclass
class AddressPolicy:
    """Refuses non-public destinations unless the host or network is allow-listed."""

    allow: Iterable[str] = ()
    _hosts: set[str] = field(init=False, default_factory=set)
    _networks: list[IPNetwork] = field(init=False, default_factory=list)
    _resolved: dict[str, list[IPAddress]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.allow:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._hosts.add(entry.lower())

    def _allowed_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

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

    def check_scheme(self, url: str) -> tuple[str, str]:
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

    def check_addresses(self, url: str, host: str, addresses: Iterable[IPAddress]) -> None:
        if host in self._hosts:
            return
        if host in METADATA_HOSTS:
            raise BlockedURLError(f"{url[:200]!r}: cloud metadata host {host!r} is never fetched")
        for address in addresses:
            if not self.is_public(address) and not self._allowed_address(address):
                raise BlockedURLError(
                    f"{url[:200]!r}: {host} resolves to non-public address {address}; "
                    "allow-list it in the fetch policy (allow_hosts) if this is intended"
                )

    def check(self, url: str) -> None:
        """Blocking check, resolving DNS with the system resolver."""
        _, host = self.check_scheme(url)
        self.check_addresses(url, host, self._resolve_sync(host))

    async def check_async(self, url: str) -> None:
        _, host = self.check_scheme(url)
        if host not in self._resolved and host not in self._hosts:
            self._resolved[host] = await asyncio.to_thread(self._lookup, host)
        self.check_addresses(url, host, self._resolved.get(host, []))

    def _resolve_sync(self, host: str) -> list[IPAddress]:
        if host not in self._resolved and host not in self._hosts:
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
            raise BlockedURLError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
        return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
