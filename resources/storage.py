"""Object storage for every artifact: a local folder by default, S3 in production.

Keys are relative POSIX paths (``<asset>/<partition>.<ext>``); a backend maps them under its root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from media_assets.retry import with_retries

T = TypeVar("T")


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
        return sorted(
            p.relative_to(base).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()


class S3ObjectStore(ObjectStore):
    """Artifacts in an S3 bucket (any S3-compatible endpoint) under ``prefix``.

    The client comes from dagster-aws's ``S3Resource``; credentials come from the environment
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` or an instance role), never from config.
    Transient errors (S3 5xx, throttling, an unreachable endpoint) are retried with backoff.
    """

    s3: S3Resource
    bucket: str
    prefix: str = "media-assets"
    create_bucket: bool = True
    retry_seconds: float = 60.0
    _client: Any = PrivateAttr(default=None)

    def _full(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix else key

    def _s3(self) -> Any:
        if self._client is None:
            client = self.s3.get_client()
            if self.create_bucket:
                self._ensure_bucket(client)
            self._client = client
        return self._client

    def _retrying(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return with_retries(self.retry_seconds)(fn)(*args, **kwargs)

    def _ensure_bucket(self, client: Any) -> None:
        def ensure() -> None:
            try:
                client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                    raise
                client.create_bucket(Bucket=self.bucket)

        self._retrying(ensure)

    def put(self, key: str, data: bytes) -> str:
        self._retrying(self._s3().put_object, Bucket=self.bucket, Key=self._full(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        # upload_file streams in parts: a media file never has to fit in memory.
        self._retrying(self._s3().upload_file, str(path), self.bucket, self._full(key))
        return self.uri(key)

    def get_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._retrying(self._s3().download_file, self.bucket, self._full(key), str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"no artifact at {self.uri(key)}") from None
            raise
        return path

    def get(self, key: str) -> bytes:
        try:
            response = self._retrying(
                self._s3().get_object, Bucket=self.bucket, Key=self._full(key)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"no artifact at {self.uri(key)}") from None
            raise
        return self._retrying(response["Body"].read)

    def exists(self, key: str) -> bool:
        try:
            self._retrying(self._s3().head_object, Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._retrying(self._s3().delete_object, Bucket=self.bucket, Key=self._full(key))

    def list_keys(self, prefix: str) -> list[str]:
        paginator = self._s3().get_paginator("list_objects_v2")
        base = self._full("")
        keys: list[str] = []

        def collect() -> None:
            keys.clear()
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full(prefix)):
                keys.extend(item["Key"][len(base) :] for item in page.get("Contents", []))

        self._retrying(collect)
        return sorted(keys)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"
