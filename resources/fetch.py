"""Browser and fetch policy: how pages are rendered and what may be fetched."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, field_validator

from media_assets.web.render import RenderSettings
from media_assets.web.safety import AllowEntry

# Partitions per run: the sensor's batches and the UI's backfills (media_assets/assets/common.py).
BATCH_SIZE = 50
# URLs whose runs a sensor tick requests: the daemon creates and plans each run inside the tick,
# a cost per URL and per run (README, "100,000 URLs").
RUN_URLS_PER_TICK = 500
# What a sensor tick aims at, well inside the daemon's 60 s: an evaluation that took a large part
# of it (the last page of a pass parses the whole file for removals, ~5 s at 100,000 lines) leaves
# the runs that share of their budget, since the daemon creates them within the same tick.
TICK_TARGET_S = 10.0


class FetchPolicy(dg.ConfigurableResource):
    """What may be fetched and how politely. Private, loopback, link-local and metadata addresses
    are refused unless listed in ``allow_hosts`` (a host, host:port, address or CIDR network; a
    malformed entry is an error when the resource is built, not a policy that refuses all)."""

    # Defaults are RenderSettings' (media_assets/web/render.py), which this configures.
    user_agent: str = RenderSettings.user_agent
    allow_hosts: list[str] = Field(default_factory=list)
    respect_robots: bool = RenderSettings.respect_robots
    requests_per_second_per_host: float = RenderSettings.requests_per_second_per_host
    same_site_subresources_only: bool = RenderSettings.same_site_subresources_only
    max_page_bytes: int = RenderSettings.max_page_bytes
    # Known ad and tracker hosts are never requested; ``blocklists`` names Adblock Plus-format
    # files to use instead of the Debian package's EasyList and EasyPrivacy.
    block_trackers: bool = RenderSettings.block_trackers
    blocklists: list[str] = Field(default_factory=list)

    @field_validator("allow_hosts")
    @classmethod
    def _entries_parse(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            AllowEntry.parse(entry)
        return entries


class BrowserResource(dg.ConfigurableResource):
    """Debian's Chromium driven by Playwright: one browser per step, ``concurrency`` pages at a
    time in one shared context."""

    executable_path: str = RenderSettings.executable_path
    concurrency: int = RenderSettings.concurrency
    navigation_timeout_s: float = RenderSettings.navigation_timeout_s
    settle_timeout_s: float = RenderSettings.settle_timeout_s

    def settings(self, policy: FetchPolicy) -> RenderSettings:
        return RenderSettings(
            executable_path=self.executable_path,
            concurrency=self.concurrency,
            user_agent=policy.user_agent,
            allow_hosts=tuple(policy.allow_hosts),
            requests_per_second_per_host=policy.requests_per_second_per_host,
            respect_robots=policy.respect_robots,
            same_site_subresources_only=policy.same_site_subresources_only,
            max_page_bytes=policy.max_page_bytes,
            block_trackers=policy.block_trackers,
            blocklists=tuple(policy.blocklists),
            navigation_timeout_s=self.navigation_timeout_s,
            settle_timeout_s=self.settle_timeout_s,
        )


class ManifestSource(dg.ConfigurableResource):
    """Where the manifest sensor reads URLs from, how many partitions go into one run, and how
    many manifest lines one evaluation reads (it pages through a long manifest, tick by tick)."""

    path: str = ""
    batch_size: int = BATCH_SIZE
    page_lines: int = 10_000
    # URLs whose runs one tick requests; the rest wait in the cursor (sensors/manifest.py).
    run_urls_per_tick: int = RUN_URLS_PER_TICK
    # Seconds a tick aims at; a slow evaluation leaves the runs the share it left (``run_budget``).
    tick_target_s: float = TICK_TARGET_S
