"""Turns hub events into lake objects and catalog entries."""

from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any

from hub.events import Envelope, Event
from hub.payloads import PayloadStore, load_payload
from lake import layout
from lake.catalog import Catalog, CatalogEntry, batch_item
from lake.objects import ObjectStore

log = logging.getLogger(__name__)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LakeWriter:
    def __init__(self, objects: ObjectStore, catalog: Catalog, payloads: PayloadStore) -> None:
        self._objects = objects
        self._catalog = catalog
        self._payloads = payloads
        # Events of one message are applied one at a time in this process. DynamoDB's UpdateItem is
        # atomic on AWS, but moto's is not: a `received` and a `parsed` update racing in two threads
        # could leave status=received beside a parsed location (seen in the end-to-end test).
        self._locks = [threading.Lock() for _ in range(64)]

    def handle(self, envelope: Envelope) -> None:
        with self._locks[hash(envelope.id) % len(self._locks)]:
            self._handle(envelope)

    def _handle(self, envelope: Envelope) -> None:
        if envelope.event in (Event.BATCH_RECEIVED, Event.BATCH_COMPLETED):
            self._batch(envelope)
            return
        entry = CatalogEntry(
            id=envelope.id,
            source=envelope.source,
            message_type=envelope.message_type,
            control_id=envelope.control_id,
            received_at=envelope.received_at,
            digest=envelope.digest,
            flags=envelope.flags,
            batch=envelope.batch,
        )
        if envelope.event is Event.RECEIVED:
            self._received(envelope, entry)
        elif envelope.event is Event.PARSED:
            self._parsed(envelope, entry)
        elif envelope.event is Event.FAILED:
            self._failed(envelope, entry)
        log.info(
            "lake write event=%s id=%s type=%s source=%s",
            envelope.event.value,
            envelope.id,
            envelope.message_type,
            envelope.source,
        )

    def _key(self, area: str, envelope: Envelope, suffix: str | None = None) -> str:
        return layout.object_key(
            area,
            source=envelope.source,
            message_type=envelope.message_type,
            received_at=envelope.received_at,
            message_id=envelope.id,
            suffix=suffix,
        )

    def _batch(self, envelope: Envelope) -> None:
        """A batch body accepted whole: its bytes as received, then its messages' outcomes."""
        raw_key = self._key(layout.BATCHES, envelope, suffix="hl7")
        outcomes_uri = None
        summary = dict(envelope.batch or {})
        summary["messages"] = summary.get("count", summary.get("messages"))
        if envelope.event is Event.BATCH_RECEIVED:
            raw = load_payload(envelope, self._payloads)
            self._objects.put(raw_key, str(raw).encode("utf-8"), "application/hl7-v2; charset=utf-8")
        else:
            report = load_payload(envelope, self._payloads)
            key = self._key(layout.BATCHES, envelope)
            self._objects.put(key, _json_bytes(report), "application/json")
            outcomes_uri, summary = self._uri(key), report["batch"]
        self._catalog.record_batch(
            batch_item(
                envelope.id, envelope.source, envelope.received_at, self._uri(raw_key), summary, outcomes_uri
            )
        )
        log.info("lake write event=%s id=%s source=%s", envelope.event.value, envelope.id, envelope.source)

    def _received(self, envelope: Envelope, entry: CatalogEntry) -> None:
        raw = load_payload(envelope, self._payloads)
        key = self._key(layout.RAW, envelope)
        self._objects.put(key, str(raw).encode("utf-8"), "application/hl7-v2; charset=utf-8")
        self._catalog.record_received(entry, layout.s3_uri(self._objects.bucket, key))

    def _uri(self, key: str) -> str:
        return layout.s3_uri(self._objects.bucket, key)

    def _parsed(self, envelope: Envelope, entry: CatalogEntry) -> None:
        document = load_payload(envelope, self._payloads)
        key = self._key(layout.PARSED, envelope)
        self._objects.put(key, _json_bytes(document), "application/json")
        findings = list(envelope.extra.get("findings") or [])
        # The raw object's key follows from the metadata: its `received` event writes it (or has).
        raw_uri = self._uri(self._key(layout.RAW, envelope))
        self._catalog.record_parsed(entry, raw_uri, self._uri(key), findings)

    def _failed(self, envelope: Envelope, entry: CatalogEntry) -> None:
        error = envelope.error or {"reason": "unknown failure"}
        raw_uri = self._uri(self._key(layout.RAW, envelope))
        if envelope.payload is not None or envelope.payload_ref is not None:
            # Rejected at the front door: the raw bytes it could not read are kept beside the error.
            raw = load_payload(envelope, self._payloads)
            body = (
                base64.b64decode(raw)
                if envelope.extra.get("payloadEncoding") == "base64"
                else str(raw).encode()
            )
            raw_key = self._key(layout.ERRORS, envelope, suffix="hl7")
            self._objects.put(raw_key, body, "application/hl7-v2")
            raw_uri = self._uri(raw_key)
        key = self._key(layout.ERRORS, envelope)
        record = {
            "id": envelope.id,
            "source": envelope.source,
            "messageType": envelope.message_type,
            "controlId": envelope.control_id,
            "receivedAt": envelope.received_at,
            "error": error,
        }
        self._objects.put(key, _json_bytes(record), "application/json")
        self._catalog.record_failed(entry, raw_uri, self._uri(key), error)
