"""Per subscription: messages waiting, in flight, dead-lettered, and the age of the oldest one.

Depths come from SQS queue attributes; a queue is never received from (a receive would count
towards maxReceiveCount). The oldest message's age exists only as the CloudWatch metric
ApproximateAgeOfOldestMessage, which emulators (moto, LocalStack) do not publish for SQS: there the
age is None and not exported.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.live_topology import LiveSubscription


@dataclass(frozen=True)
class QueueHealth:
    queue: str
    visible: int
    in_flight: int
    dlq_depth: int | None  # None: the queue has no DLQ
    oldest_age_seconds: float | None  # None: unknown (no CloudWatch metric, e.g. on an emulator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cloudwatch_has_sqs_metrics() -> bool:
    """Real AWS only: an endpoint override means an emulator, whose CloudWatch has no SQS metrics."""
    return not (os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH"))


def _depths(sqs: Any, queue_url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names).get("Attributes", {})
    return int(attrs.get(names[0], 0)), int(attrs.get(names[1], 0))


def oldest_age(cloudwatch: Any, queue: str, now: datetime | None = None) -> float | None:
    """The latest ApproximateAgeOfOldestMessage datapoint of the last five minutes, if any."""
    end = now or datetime.now(UTC)
    response = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue}],
        StartTime=end - timedelta(minutes=5),
        EndTime=end,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def read_health(sqs: Any, subs: list[LiveSubscription], cloudwatch: Any | None = None) -> list[QueueHealth]:
    """Health of every subscription that has a queue; ``cloudwatch`` None: ages unknown."""
    found = []
    for sub in subs:
        if sub.queue is None or sub.queue_url is None:
            continue
        visible, in_flight = _depths(sqs, sub.queue_url)
        dlq_depth = _depths(sqs, sub.dlq_url)[0] if sub.dlq_url else None
        age = oldest_age(cloudwatch, sub.queue) if cloudwatch is not None else None
        found.append(QueueHealth(sub.queue, visible, in_flight, dlq_depth, age))
    return found


class QueueHealthCollector(Collector):
    """Prometheus collector over ``read`` (which returns every queue's health), cached ``ttl`` seconds
    so that scrapes do not each cost a round of SQS calls."""

    def __init__(
        self,
        read: Callable[[], list[QueueHealth]],
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[QueueHealth] = []
        self._read_at: float | None = None
        self._failed = False

    def _current(self) -> tuple[list[QueueHealth], bool]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl:
                try:
                    self._cached, self._failed = self._read(), False
                except Exception:  # AWS unreachable: the scrape says so instead of failing
                    self._cached, self._failed = [], True
                self._read_at = now
            return self._cached, self._failed

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health, failed = self._current()
        label = ["queue"]
        visible = GaugeMetricFamily(
            "hl7lake_queue_visible_messages", "Messages waiting in the queue", labels=label
        )
        in_flight = GaugeMetricFamily(
            "hl7lake_queue_in_flight_messages", "Messages received, not yet deleted", labels=label
        )
        dlq = GaugeMetricFamily("hl7lake_queue_dlq_messages", "Messages in the queue's DLQ", labels=label)
        age = GaugeMetricFamily(
            "hl7lake_queue_oldest_message_age_seconds",
            "Age of the oldest message (CloudWatch; absent on emulators)",
            labels=label,
        )
        for queue in health:
            visible.add_metric([queue.queue], queue.visible)
            in_flight.add_metric([queue.queue], queue.in_flight)
            if queue.dlq_depth is not None:
                dlq.add_metric([queue.queue], queue.dlq_depth)
            if queue.oldest_age_seconds is not None:
                age.add_metric([queue.queue], queue.oldest_age_seconds)
        up = GaugeMetricFamily("hl7lake_queue_health_up", "1 when the queue depths could be read")
        up.add_metric([], 0 if failed else 1)
        yield from (visible, in_flight, dlq, age, up)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no read at registration time


def live_reader(
    sns: Any, sqs: Any, topic_arn: str, cloudwatch: Any | None
) -> Callable[[], list[QueueHealth]]:
    """Reads the live subscriptions, then their queues' health (a queue added later shows up too)."""
    from hub.live_topology import read_topology

    def read() -> list[QueueHealth]:
        return read_health(sqs, read_topology(sns, sqs, topic_arn).subscriptions, cloudwatch)

    return read
