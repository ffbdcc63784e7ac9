"""Object storage for the lake: S3 (the in-memory fake is tests/fakes/lake.py)."""

from __future__ import annotations

from typing import Any, Protocol


class ObjectStore(Protocol):
    bucket: str

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


class S3ObjectStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        # Same key, same content on a redelivery: the write is idempotent (versioning keeps history).
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ServerSideEncryption="AES256",
        )
