"""Object storage for every artifact: a local folder by default, S3 in production.

Keys are relative POSIX paths (``<asset>/<partition>.<ext>``); a backend maps them under its root.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg


class ObjectStore(dg.ConfigurableResource, ABC):
    """Where artifacts live. Assets and the IO manager only see this interface."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` atomically; return the artifact's URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Bytes at ``key``; ``FileNotFoundError`` naming the key when there are none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (a folder-like prefix ending in ``/``), sorted."""

    @abstractmethod
    def uri(self, key: str) -> str: ...

    def get_text(self, key: str) -> str:
        return self.get(key).decode("utf-8")

    def put_text(self, key: str, text: str) -> str:
        return self.put(key, text.encode("utf-8"))


class LocalObjectStore(ObjectStore):
    """Artifacts under a folder on local disk; writes are atomic (temp file + rename)."""

    root: str = "data/artifacts"

    def _path(self, key: str) -> Path:
        path = (Path(self.root) / key).resolve()
        if not path.is_relative_to(Path(self.root).resolve()):
            raise ValueError(f"artifact key {key!r} escapes the store root {self.root!r}")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rename is atomic on POSIX: a crash mid-write never leaves a truncated artifact behind.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"no artifact at {path}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        base = Path(self.root).resolve()
        folder = self._path(prefix) if prefix else base
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(base).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()
