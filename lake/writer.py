"""Turns hub events into lake objects and catalog entries.

A message's path (hub/steps.py) is kept with its catalog item: the steps its event brought in the
envelope (the front door's; for `parsed`/`failed` also the staging worker's), the lake-writer steps
of the same id this process remembers having written (so a `parsed` item, which replaces the
`received` one, keeps the `received` event's lake-writer step when the same process wrote it; a
restart or another writer instance forgets it), and the step of this write (outcome `stored`: its
objects are in the lake, its catalog item is about to be written). Bounded: the last MAX_STEPS.
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hub import metrics, steps
from hub.document import ParsedDocument
from hub.events import Envelope, Event, Format, utc_timestamp
from hub.payloads import PayloadStore, load_payload
from lake import layout
from lake.catalog import (
    COMPLETED,
    CONVERTED_FORMATS,
    Catalog,
    CatalogEntry,
    batch_item,
    failed_item,
    parsed_item,
    received_item,
)
from lake.objects import ObjectStore
from lake.recent_steps import RecentSteps

log = logging.getLogger(__name__)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


SERVICE = "lake-writer"  # its step in each message's path
# Given the entry once the objects are written: the entry with the message's path, and this write's step.
_PathOf = Callable[[CatalogEntry], tuple[CatalogEntry, dict[str, Any]]]
# The object writes of a receive run side by side in this many threads (each a blocking S3 call).
OBJECT_WRITE_THREADS = 8
# A message's first event is superseded by a later one of the same id in the same receive.
_FIRST = (Event.RECEIVED, Event.BATCH_RECEIVED)
_LATER = (Event.PARSED, Event.FAILED, Event.BATCH_COMPLETED)
# Where a converter's output lives: its format names its lake area, its catalog key and the `stage`
# of its failures (a converter's failure leaves the message parsed: lake.catalog).
_CONVERTED_AREAS = {Format.FHIR.value: layout.FHIR}
assert set(_CONVERTED_AREAS) == set(CONVERTED_FORMATS)


def conversion_failed(envelope: Envelope) -> str | None:
    """The format a `message.failed` event failed to convert to, or None (a failure of the message)."""
    stage = (envelope.error or {}).get("stage") if envelope.event is Event.FAILED else None
    return stage if stage in _CONVERTED_AREAS else None


def _catalog_order(write: _Write) -> int:
    """Conditional writes: later statuses first, first events next, conversions last (a conversion
    before `received` leaves an item that `received` does not write over)."""
    if write.envelope.event is Event.CONVERTED or conversion_failed(write.envelope):
        return 2
    return 1 if write.envelope.event in _FIRST else 0


@dataclass
class _Write:
    """One envelope's catalog write, once its objects are in the lake: an unconditional item (written
    with others in one batch call) or a conditional put of its own."""

    envelope: Envelope
    item: dict[str, Any]
    conditional: Callable[[], None] | None = None
    log_args: tuple[Any, ...] = field(default_factory=tuple)
    step: dict[str, Any] | None = None  # this write's step in the message's path


class LakeWriter:
    def __init__(self, objects: ObjectStore, catalog: Catalog, payloads: PayloadStore) -> None:
        self._objects = objects
        self._catalog = catalog
        self._payloads = payloads
        # Events of one message are applied one at a time in this process (its objects, then its
        # catalog write): the emulator's conditional writes are not atomic, and two events of one id
        # racing could otherwise leave an earlier status beside a later location.
        self._locks = [threading.Lock() for _ in range(64)]
        # Threads are started on first use, so a writer that never sees a batch starts none.
        self._pool = ThreadPoolExecutor(max_workers=OBJECT_WRITE_THREADS, thread_name_prefix="lake-objects")
        self._recent = RecentSteps()

    def _lock(self, message_id: str) -> threading.Lock:
        return self._locks[self._lock_index(message_id)]

    def _lock_index(self, message_id: str) -> int:
        return hash(message_id) % len(self._locks)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def handle(self, envelope: Envelope) -> None:
        outcome = self.handle_batch([envelope])[0]
        if outcome is not None:
            raise outcome

    def handle_batch(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Writes a receive's events: every envelope's objects concurrently, then the catalog, the
        unconditional items (parsed, completed batch) together in BatchWriteItem calls and the
        conditional ones (received, failed, processing batch) one put each. An outcome is None when
        the envelope is in the lake, else the error that failed it alone (the consumer retries it)."""
        outcomes: list[BaseException | None] = [None] * len(envelopes)
        writes: dict[int, _Write] = {}
        results: list[_Write | BaseException]
        started_at = utc_timestamp()
        if len(envelopes) == 1:  # no thread hand-off for a single event
            results = [self._objects_of_locked(envelopes[0], started_at)]
        else:
            # Each in a copy of this context: the consumer's delivery (tries) goes along.
            futures = [
                self._pool.submit(contextvars.copy_context().run, self._objects_of_locked, e, started_at)
                for e in envelopes
            ]
            results = [future.result() for future in futures]
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                outcomes[index] = result
            else:
                writes[index] = result
        # The catalog phase holds the locks of every id it writes (taken in one order: no deadlock).
        lock_indexes = sorted({self._lock_index(w.envelope.id) for w in writes.values()})
        for lock_index in lock_indexes:
            self._locks[lock_index].acquire()
        try:
            self._catalog_writes(writes, outcomes)
        finally:
            for lock_index in reversed(lock_indexes):
                self._locks[lock_index].release()
        for index, write in writes.items():
            if outcomes[index] is None:
                if write.step is not None:
                    self._recent.add(write.envelope.id, write.step)
                log.info(*write.log_args)
                if write.envelope.event in (Event.PARSED, Event.FAILED) and not conversion_failed(
                    write.envelope
                ):
                    _observe_end_to_end(write.envelope)
        return outcomes

    def _catalog_writes(self, writes: dict[int, _Write], outcomes: list[BaseException | None]) -> None:
        unconditional = [(i, w) for i, w in writes.items() if w.conditional is None]
        if unconditional:
            results = self._catalog.record_many([w.item for _, w in unconditional])
            for (index, _), outcome in zip(unconditional, results, strict=True):
                outcomes[index] = outcome
        # Later statuses first; a first event (received, batch received) is skipped when a later
        # event of its id is written in this receive (its objects are in the lake all the same).
        conditional = sorted(
            ((i, w) for i, w in writes.items() if w.conditional is not None),
            key=lambda pair: _catalog_order(pair[1]),
        )
        superseded: set[str] = set()
        for index, write in writes.items():
            if write.envelope.event in _LATER and outcomes[index] is None and write.conditional is None:
                superseded.add(write.envelope.id)
        for index, write in conditional:
            if write.envelope.event in _FIRST and write.envelope.id in superseded:
                continue
            assert write.conditional is not None
            try:
                write.conditional()
            except Exception as exc:
                outcomes[index] = exc
                continue
            if write.envelope.event in _LATER:
                superseded.add(write.envelope.id)

    def _objects_of_locked(self, envelope: Envelope, started_at: str) -> _Write | BaseException:
        """An envelope's objects written (its catalog write returned), or the error that stopped it."""
        try:
            with self._lock(envelope.id):
                return self._objects_of(envelope, started_at)
        except Exception as exc:  # this envelope alone fails; the consumer retries it
            return exc

    def _objects_of(self, envelope: Envelope, started_at: str) -> _Write:
        """Writes an envelope's objects; returns its catalog write."""
        if envelope.event in (Event.BATCH_RECEIVED, Event.BATCH_COMPLETED):
            return self._batch(envelope)
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
        path = self._path(envelope, started_at)
        if envelope.event is Event.RECEIVED:
            write = self._received(envelope, entry, path)
        elif envelope.event is Event.PARSED:
            write = self._parsed(envelope, entry, path)
        elif envelope.event is Event.CONVERTED:
            write = self._converted(envelope)
        elif envelope.event is Event.FAILED and conversion_failed(envelope):
            write = self._conversion_failed(envelope)
        elif envelope.event is Event.FAILED:
            write = self._failed(envelope, entry, path)
        else:
            raise ValueError(f"lake writer: unexpected event {envelope.event.value} id={envelope.id}")
        write.log_args = (
            "lake write event=%s id=%s type=%s source=%s",
            envelope.event.value,
            envelope.id,
            envelope.message_type,
            envelope.source,
        )
        return write

    def _key(self, area: str, envelope: Envelope, suffix: str | None = None) -> str:
        return layout.object_key(
            area,
            source=envelope.source,
            message_type=envelope.message_type,
            received_at=envelope.received_at,
            message_id=envelope.id,
            suffix=suffix,
        )

    def _batch(self, envelope: Envelope) -> _Write:
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
        item = batch_item(
            envelope.id, envelope.source, envelope.received_at, self._uri(raw_key), summary, outcomes_uri
        )
        log_args = ("lake write event=%s id=%s source=%s", envelope.event.value, envelope.id, envelope.source)
        if item["status"] == COMPLETED:
            return _Write(envelope, item, log_args=log_args)
        return _Write(envelope, item, lambda: self._catalog.record_batch(item), log_args)

    def _path(self, envelope: Envelope, started_at: str) -> _PathOf:
        """Once the objects are in the lake: the entry carrying the message's path, and this write's step."""

        def with_path(entry: CatalogEntry) -> tuple[CatalogEntry, dict[str, Any]]:
            own = steps.step(SERVICE, envelope, "stored", started_at)
            path = steps.merged(steps.steps_of(envelope), self._recent.get(envelope.id), [own])
            return replace(entry, steps=tuple(path)), own

        return with_path

    def _received(self, envelope: Envelope, entry: CatalogEntry, path: _PathOf) -> _Write:
        raw = load_payload(envelope, self._payloads)
        key = self._key(layout.RAW, envelope)
        self._objects.put(key, str(raw).encode("utf-8"), "application/hl7-v2; charset=utf-8")
        uri = self._uri(key)
        entry, own = path(entry)
        return _Write(
            envelope, received_item(entry, uri), lambda: self._catalog.record_received(entry, uri), step=own
        )

    def _uri(self, key: str) -> str:
        return layout.s3_uri(self._objects.bucket, key)

    def _parsed(self, envelope: Envelope, entry: CatalogEntry, path: _PathOf) -> _Write:
        document: ParsedDocument = load_payload(envelope, self._payloads)
        key = self._key(layout.PARSED, envelope)
        self._objects.put(key, _json_bytes(document), "application/json")
        findings = list(envelope.extra.get("findings") or [])
        # The raw object's key follows from the metadata: its `received` event writes it (or has).
        raw_uri = self._uri(self._key(layout.RAW, envelope))
        entry, own = path(entry)
        return _Write(envelope, parsed_item(entry, raw_uri, self._uri(key), findings), step=own)

    def _converted(self, envelope: Envelope) -> _Write:
        """The message in another format (a FHIR Bundle): its object, then its one catalog key."""
        format = envelope.format.value
        if format not in _CONVERTED_AREAS:
            raise ValueError(f"lake writer: no lake area for converted format {format} id={envelope.id}")
        key = self._key(_CONVERTED_AREAS[format], envelope)
        self._objects.put(key, _json_bytes(load_payload(envelope, self._payloads)), "application/json")
        uri = self._uri(key)
        return _Write(envelope, {}, lambda: self._catalog.record_converted(envelope.id, format, uri))

    def _conversion_failed(self, envelope: Envelope) -> _Write:
        """A converter's failure: kept in the catalog item beside the status, which stays."""
        format = conversion_failed(envelope)
        assert format is not None and envelope.error is not None
        error = envelope.error
        return _Write(
            envelope, {}, lambda: self._catalog.record_conversion_failed(envelope.id, format, error)
        )

    def _failed(self, envelope: Envelope, entry: CatalogEntry, path: _PathOf) -> _Write:
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
        error_uri = self._uri(key)
        entry, own = path(entry)
        return _Write(
            envelope,
            failed_item(entry, raw_uri, error_uri, error),
            lambda: self._catalog.record_failed(entry, raw_uri, error_uri, error),
            step=own,
        )


def _observe_end_to_end(envelope: Envelope) -> None:
    """Receipt at the front door → final status in the lake (retries and redeliveries included)."""
    try:
        received = datetime.fromisoformat(envelope.received_at.replace("Z", "+00:00"))
    except ValueError:
        return
    seconds = (datetime.now(UTC) - received).total_seconds()
    metrics.END_TO_END_SECONDS.labels(envelope.event.value.rsplit(".", 1)[-1]).observe(max(seconds, 0.0))
