"""Who listens to what: one SQS queue per subscriber, each with an SNS filter policy on attributes."""

from __future__ import annotations

from dataclasses import dataclass

from hub.events import Attr, Event, Format


@dataclass(frozen=True)
class Subscription:
    name: str
    filter_policy: dict[str, list[str]]
    max_receive_count: int = 5

    def matches(self, attributes: dict[str, str]) -> bool:
        """Exact-string matching, the subset of SNS filter policies this project uses."""
        return all(attributes.get(key) in allowed for key, allowed in self.filter_policy.items())


ER7_STAGING = Subscription(
    name="er7-staging",
    filter_policy={Attr.EVENT.value: [Event.RECEIVED.value], Attr.FORMAT.value: [Format.ER7.value]},
)
LAKE_WRITER = Subscription(
    name="lake-writer",
    filter_policy={Attr.EVENT.value: [e.value for e in Event]},
)

BATCH_SPLITTER = Subscription(
    name="batch-splitter",
    filter_policy={Attr.EVENT.value: [Event.BATCH_RECEIVED.value]},
)

SUBSCRIPTIONS: dict[str, Subscription] = {s.name: s for s in (ER7_STAGING, LAKE_WRITER, BATCH_SPLITTER)}


def subscription(name: str) -> Subscription:
    try:
        return SUBSCRIPTIONS[name]
    except KeyError:
        known = ", ".join(sorted(SUBSCRIPTIONS))
        raise LookupError(f"unknown subscriber {name!r} (known: {known})") from None
