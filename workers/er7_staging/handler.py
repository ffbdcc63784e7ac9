"""ER7 staging: normalize and parse a received message, publish the result or a precise failure.

With ``validate=True`` (``HL7LAKE_VALIDATE``) a parsed message is also checked against its HL7
version (``validation.validate``): the findings travel in the parsed event's envelope
(``extra["findings"]``) to the catalog; the document is the same either way, and no finding ever
turns a parsed message into a failure. What the parser accepted leniently (``escape-kept``: a stray
escape character kept as written) travels the same way, validation or not, ahead of the
validation findings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from hub import metrics
from hub.er7 import Er7Error
from hub.events import Envelope, Event, Format
from hub.payloads import PayloadStore, load_payload
from hub.publisher import Publisher
from hub.results import bounded_error, publish_results, with_step
from hub.topology import ER7_STAGING
from hub.tracebacks import exception_location
from workers.er7_staging import validation
from workers.er7_staging.document import collecting_findings, parse_document

log = logging.getLogger(__name__)

SERVICE = "er7-staging"  # its step in each message's path (hub/steps.py)


class Er7StagingHandler:
    def __init__(self, publisher: Publisher, payloads: PayloadStore, *, validate: bool = False) -> None:
        self._publisher = publisher
        self._payloads = payloads
        self._validate = validate

    def handle(self, envelope: Envelope) -> None:
        outcome = self.handle_batch([envelope])[0]
        if outcome is not None:
            raise outcome

    def handle_batch(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Parses each received message, then publishes every result in as few calls as SNS allows."""
        return publish_results(self._publisher, envelopes, _is_ours, self._with_step)

    def _with_step(self, envelope: Envelope, started_at: str) -> Envelope:
        return with_step(SERVICE, envelope, self._result(envelope), "parsed", started_at)

    def _result(self, envelope: Envelope) -> Envelope:
        """The `message.parsed` or `message.failed` event for one received message."""
        text = str(load_payload(envelope, self._payloads))
        started = time.process_time()
        try:
            with collecting_findings() as parse_findings:
                document = parse_document(text, message_id=envelope.id)
        except Er7Error as err:
            return self._failure(envelope, err.to_dict())
        except Exception as exc:  # a parser bug must not poison the queue: report it as a failure
            # Where, not what: an exception's text may quote message content (no PHI in logs).
            log.error(
                "parser crashed id=%s error=%s at %s",
                envelope.id,
                exc.__class__.__name__,
                exception_location(exc),
            )
            return self._failure(envelope, {"reason": f"internal parser error ({exc.__class__.__name__})"})
        cpu_ms = (time.process_time() - started) * 1000
        extra, checked = envelope.extra, ""
        if parse_findings:
            extra = {**extra, "findings": parse_findings}
            checked = f" parse_findings={len(parse_findings)}"
        if self._validate:
            started = time.process_time()
            findings = validation.validate(text, document["header"]["version"])  # never raises
            extra = {**extra, "findings": parse_findings + findings}
            # the count only in the logs: findings name positions and codes, never values
            checked += (
                f" findings={len(findings)} validate_cpu_ms={(time.process_time() - started) * 1000:.1f}"
            )
        log.info(
            "parsed id=%s type=%s segments=%d cpu_ms=%.2f%s",
            envelope.id,
            envelope.message_type,
            len(document["segments"]),
            cpu_ms,
            checked,
        )
        return envelope.derive(Event.PARSED, Format.JSON, payload=document, extra=extra)

    def _failure(self, envelope: Envelope, error: dict[str, Any]) -> Envelope:
        error = bounded_error(error)
        # A position (MSH-9, PID) as the label, never the reason's text: few values, no content.
        where = error.get("field") or error.get("segment") or "internal"
        metrics.PARSE_FAILURES.labels(str(where)[:16]).inc()
        log.info(
            "parse failed id=%s type=%s field=%s", envelope.id, envelope.message_type, error.get("field")
        )
        return envelope.derive(Event.FAILED, Format.JSON, error=error)


def _is_ours(envelope: Envelope) -> bool:
    if ER7_STAGING.handles_event(envelope.event, envelope.format):
        return True
    # Only a wrong filter policy sends these (`hl7lake hub --check` names it): parsing them would
    # publish a bogus failure for a message that may be fine.
    log.warning("ignored event=%s format=%s id=%s", envelope.event.value, envelope.format.value, envelope.id)
    return False
