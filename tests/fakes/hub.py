"""In-memory hub for unit tests: routes events to subscribers with the real filter policies; and the
in-memory claim-check store behind it."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import replace

from hub.events import Envelope, PayloadRef
from hub.payloads import PayloadStore, offload_if_large
from hub.publisher import HubUnavailable
from hub.topology import SUBSCRIPTIONS, Subscription


class MemoryPayloadStore:
    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> PayloadRef:
        self.objects[key] = body
        return PayloadRef(bucket=self.bucket, key=key, size=len(body))

    def get(self, ref: PayloadRef) -> bytes:
        return self.objects[ref.key]


class MemoryHub:
    def __init__(
        self,
        subscriptions: dict[str, Subscription] | None = None,
        payloads: PayloadStore | None = None,
        max_inline_bytes: int = 200 * 1024,
    ) -> None:
        self.subscriptions = subscriptions or SUBSCRIPTIONS
        self.payloads = payloads or MemoryPayloadStore()
        self.max_inline_bytes = max_inline_bytes
        self.published: list[Envelope] = []
        self.queues: dict[str, deque[Envelope]] = defaultdict(deque)
        self.fail_next = 0
        self._ids = itertools.count(1)

    def publish(self, envelope: Envelope) -> str:
        if self.fail_next:
            self.fail_next -= 1
            raise HubUnavailable("hub unavailable: simulated")
        # Round-trip through JSON so tests see exactly what subscribers would receive.
        body = offload_if_large(envelope, self.payloads, self.max_inline_bytes)[1]
        # The traceparent is a message attribute, not part of the body: carried over as SNS would.
        envelope = replace(Envelope.from_json(body), traceparent=envelope.traceparent)
        self.published.append(envelope)
        attributes = envelope.attributes()
        for name, sub in self.subscriptions.items():
            if sub.matches(attributes):
                self.queues[name].append(envelope)
        return f"memory-{next(self._ids)}"

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        for envelope in envelopes:
            try:
                self.publish(envelope)
                outcomes.append(None)
            except HubUnavailable as exc:
                outcomes.append(exc)
        return outcomes

    def drain(self, name: str) -> list[Envelope]:
        queue = self.queues[name]
        items = list(queue)
        queue.clear()
        return items
