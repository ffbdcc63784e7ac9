"""`hl7lake hub --check`: every event the code publishes against every live filter policy.

Fails when an event reaches no subscriber, or when a queue receives an event its worker does not
handle (hub.topology's ``handles``) — including a queue no worker reads at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.events import Envelope, Event, Format
from hub.filter_policy import FilterPolicyError, matches
from hub.live_topology import LiveSubscription, LiveTopology
from hub.topology import SUBSCRIPTIONS, Subscription

# Every (event, format) some part of the code publishes: the front door (received, batch received,
# a rejected message kept as text), the staging worker (parsed, failed) and the batch splitter.
PUBLISHED: tuple[tuple[Event, Format], ...] = (
    (Event.RECEIVED, Format.ER7),
    (Event.BATCH_RECEIVED, Format.ER7),
    (Event.PARSED, Format.JSON),
    (Event.FAILED, Format.JSON),
    (Event.FAILED, Format.TEXT),
    (Event.BATCH_COMPLETED, Format.JSON),
    (Event.CONVERTED, Format.FHIR),
)


def sample_envelope(event: Event, format: Format) -> Envelope:
    """A representative event: every attribute the publisher sets has a realistic value."""
    return Envelope(
        event=event,
        id="00000000-0000-4000-8000-000000000000",
        source="hospital-a",
        received_at="2026-01-01T00:00:00.000Z",
        message_type="unknown" if format is Format.TEXT else "ADT^A01",
        control_id="MSG00001",
        format=format,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


@dataclass(frozen=True)
class Route:
    event: Event
    format: Format
    receivers: tuple[str, ...]  # queue names

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event.value, "format": self.format.value, "receivers": list(self.receivers)}


@dataclass
class CheckReport:
    routes: list[Route] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "routes": [r.to_dict() for r in self.routes],
            "problems": self.problems,
        }


def worker_of(sub: LiveSubscription, prefix: str) -> Subscription | None:
    """The worker that reads this subscription's queue (named ``<prefix>-<worker>``), if any."""
    if sub.queue is None or not sub.queue.startswith(f"{prefix}-"):
        return None
    return SUBSCRIPTIONS.get(sub.queue.removeprefix(f"{prefix}-"))


def receives(sub: LiveSubscription, envelope: Envelope) -> bool:
    if sub.filter_policy is None:
        return True  # no policy: SNS delivers everything
    if sub.filter_policy_scope == "MessageBody":
        return matches(sub.filter_policy, envelope.to_dict())
    return matches(sub.filter_policy, dict(envelope.attributes()))


def check(topology: LiveTopology, prefix: str) -> CheckReport:
    report = CheckReport()
    received: set[str] = set()  # subscription ARNs
    for event, format in PUBLISHED:
        envelope = sample_envelope(event, format)
        names = []
        for sub in topology.subscriptions:
            label = sub.queue or sub.endpoint
            try:
                if not receives(sub, envelope):
                    continue
            except FilterPolicyError as exc:
                report.problems.append(f"{label}: filter policy not understood: {exc}")
                continue
            names.append(label)
            received.add(sub.subscription_arn)
            worker = worker_of(sub, prefix)
            if worker is None:
                report.problems.append(
                    f"{label} receives {event.value} ({format.value}) but no hl7lake worker reads that queue"
                )
            elif not worker.handles_event(event, format):
                report.problems.append(
                    f"{label} receives {event.value} ({format.value}), which worker {worker.name} "
                    "does not handle (wrong message)"
                )
        if not names:
            report.problems.append(f"{event.value} ({format.value}) reaches no subscriber")
        report.routes.append(Route(event, format, tuple(names)))
    for sub in topology.subscriptions:
        label = sub.queue or sub.endpoint
        if sub.subscription_arn not in received:
            report.problems.append(f"{label} receives no event the code publishes")
    return report
