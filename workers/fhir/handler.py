"""FHIR R4: convert each parsed message's document into a transaction Bundle, publish the Bundle or
a located failure (``message.failed`` with ``error.stage = "fhir"``: the catalog keeps ``parsed``).

It reads the parsed document from the event (inline or claim check), never the raw ER7 again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from hub.events import Envelope, Event, Format
from hub.payloads import PayloadStore, load_payload
from hub.publisher import Publisher
from hub.results import bounded_error, publish_results, with_step
from hub.topology import FHIR_R4
from hub.tracebacks import exception_location
from workers.fhir.mapping import MAPPED_TYPES, MappingError, convert

log = logging.getLogger(__name__)

SERVICE = "fhir-r4"  # its step in each message's path (hub/steps.py)
STAGE = "fhir"  # error.stage of its failures (the lake keeps them beside the parsed status)


class FhirHandler:
    def __init__(self, publisher: Publisher, payloads: PayloadStore) -> None:
        self._publisher = publisher
        self._payloads = payloads

    def handle(self, envelope: Envelope) -> None:
        outcome = self.handle_batch([envelope])[0]
        if outcome is not None:
            raise outcome

    def handle_batch(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Converts each parsed message, then publishes every result in as few calls as SNS allows."""
        return publish_results(self._publisher, envelopes, self._is_ours, self._with_step)

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
        return with_step(SERVICE, envelope, self._result(envelope), "converted", started_at)

    def _result(self, envelope: Envelope) -> Envelope:
        """The `message.converted` or `message.failed` event for one parsed message."""
        document = load_payload(envelope, self._payloads)
        started = time.process_time()
        try:
            bundle = convert(document, envelope.id)
        except MappingError as err:
            log.info("fhir failed id=%s type=%s field=%s", envelope.id, envelope.message_type, err.field)
            return envelope.derive(Event.FAILED, Format.JSON, error=bounded_error(err.to_dict(), STAGE))
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
