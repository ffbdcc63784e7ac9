"""Claim check: payloads too large for SNS travel through the artifact bucket, not the lake.

The hub, not the lake, owns this bucket; a lifecycle rule expires its objects.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from hub.events import Envelope, Format, PayloadRef


class PayloadStore(Protocol):
    def put(self, key: str, body: bytes) -> PayloadRef: ...

    def get(self, ref: PayloadRef) -> bytes: ...


class S3PayloadStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, body: bytes) -> PayloadRef:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body)
        return PayloadRef(bucket=self._bucket, key=key, size=len(body))

    def get(self, ref: PayloadRef) -> bytes:
        return bytes(self._s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read())


# Payloads that travel as JSON documents (a FHIR Bundle is one too).
JSON_FORMATS = frozenset({Format.JSON, Format.FHIR})


def _encode(envelope: Envelope) -> bytes:
    if envelope.format in JSON_FORMATS:
        return json.dumps(envelope.payload, ensure_ascii=False, separators=(",", ":")).encode()
    return str(envelope.payload).encode("utf-8")


def offload_if_large(envelope: Envelope, store: PayloadStore, max_inline_bytes: int) -> tuple[Envelope, str]:
    """The envelope to publish (unchanged, or with its payload moved to the store) and its JSON body."""
    body = envelope.to_json()
    if envelope.payload is None or len(body.encode()) <= max_inline_bytes:
        return envelope, body
    key = f"payloads/{envelope.event.value}/{envelope.id}.{envelope.format.value}"
    ref = store.put(key, _encode(envelope))
    offloaded = Envelope(**{**envelope.__dict__, "payload": None, "payload_ref": ref})
    return offloaded, offloaded.to_json()


def load_payload(envelope: Envelope, store: PayloadStore) -> Any:
    """The payload, inline or fetched back from the store (JSON payloads decoded)."""
    if envelope.payload_ref is None:
        return envelope.payload
    body = store.get(envelope.payload_ref)
    if envelope.format in JSON_FORMATS:
        return json.loads(body)
    return body.decode("utf-8")
