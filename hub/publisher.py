"""Publishing events to the hub topic."""

from __future__ import annotations

import logging
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


class Publisher(Protocol):
    def publish(self, envelope: Envelope) -> str: ...


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
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in envelope.attributes().items()
                },
            )
        except Exception as exc:  # botocore raises many types; all mean "not in the hub"
            rejected = _is_rejection(exc)
            log.warning(
                "publish %s event=%s id=%s error=%s",
                "rejected" if rejected else "failed",
                envelope.event.value,
                envelope.id,
                exc.__class__.__name__,
            )
            if rejected:
                raise HubRejected(
                    f"hub rejected the event: {_error_code(exc) or exc.__class__.__name__}"
                ) from exc
            raise HubUnavailable(f"hub unavailable: {exc.__class__.__name__}") from exc
        log.info(
            "published event=%s id=%s type=%s source=%s",
            envelope.event.value,
            envelope.id,
            envelope.message_type,
            envelope.source,
        )
        return str(response["MessageId"])
