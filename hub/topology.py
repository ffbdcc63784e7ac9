"""Who listens to what: one SQS queue per subscriber, each with an SNS filter policy on attributes."""

from __future__ import annotations

from dataclasses import dataclass

from hub.events import Attr, Event, Format
from hub.filter_policy import matches as policy_matches


@dataclass(frozen=True)
class Subscription:
    name: str
    filter_policy: dict[str, list[str]]
    max_receive_count: int = 5
    # What the worker's handler acts on: `hl7lake hub --check` fails when a live filter delivers
    # anything else to this queue (the wrong message), or when an event reaches no subscriber.
    handles: frozenset[Event] = frozenset()
    handles_formats: frozenset[Format] = frozenset(Format)

    def matches(self, attributes: dict[str, str]) -> bool:
        return policy_matches(self.filter_policy, attributes)

    def handles_event(self, event: Event, format: Format) -> bool:
        return event in self.handles and format in self.handles_formats


ER7_STAGING = Subscription(
    name="er7-staging",
    filter_policy={Attr.EVENT.value: [Event.RECEIVED.value], Attr.FORMAT.value: [Format.ER7.value]},
    handles=frozenset({Event.RECEIVED}),
    handles_formats=frozenset({Format.ER7}),
)
LAKE_WRITER = Subscription(
    name="lake-writer",
    filter_policy={Attr.EVENT.value: [e.value for e in Event]},
    handles=frozenset(Event),
)

BATCH_SPLITTER = Subscription(
    name="batch-splitter",
    filter_policy={Attr.EVENT.value: [Event.BATCH_RECEIVED.value]},
    handles=frozenset({Event.BATCH_RECEIVED}),
)

# The message types workers/fhir maps (hub imports no worker: tests/unit/test_fhir_topology.py keeps
# this list equal to workers.fhir.mapping.MAPPED_TYPES).
FHIR_MAPPED_TYPES = ("ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ORU^R01", "VXU^V04")
FHIR_R4 = Subscription(
    name="fhir-r4",
    filter_policy={Attr.EVENT.value: [Event.PARSED.value], Attr.MESSAGE_TYPE.value: list(FHIR_MAPPED_TYPES)},
    handles=frozenset({Event.PARSED}),
    handles_formats=frozenset({Format.JSON}),
)

SUBSCRIPTIONS: dict[str, Subscription] = {
    s.name: s for s in (ER7_STAGING, LAKE_WRITER, BATCH_SPLITTER, FHIR_R4)
}


def subscription(name: str) -> Subscription:
    try:
        return SUBSCRIPTIONS[name]
    except KeyError:
        known = ", ".join(sorted(SUBSCRIPTIONS))
        raise LookupError(f"unknown subscriber {name!r} (known: {known})") from None
