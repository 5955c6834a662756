"""The one object-store module: S3 (MinIO, moto) through boto3, or a local folder with the same layout.

`S3_ENDPOINT_URL` set -> S3 with path-style addressing and s3v4 signatures (works against MinIO and
moto); unset -> ``OBJECT_STORE_LOCAL_ROOT/<bucket>/<key>``. Both return URIs users can open:
``s3://bucket/key`` or ``file:///...``.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jobs.common.config import ObjectStoreSettings


class ObjectNotFound(KeyError):
    """No object under that key (the URI is the argument)."""


class ObjectStore(Protocol):
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]: ...
    def uri(self, bucket: str, key: str) -> str: ...


def put_tree(store: ObjectStore, bucket: str, prefix: str, folder: Path) -> list[str]:
    """Uploads every file under `folder` to `prefix/<relative path>`; returns the keys written."""
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}"
        store.put_bytes(bucket, key, path.read_bytes(), mimetypes.guess_type(path.name)[0])
        keys.append(key)
    return keys


@dataclass(frozen=True)
class LocalObjectStore:
    root: Path

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root.resolve() / bucket):
            raise ValueError(f"object key escapes its bucket: {key!r}")
        return path

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see a half-written object
        return self.uri(bucket, key)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        try:
            return self._path(bucket, key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(self.uri(bucket, key)) from None

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        base = self.root / bucket
        if not base.exists():
            return []
        keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not k.endswith(".part"))

    def uri(self, bucket: str, key: str) -> str:
        return self._path(bucket, key).as_uri()


class S3ObjectStore:
    def __init__(self, settings: ObjectStoreSettings) -> None:
        import boto3
        from botocore.config import Config

        self._client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            region_name=settings.s3_region,
            config=Config(
                signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 5}
            ),
        )
        self._known_buckets: set[str] = set()

    def ensure_bucket(self, bucket: str) -> None:
        if bucket in self._known_buckets:
            return
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError:
            self._client.create_bucket(Bucket=bucket)
        self._known_buckets.add(bucket)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        self.ensure_bucket(bucket)
        extra = {"ContentType": content_type} if content_type else {}
        self._client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
        return self.uri(bucket, key)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            raise ObjectNotFound(self.uri(bucket, key)) from None

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"


def open_store(settings: ObjectStoreSettings) -> ObjectStore:
    if settings.s3_endpoint_url:
        return S3ObjectStore(settings)
    return LocalObjectStore(settings.object_store_local_root)
