"""Publishing events to the hub topic."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from hub.events import Envelope
from hub.payloads import PayloadStore, offload_if_large

log = logging.getLogger(__name__)


class HubUnavailable(RuntimeError):
    """The hub could not take the event; the caller must not acknowledge the message."""


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
            log.warning(
                "publish failed event=%s id=%s error=%s",
                envelope.event.value,
                envelope.id,
                exc.__class__.__name__,
            )
            raise HubUnavailable(f"hub unavailable: {exc.__class__.__name__}") from exc
        log.info(
            "published event=%s id=%s type=%s source=%s",
            envelope.event.value,
            envelope.id,
            envelope.message_type,
            envelope.source,
        )
        return str(response["MessageId"])
