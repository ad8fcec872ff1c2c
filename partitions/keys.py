"""The URL -> partition key rule: normalize, then a readable slug and the first 16 hex of SHA-256.

The hash is the identity; the slug before it (host and path, at most 40 characters) is what a
person types into the UI's partition filter ("winter-bees") — partitions are otherwise opaque.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that only say where a click came from; they never change the content.
TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "ref_src"}
)
TRACKING_PREFIXES = ("utm_",)
KEY_LENGTH = 16
SLUG_LENGTH = 40
# A key is safe to quote into a filter, a file name or an S3 key: letters, digits, dots, hyphens.
KEY_PATTERN = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*-)?[0-9a-f]{16}$")
_PAGE_SUFFIX = re.compile(r"\.(?:html?|php|aspx?|jsp)$")
# DNS limits (RFC 1035), checked on the IDNA (xn--) form that resolvers are given.
MAX_LABEL_LENGTH = 63
MAX_HOST_LENGTH = 253
# Letters, digits and hyphens; underscores too, since real DNS names carry them and browsers
# accept them. Anything else in an ASCII host (quotes, backslashes, '%') is a mistake or a trick.
_ASCII_LABEL = re.compile(r"[a-z0-9_-]+")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
# Joiners are part of how some scripts and emoji are written; other invisible format characters
# (zero-width space, byte-order mark, direction marks) are pasted by mistake or to deceive.
_VISIBLE_FORMAT_CHARS = frozenset("\u200c\u200d")


class InvalidURLError(ValueError):
    """A manifest URL that cannot be ingested; the message says why and what to do."""


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def redact_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, so a message can show it.

    Works on the text alone: it must also hide secrets in URLs that do not parse.
    """
    scheme_end = url.find("//")
    start = 0 if scheme_end < 0 else scheme_end + 2
    end = next((i for i in range(start, len(url)) if url[i] in "/?#"), len(url))
    at = url.rfind("@", start, end)
    return url if at < 0 else f"{url[:start]}***{url[at:]}"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _bad_character(raw: str) -> str | None:
    """The first whitespace, control or invisible character of ``raw``, described."""
    if raw.isascii() and raw.isprintable() and " " not in raw:
        return None  # the common case, without a Unicode lookup a character (100k-line manifests)
    for position, char in enumerate(raw, start=1):
        category = unicodedata.category(char)
        if (
            char.isspace()
            or category == "Cc"
            or (category == "Cf" and char not in _VISIBLE_FORMAT_CHARS)
        ):
            name = unicodedata.name(char, "control character")
            return f"{name.lower()} (U+{ord(char):04X}) at character {position}"
    return None


def _label_too_long(label: str, length: int) -> InvalidURLError:
    return InvalidURLError(
        f"host label {_clip(label, 40)!r} is {length} characters long; DNS allows at most "
        f"{MAX_LABEL_LENGTH} per label"
    )


def _idna_label(label: str, shown: str, *, decode: bool = False) -> str:
    """The xn-- form of a Unicode label (or, with ``decode``, check that one decodes)."""
    try:
        return label.encode("ascii").decode("idna") if decode else label.encode("idna").decode()
    except UnicodeError:
        # The codec says "label empty or too long" for both; tell a long label by its length.
        if not decode and len(label.encode("punycode")) + len("xn--") > MAX_LABEL_LENGTH:
            raise _label_too_long(label, len(label.encode("punycode")) + len("xn--")) from None
        raise InvalidURLError(
            f"host label {_clip(label, 40)!r} in {_clip(shown)!r} is not a valid "
            "internationalized domain name (IDNA)"
        ) from None


def _check_host(host: str, shown: str) -> None:
    """Raise unless ``host`` is one a resolver accepts: valid IDNA, labels of 1 to 63 and at most
    253 characters in all. The resolver raises a bare UnicodeError for these much later."""
    if ":" in host:  # an IPv6 literal; a zone id arrives percent-encoded
        try:
            ipaddress.ip_address(host.replace("%25", "%"))
        except ValueError:
            raise InvalidURLError(
                f"host [{host}] in {_clip(shown)!r} is not an IPv6 address"
            ) from None
        return
    ascii_labels: list[str] = []
    for label in host.split("."):
        if not label:
            raise InvalidURLError(
                f"host {_clip(host)!r} in {_clip(shown)!r} has an empty label (two dots in a "
                "row, or a leading dot)"
            )
        if label.isascii() and not _ASCII_LABEL.fullmatch(label):
            char = next(c for c in label if not _ASCII_LABEL.fullmatch(c))
            raise InvalidURLError(
                f"host {_clip(host)!r} in {_clip(shown)!r} contains {char!r}, which a host "
                "name cannot hold"
            )
        encoded = label if label.isascii() else _idna_label(label, shown)
        if len(encoded) > MAX_LABEL_LENGTH:
            raise _label_too_long(label, len(encoded))
        if encoded.startswith("xn--"):  # punycode written out must decode
            _idna_label(encoded, shown, decode=True)
        ascii_labels.append(encoded)
    length = len(".".join(ascii_labels))
    if length > MAX_HOST_LENGTH:
        raise InvalidURLError(
            f"host {_clip(host, 60)!r} is {length} characters long; DNS allows at most "
            f"{MAX_HOST_LENGTH}"
        )


def _port_text(netloc: str) -> str:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):  # an IPv6 literal holds colons of its own
        hostport = hostport.partition("]")[2]
    return hostport.rpartition(":")[2]


def normalize_url(url: str) -> str:
    """Canonical form of an http(s) URL, so that spellings of one page share one key.

    Scheme and host lower-cased, default port dropped, fragment dropped, tracking parameters
    dropped, remaining query parameters sorted; an empty path becomes ``/``. Messages never
    echo credentials: the URL is shown with its ``user:password@`` redacted.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidURLError("empty URL: give an absolute http(s) URL")
    raw = url.strip()
    shown = redact_userinfo(raw)
    scheme_match = _SCHEME.match(raw)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme not in DEFAULT_PORTS:
        raise InvalidURLError(
            f"unsupported scheme {scheme or '(none)'!r} in {_clip(shown)!r}: "
            "only http and https URLs are ingested"
        )
    # urlsplit silently deletes tabs and newlines, which would give a URL nobody wrote a key.
    bad = _bad_character(raw)
    if bad:
        raise InvalidURLError(
            f"URL {_clip(shown)!r} contains {bad}: remove it, or percent-encode it (a space is %20)"
        )
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise InvalidURLError(f"unparsable URL {_clip(shown)!r}: {exc}") from None
    if "@" in parts.netloc:
        raise InvalidURLError(
            "credentials (user:password@) are not allowed in URLs; pass them another way: "
            f"{_clip(shown)}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0  # out of range or not a number: reported below with the text as written
    if port == 0:
        raise InvalidURLError(
            f"port {_port_text(parts.netloc)!r} in {_clip(shown)!r} is not a number from 1 to 65535"
        )
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidURLError(
            f"empty host in {_clip(shown)!r}: give an absolute URL such as https://example.com/"
        )
    _check_host(host, shown)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def partition_key(url: str) -> str:
    """Partition key of a URL: a readable slug of its host and path, then the first 16 hex
    characters of SHA-256 of its normalized form (the part that makes it unique)."""
    return normalized_key(normalize_url(url))


def normalized_key(normalized: str) -> str:
    """``partition_key`` of a URL already through ``normalize_url`` (not normalized again)."""
    digest = hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:KEY_LENGTH]
    slug = url_slug(normalized)
    return f"{slug}-{digest}" if slug else digest


def key_hash(key: str) -> str:
    """The identity part of a partition key (also accepts the bare hash)."""
    return key[-KEY_LENGTH:]


def url_slug(normalized_url: str) -> str:
    """``host-path-query`` in lower-case ASCII letters, digits, dots and hyphens, at most
    ``SLUG_LENGTH`` long; a long one keeps the host's start and the path's end (where a page's
    name is)."""
    parts = urlsplit(normalized_url)
    host = (parts.hostname or "").removeprefix("www.")
    path = _PAGE_SUFFIX.sub("", unquote(parts.path))
    text = unicodedata.normalize("NFKD", f"{path} {unquote(parts.query)}")
    rest = re.sub(r"[^a-z0-9.]+", "-", text.encode("ascii", "ignore").decode().lower())
    rest = re.sub(r"\.{2,}", ".", rest).strip("-.")
    host = re.sub(r"[^a-z0-9.]+", "-", host).strip("-.")
    room = SLUG_LENGTH - len(host) - 1
    if room < 8:  # a long host name: keep its start and some of the path
        host = host[: SLUG_LENGTH // 2].strip("-.")
        room = SLUG_LENGTH - len(host) - 1
    if len(rest) > room:
        rest = rest[-room:]
        rest = rest[rest.find("-") + 1 :] if "-" in rest[:-1] else rest
        rest = rest.strip("-.")
    return "-".join(p for p in (host, rest) if p)
