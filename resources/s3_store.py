"""Artifacts in an S3 bucket through dagster-aws's ``S3Resource``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from media_assets.retry import with_retries
from resources.storage import ObjectStore

T = TypeVar("T")


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
