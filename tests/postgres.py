"""A throwaway PostgreSQL server from Debian's ``postgresql`` package, for the instance test.

PostgreSQL refuses to run as root; when the tests run as root the server runs as the
``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalPostgres:
    def __init__(self, folder: Path):
        self.bin = postgres_bin()
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self.as_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        assert self.bin is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8")  # fmt: skip
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.folder / "log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", "start",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start: {(self.folder / 'log').read_text()[-500:]}")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                 "stop"], capture_output=True, timeout=60, check=False,
            )  # fmt: skip


@contextlib.contextmanager
def running_postgres() -> Iterator[LocalPostgres]:
    """A started server in a fresh folder, stopped afterwards; the test skips, saying why, where
    Debian's postgresql is not installed."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL not installed: scripts/setup.sh installs Debian's postgresql")
    folder = Path(tempfile.mkdtemp(prefix="media-assets-pg-"))
    folder.chmod(0o755)  # the server may run as the `postgres` user
    server = LocalPostgres(folder / "pg")
    server.start()
    try:
        yield server
    finally:
        server.stop()
