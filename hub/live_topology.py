"""The hub's wiring as AWS (or the emulator) has it: the topic's subscriptions, their filter policies,
queues and dead-letter queues, read from SNS and SQS — never from hub.topology's constants."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LiveSubscription:
    subscription_arn: str
    protocol: str
    endpoint: str
    queue: str | None  # the SQS queue's name when the endpoint is a queue
    queue_url: str | None
    filter_policy: dict[str, Any] | None
    filter_policy_scope: str
    raw_delivery: bool
    dlq: str | None
    dlq_url: str | None
    max_receives: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LiveTopology:
    topic_arn: str
    subscriptions: list[LiveSubscription]

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic_arn, "subscriptions": [s.to_dict() for s in self.subscriptions]}


def queue_name_of(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def read_topology(sns: Any, sqs: Any, topic_arn: str) -> LiveTopology:
    subscriptions = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page["Subscriptions"]:
            subscriptions.append(_read_subscription(sns, sqs, sub))
    subscriptions.sort(key=lambda s: s.queue or s.endpoint)
    return LiveTopology(topic_arn, subscriptions)


def _read_subscription(sns: Any, sqs: Any, sub: dict[str, Any]) -> LiveSubscription:
    arn = sub["SubscriptionArn"]
    attrs = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    policy = json.loads(attrs["FilterPolicy"]) if attrs.get("FilterPolicy") else None
    queue = queue_url = dlq = dlq_url = None
    max_receives = None
    if sub.get("Protocol") == "sqs":
        queue = queue_name_of(sub["Endpoint"])
        queue_url = _queue_url(sqs, queue)
        if queue_url is not None:
            dlq, max_receives = _redrive(sqs, queue_url)
            dlq_url = _queue_url(sqs, dlq) if dlq else None
    return LiveSubscription(
        subscription_arn=arn,
        protocol=str(sub.get("Protocol")),
        endpoint=str(sub["Endpoint"]),
        queue=queue,
        queue_url=queue_url,
        filter_policy=policy,
        filter_policy_scope=attrs.get("FilterPolicyScope") or "MessageAttributes",
        raw_delivery=attrs.get("RawMessageDelivery", "false").lower() == "true",
        dlq=dlq,
        dlq_url=dlq_url,
        max_receives=max_receives,
    )


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except sqs.exceptions.QueueDoesNotExist:
        return None


def _redrive(sqs: Any, queue_url: str) -> tuple[str | None, int | None]:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get(
        "Attributes", {}
    )
    if not attrs.get("RedrivePolicy"):
        return None, None
    redrive = json.loads(attrs["RedrivePolicy"])
    return queue_name_of(redrive["deadLetterTargetArn"]), int(redrive["maxReceiveCount"])
