"""Publishing events to the hub topic."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from hub.events import Envelope
from hub.payloads import PayloadStore, offload_if_large

log = logging.getLogger(__name__)


class HubUnavailable(RuntimeError):
    """The hub could not take the event; the caller must not acknowledge the message."""


class HubRejected(RuntimeError):
    """The hub refused this event itself (invalid, too long): retrying the same event cannot succeed."""


# SNS error codes that mean "this request is wrong", not "try again later".
_REJECTED_CODES = frozenset({"InvalidParameter", "InvalidParameterValue", "ParameterValueInvalid"})


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # botocore.exceptions.ClientError carries the SNS code
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code") or "") if isinstance(error, dict) else ""


def _is_rejection(exc: Exception) -> bool:
    code = _error_code(exc)  # only an answer from SNS can say "too long"; a transport error never does
    return code in _REJECTED_CODES or (bool(code) and "too long" in str(exc).lower())


# SNS PublishBatch: at most 10 entries and 256 KiB for the whole request (attributes included).
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 240 * 1024


class Publisher(Protocol):
    def publish(self, envelope: Envelope) -> str: ...

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[Exception | None]:
        """One outcome per envelope, in order: None when it is in the hub, else the error."""
        ...


def _attributes(envelope: Envelope) -> dict[str, dict[str, str]]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in envelope.attributes().items()}


def _entry_bytes(body: str, attributes: dict[str, dict[str, str]]) -> int:
    return len(body.encode()) + sum(len(k) + len(v["StringValue"]) + 6 for k, v in attributes.items())


def _chunks(sized: list[tuple[int, int]]) -> list[list[int]]:
    """Indexes grouped so that no chunk passes PublishBatch's entry count or request size."""
    chunks: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in sized:
        if current and (len(current) == MAX_BATCH_ENTRIES or total + size > MAX_BATCH_BYTES):
            chunks.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        chunks.append(current)
    return chunks


class SnsPublisher:
    def __init__(self, sns: Any, topic_arn: str, payloads: PayloadStore, max_inline_bytes: int) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._payloads = payloads
        self._max_inline = max_inline_bytes

    def publish(self, envelope: Envelope) -> str:
        try:
            envelope, body = offload_if_large(envelope, self._payloads, self._max_inline)
            response = self._sns.publish(
                TopicArn=self._topic_arn,
                Message=body,
                MessageAttributes=_attributes(envelope),
            )
        except Exception as exc:  # botocore raises many types; all mean "not in the hub"
            raise _classified(envelope, exc) from exc
        _log_published(envelope)
        return str(response["MessageId"])

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[Exception | None]:
        """PublishBatch in as few requests as the limits allow (a tenth of the calls for 10 events)."""
        outcomes: list[Exception | None] = [None] * len(envelopes)
        prepared: list[tuple[Envelope, str, dict[str, dict[str, str]]]] = []
        sized: list[tuple[int, int]] = []
        for index, envelope in enumerate(envelopes):
            try:
                offloaded, body = offload_if_large(envelope, self._payloads, self._max_inline)
            except Exception as exc:  # the claim-check bucket is unreachable
                outcomes[index] = _classified(envelope, exc)
                offloaded, body = envelope, ""
            attributes = _attributes(offloaded)
            prepared.append((offloaded, body, attributes))
            if outcomes[index] is None:
                sized.append((index, _entry_bytes(body, attributes)))
        for chunk in _chunks(sized):
            self._publish_chunk(chunk, prepared, outcomes)
        return outcomes

    def _publish_chunk(
        self,
        chunk: list[int],
        prepared: list[tuple[Envelope, str, dict[str, dict[str, str]]]],
        outcomes: list[Exception | None],
    ) -> None:
        entries = [
            {"Id": str(i), "Message": prepared[i][1], "MessageAttributes": prepared[i][2]} for i in chunk
        ]
        try:
            response = self._sns.publish_batch(TopicArn=self._topic_arn, PublishBatchRequestEntries=entries)
        except Exception as exc:
            for i in chunk:
                outcomes[i] = _classified(prepared[i][0], exc)
            return
        for i in chunk:  # an entry SNS does not list as successful is not known to be in the hub
            outcomes[i] = HubUnavailable("hub unavailable: no outcome for this entry")
        for failed in response.get("Failed", []):
            i = int(failed["Id"])
            code = str(failed.get("Code") or "")
            error: Exception
            if failed.get("SenderFault") and code in _REJECTED_CODES:
                error = HubRejected(f"hub rejected the event: {code}")
            else:
                error = HubUnavailable(f"hub unavailable: {code or 'batch entry failed'}")
            log.warning(
                "publish failed event=%s id=%s code=%s", prepared[i][0].event.value, prepared[i][0].id, code
            )
            outcomes[i] = error
        for ok in response.get("Successful", []):
            outcomes[int(ok["Id"])] = None
            _log_published(prepared[int(ok["Id"])][0])


def _log_published(envelope: Envelope) -> None:
    log.info(
        "published event=%s id=%s type=%s source=%s",
        envelope.event.value,
        envelope.id,
        envelope.message_type,
        envelope.source,
    )


def _classified(envelope: Envelope, exc: Exception) -> HubRejected | HubUnavailable:
    rejected = _is_rejection(exc)
    log.warning(
        "publish %s event=%s id=%s error=%s",
        "rejected" if rejected else "failed",
        envelope.event.value,
        envelope.id,
        exc.__class__.__name__,
    )
    if rejected:
        return HubRejected(f"hub rejected the event: {_error_code(exc) or exc.__class__.__name__}")
    return HubUnavailable(f"hub unavailable: {exc.__class__.__name__}")
