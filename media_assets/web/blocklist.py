"""Known ad and tracker hosts, from filter lists that a package keeps up to date.

The lists are EasyList and EasyPrivacy as Debian's ``webext-ublock-origin-chromium`` ships them
(found through ``dpkg-query``, so no path is written here), or any files in the same Adblock Plus
format named by ``MEDIA_ASSETS_BLOCKLISTS``. Only whole-host rules are used (``||host^``, bare or
with ``$third-party`` and resource types, never narrowed to some pages): they are the rules a proxy
can judge from a host name alone, and the bulk of both lists. A host is blocked when it or a parent
domain is listed and no exception (``@@||host^``) covers it more specifically; the hosts of the
pages being indexed are never blocked, so a page is not refused for being on a list
(``$third-party`` rules spare their whole site).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import re
import shutil
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "webext-ublock-origin-chromium"
LIST_NAMES = ("easylist.txt", "easyprivacy.txt")
_HOST_RULE = re.compile(r"^(@@)?\|\|([a-z0-9.-]+)\^(?:\$(.*))?$")
# Options that keep a rule about the host itself. Resource types count: a host listed for its
# scripts, pings or beacons is a tracker, and the text of a page needs none of its requests.
_HOST_WIDE = {"", "third-party", "3p", "important", "all"}
_TYPES = {
    "script",
    "xmlhttprequest",
    "xhr",
    "image",
    "ping",
    "beacon",
    "subdocument",
    "frame",
    "media",
    "font",
    "stylesheet",
    "css",
    "object",
    "other",
    "websocket",
}


@dataclass(frozen=True)
class TrackerBlocklist:
    hosts: frozenset[str]  # blocked on every page
    third_party: frozenset[str]  # blocked on other sites' pages only
    exceptions: frozenset[str]
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.hosts) + len(self.third_party)

    def match(self, host: str, first_party: Collection[str] = ()) -> str | None:
        """The listed domain that blocks ``host`` on pages of the ``first_party`` hosts, or None.

        Walks from the full host name to its parent domains: the most specific entry decides."""
        labels = host.lower().rstrip(".").split(".")
        for i in range(len(labels) - 1):
            domain = ".".join(labels[i:])
            if domain in self.exceptions:
                return None
            third_party = domain in self.third_party
            if domain in self.hosts or third_party:
                for page in first_party:
                    if page == domain or page.endswith("." + domain):
                        return None  # the page's own host (or a parent): never blocked
                    if third_party and site(page) == site(host):
                        return None
                return domain
        return None


def site(host: str) -> str:
    """The last two labels of a host (three under a two-letter second level, as in co.uk): close
    enough to a registrable domain to tell a site's own hosts from others'."""
    host = host.lower().rstrip(".").strip("[]")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))  # an address is a site of its own
    parts = host.split(".")
    keep = 3 if len(parts) > 2 and len(parts[-2]) <= 3 and len(parts[-1]) == 2 else 2
    return ".".join(parts[-keep:])


def parse(lines: Sequence[str], sources: tuple[str, ...] = ()) -> TrackerBlocklist:
    hosts: set[str] = set()
    third_party: set[str] = set()
    exceptions: set[str] = set()
    for line in lines:
        match = _HOST_RULE.match(line.strip())
        if not match:
            continue
        exception, domain, options = match.groups()
        if exception:
            # Any exception for the host, even one narrowed by options: a proxy cannot tell a
            # script from an image, so a host someone needed to allow is allowed.
            exceptions.add(domain)
            continue
        opts = set((options or "").split(","))
        if not opts <= _HOST_WIDE | _TYPES:
            continue  # narrowed to some pages, popups or rewrites: not judged by host alone
        (third_party if opts & {"third-party", "3p"} else hosts).add(domain)
    return TrackerBlocklist(
        frozenset(hosts), frozenset(third_party - hosts), frozenset(exceptions), sources
    )


def package_lists() -> list[Path]:
    """EasyList and EasyPrivacy where the Debian package put them (empty when not installed)."""
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return []
    listed = subprocess.run([dpkg, "-L", PACKAGE], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        return []
    paths = [Path(line) for line in listed.stdout.splitlines()]
    return sorted(p for p in paths if p.name in LIST_NAMES and p.is_file())


@functools.cache
def load(paths: tuple[str, ...] = ()) -> TrackerBlocklist | None:
    """The block list from ``paths`` (Adblock Plus format), or from the Debian package when none
    are given; ``None`` with a warning when there is none to read (hosts are then requested)."""
    files = [Path(p) for p in paths] if paths else package_lists()
    readable = [f for f in files if f.is_file()]
    for missing in set(files) - set(readable):
        log.warning("tracker block list %s not found; it is skipped", missing)
    if not readable:
        log.warning(
            "no tracker block list: install Debian's %s (scripts/setup.sh does) or set "
            "MEDIA_ASSETS_BLOCKLISTS to Adblock Plus-format files; ad and tracker hosts will be "
            "requested (MEDIA_ASSETS_BLOCK_TRACKERS=0 silences this)",
            PACKAGE,
        )
        return None
    lines: list[str] = []
    for file in readable:
        lines += file.read_text(encoding="utf-8", errors="replace").splitlines()
    return parse(lines, tuple(str(f) for f in readable))
