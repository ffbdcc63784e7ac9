"""ER7 staging: normalize and parse a received message, publish the result or a precise failure.

With ``validate=True`` (``HL7LAKE_VALIDATE``) a parsed message is also checked against its HL7
version (``validation.validate``): the findings travel in the parsed event's envelope
(``extra["findings"]``) to the catalog; the document is the same either way, and no finding ever
turns a parsed message into a failure. What the parser accepted leniently (``escape-kept``: a stray
escape character kept as written) travels the same way, validation or not, ahead of the
validation findings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from hub import metrics, steps
from hub.er7 import Er7Error
from hub.events import Envelope, Event, Format, utc_timestamp
from hub.payloads import PayloadStore, load_payload
from hub.publisher import Publisher
from hub.topology import ER7_STAGING
from hub.tracebacks import exception_location
from workers.er7_staging import validation
from workers.er7_staging.document import collecting_findings, parse_document

log = logging.getLogger(__name__)

# A failed event is an envelope without payload plus this error: far below SNS's 256 KB, always.
MAX_ERROR_BYTES = 2048
_ERROR_KEYS = ("reason", "segment", "segmentIndex", "field")
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
        """Parses each received message, then publishes every result in as few calls as SNS allows.
        An outcome is None when the result is in the hub, else the error (the consumer retries)."""
        outcomes: list[BaseException | None] = [None] * len(envelopes)
        results: list[tuple[int, Envelope]] = []
        for index, envelope in enumerate(envelopes):
            if not ER7_STAGING.handles_event(envelope.event, envelope.format):
                # Only a wrong filter policy sends these (`hl7lake hub --check` names it): parsing
                # them would publish a bogus failure for a message that may be fine.
                log.warning(
                    "ignored event=%s format=%s id=%s",
                    envelope.event.value,
                    envelope.format.value,
                    envelope.id,
                )
                continue
            try:
                results.append((index, self._with_step(envelope, utc_timestamp())))
            except Exception as exc:  # the payload could not be fetched (claim-check bucket down)
                outcomes[index] = exc
        published = self._publisher.publish_batch([result for _, result in results])
        for (index, _), outcome in zip(results, published, strict=True):
            outcomes[index] = outcome
        return outcomes

    def _with_step(self, envelope: Envelope, started_at: str) -> Envelope:
        """The result event, carrying the message's path so far and this handling as its last step."""
        result = self._result(envelope)
        outcome = "parsed" if result.event is Event.PARSED else "failed"
        reason = (result.error or {}).get("reason") if result.error else None
        return steps.with_steps(result, steps.step(SERVICE, envelope, outcome, started_at, reason))

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


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """Only the error's known keys; a report that is still too large keeps its location, not its reason.

    Er7Error reasons are value-free and capped already; this is the last guard before the hub.
    """
    kept = {k: error[k] for k in _ERROR_KEYS if k in error}
    if len(json.dumps(kept, ensure_ascii=False).encode()) <= MAX_ERROR_BYTES:
        return kept
    return {"reason": "error report too large to publish", "segmentIndex": kept.get("segmentIndex")}
