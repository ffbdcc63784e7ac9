"""FHIR R4: convert each parsed message's document into a transaction Bundle, publish the Bundle or
a located failure (``message.failed`` with ``error.stage = "fhir"``: the catalog keeps ``parsed``).

It reads the parsed document from the event (inline or claim check), never the raw ER7 again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from hub import steps
from hub.events import Envelope, Event, Format, utc_timestamp
from hub.payloads import PayloadStore, load_payload
from hub.publisher import Publisher
from hub.topology import FHIR_R4
from hub.tracebacks import exception_location
from workers.fhir.mapping import MAPPED_TYPES, MappingError, convert

log = logging.getLogger(__name__)

SERVICE = "fhir-r4"  # its step in each message's path (hub/steps.py)
STAGE = "fhir"  # error.stage of its failures (the lake keeps them beside the parsed status)
# A failed event is an envelope without payload plus this error: far below SNS's 256 KB, always.
MAX_ERROR_BYTES = 2048
_ERROR_KEYS = ("stage", "reason", "segment", "segmentIndex", "field")


class FhirHandler:
    def __init__(self, publisher: Publisher, payloads: PayloadStore) -> None:
        self._publisher = publisher
        self._payloads = payloads

    def handle(self, envelope: Envelope) -> None:
        outcome = self.handle_batch([envelope])[0]
        if outcome is not None:
            raise outcome

    def handle_batch(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Converts each parsed message, then publishes every result in as few calls as SNS allows.
        An outcome is None when the result is in the hub, else the error (the consumer retries)."""
        outcomes: list[BaseException | None] = [None] * len(envelopes)
        results: list[tuple[int, Envelope]] = []
        for index, envelope in enumerate(envelopes):
            if not self._is_ours(envelope):
                continue
            try:
                results.append((index, self._with_step(envelope, utc_timestamp())))
            except Exception as exc:  # the payload could not be fetched (claim-check bucket down)
                outcomes[index] = exc
        published = self._publisher.publish_batch([result for _, result in results])
        for (index, _), outcome in zip(results, published, strict=True):
            outcomes[index] = outcome
        return outcomes

    def _is_ours(self, envelope: Envelope) -> bool:
        # Only a wrong filter policy sends anything else (`hl7lake hub --check` names it): converting
        # it would publish a bogus failure for a message that is fine.
        if FHIR_R4.handles_event(envelope.event, envelope.format) and envelope.message_type in MAPPED_TYPES:
            return True
        log.warning(
            "ignored event=%s format=%s type=%s id=%s",
            envelope.event.value,
            envelope.format.value,
            envelope.message_type,
            envelope.id,
        )
        return False

    def _with_step(self, envelope: Envelope, started_at: str) -> Envelope:
        result = self._result(envelope)
        outcome = "converted" if result.event is Event.CONVERTED else "failed"
        reason = (result.error or {}).get("reason") if result.error else None
        return steps.with_steps(result, steps.step(SERVICE, envelope, outcome, started_at, reason))

    def _result(self, envelope: Envelope) -> Envelope:
        """The `message.converted` or `message.failed` event for one parsed message."""
        document = load_payload(envelope, self._payloads)
        started = time.process_time()
        try:
            bundle = convert(document, envelope.id)
        except MappingError as err:
            log.info("fhir failed id=%s type=%s field=%s", envelope.id, envelope.message_type, err.field)
            return envelope.derive(Event.FAILED, Format.JSON, error=bounded_error(err.to_dict()))
        except Exception as exc:  # a mapping bug must not poison the queue: report it as a failure
            # Where, not what: an exception's text may quote message content (no PHI in logs).
            log.error(
                "mapping crashed id=%s error=%s at %s",
                envelope.id,
                exc.__class__.__name__,
                exception_location(exc),
            )
            error = {"stage": STAGE, "reason": f"internal mapping error ({exc.__class__.__name__})"}
            return envelope.derive(Event.FAILED, Format.JSON, error=error)
        log.info(
            "converted id=%s type=%s entries=%d cpu_ms=%.2f",
            envelope.id,
            envelope.message_type,
            len(bundle.get("entry") or ()),
            (time.process_time() - started) * 1000,
        )
        return envelope.derive(Event.CONVERTED, Format.FHIR, payload=bundle)


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """Only the error's known keys, always with stage fhir; too large a report keeps its location."""
    kept = {k: error[k] for k in _ERROR_KEYS if k in error}
    kept["stage"] = STAGE
    if len(json.dumps(kept, ensure_ascii=False).encode()) <= MAX_ERROR_BYTES:
        return kept
    return {
        "stage": STAGE,
        "reason": "error report too large to publish",
        "segmentIndex": kept.get("segmentIndex"),
    }
