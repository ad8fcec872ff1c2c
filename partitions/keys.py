"""The URL -> partition key rule: normalize, then the first 16 hex of SHA-256."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that only say where a click came from; they never change the content.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "ref_src"}
)
TRACKING_PREFIXES = ("utm_",)
KEY_LENGTH = 16


class InvalidURLError(ValueError):
    """A manifest URL that cannot be ingested; the message says why and what to do."""


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def normalize_url(url: str) -> str:
    """Canonical form of an http(s) URL, so that spellings of one page share one key.

    Scheme and host lower-cased, default port dropped, fragment dropped, tracking parameters
    dropped, remaining query parameters sorted; an empty path becomes ``/``.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidURLError("empty URL: give an absolute http(s) URL")
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"unparsable URL {raw!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURLError(
            f"unsupported scheme {scheme or '(none)'!r} in {raw!r}: "
            "only http and https URLs are ingested"
        )
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidURLError(f"no host in {raw!r}: give an absolute http(s) URL")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username or parts.password:
        raise InvalidURLError(f"credentials in URL {raw!r}: pass secrets through the environment")
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def partition_key(url: str) -> str:
    """Partition key of a URL: the first 16 hex characters of SHA-256 of its normalized form."""
    return hashlib.sha256(normalize_url(url).encode("utf-8")).hexdigest()[:KEY_LENGTH]
