"""Object storage for every artifact: a local folder by default, S3 in production
(``resources/s3_store.py``, imported only when a bucket is configured: dagster-aws alone takes
half a second to import, paid by every resumed process).

Keys are relative POSIX paths (``<asset>/<partition>.<ext>``); a backend maps them under its root.
"""

from __future__ import annotations

import os
import shutil
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

    def put_file(self, key: str, path: Path) -> str:
        return self.put(key, path.read_bytes())

    def get_file(self, key: str, path: Path) -> Path:
        """Copy the object at ``key`` to a local ``path`` (media tools want files)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.get(key))
        return path


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

    def put_file(self, key: str, path: Path) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)  # copied beside the target, then renamed: atomic
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.as_uri()

    def get_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no artifact at {self._path(key)}") from None
        return path

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
        # os.walk and string paths: pathlib's rglob took 1.5 s for 30,000 keys.
        start = len(str(base)) + 1
        return sorted(
            os.path.join(top, name)[start:].replace(os.sep, "/")
            for top, _, names in os.walk(folder)
            for name in names
            if not name.startswith(".") and os.path.isfile(os.path.join(top, name))
        )

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()
