"""Queue depths from SQS attributes (never a receive), the oldest age from CloudWatch, and the cached
Prometheus collector the gateway's /metrics serves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hub.live_topology import LiveSubscription
from hub.queue_health import QueueHealth, QueueHealthCollector, cloudwatch_has_sqs_metrics, read_health


class FakeSqs:
    def __init__(self, depths: dict[str, tuple[int, int]]) -> None:
        self.depths = depths
        self.calls: list[str] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.calls.append("get_queue_attributes")
        visible, hidden = self.depths[QueueUrl]
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(hidden),
            }
        }

    def receive_message(self, **kwargs: Any) -> Any:
        raise AssertionError("a receive counts towards maxReceiveCount: never peek")


class FakeCloudWatch:
    def __init__(self, points: list[dict[str, Any]]) -> None:
        self.points = points
        self.asked: list[dict[str, Any]] = []

    def get_metric_statistics(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        return {"Datapoints": self.points}


def sub(queue: str, dlq: bool = True) -> LiveSubscription:
    return LiveSubscription(
        subscription_arn=f"arn:{queue}",
        protocol="sqs",
        endpoint=f"arn:aws:sqs:us-east-1:1:{queue}",
        queue=queue,
        queue_url=f"url/{queue}",
        filter_policy=None,
        filter_policy_scope="MessageAttributes",
        raw_delivery=True,
        dlq=f"{queue}-dlq" if dlq else None,
        dlq_url=f"url/{queue}-dlq" if dlq else None,
        max_receives=5 if dlq else None,
    )


def test_depths_and_dlq_come_from_queue_attributes() -> None:
    sqs = FakeSqs({"url/a": (3, 2), "url/a-dlq": (1, 0), "url/b": (0, 0)})
    health = read_health(sqs, [sub("a"), sub("b", dlq=False)])
    assert health == [QueueHealth("a", 3, 2, 1, None), QueueHealth("b", 0, 0, None, None)]


def test_the_oldest_age_is_the_latest_cloudwatch_datapoint_and_none_without_one() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cloudwatch = FakeCloudWatch(
        [
            {"Timestamp": now - timedelta(minutes=1), "Maximum": 42.0},
            {"Timestamp": now - timedelta(minutes=3), "Maximum": 7.0},
        ]
    )
    health = read_health(FakeSqs({"url/a": (1, 0), "url/a-dlq": (0, 0)}), [sub("a")], cloudwatch)
    assert health[0].oldest_age_seconds == 42.0
    assert cloudwatch.asked[0]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert cloudwatch.asked[0]["Dimensions"] == [{"Name": "QueueName", "Value": "a"}]
    assert (
        read_health(FakeSqs({"url/a": (1, 0), "url/a-dlq": (0, 0)}), [sub("a")], FakeCloudWatch([]))[
            0
        ].oldest_age_seconds
        is None
    )


def test_ages_are_read_only_on_aws_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_CLOUDWATCH", raising=False)
    assert cloudwatch_has_sqs_metrics()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert not cloudwatch_has_sqs_metrics()


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_collector_exports_per_queue_and_reads_at_most_once_per_ttl() -> None:
    reads: list[int] = []

    def read() -> list[QueueHealth]:
        reads.append(1)
        return [QueueHealth("hl7lake-lake-writer", 4, 1, 2, None), QueueHealth("x", 0, 0, None, 9.5)]

    clock = Clock()
    registry = CollectorRegistry()
    registry.register(QueueHealthCollector(read, ttl=5, clock=clock))
    assert reads == []  # registering reads nothing
    text = generate_latest(registry).decode()
    assert 'hl7lake_queue_visible_messages{queue="hl7lake-lake-writer"} 4.0' in text
    assert 'hl7lake_queue_in_flight_messages{queue="hl7lake-lake-writer"} 1.0' in text
    assert 'hl7lake_queue_dlq_messages{queue="hl7lake-lake-writer"} 2.0' in text
    assert 'hl7lake_queue_dlq_messages{queue="x"}' not in text  # no DLQ: no series
    assert 'hl7lake_queue_oldest_message_age_seconds{queue="hl7lake-lake-writer"}' not in text  # unknown
    assert 'hl7lake_queue_oldest_message_age_seconds{queue="x"} 9.5' in text
    clock.now = 4.9
    generate_latest(registry)
    assert len(reads) == 1
    clock.now = 5.0
    generate_latest(registry)
    assert len(reads) == 2


def test_an_unreachable_sqs_shows_as_down_not_as_a_failed_scrape() -> None:
    def read() -> list[QueueHealth]:
        raise OSError("connection refused")

    registry = CollectorRegistry()
    registry.register(QueueHealthCollector(read, clock=Clock()))
    text = generate_latest(registry).decode()
    assert "hl7lake_queue_health_up 0.0" in text


def test_the_gateway_registers_the_collector_on_its_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from gateway.config import GatewaySettings
    from gateway.queue_metrics import register_queue_metrics

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://emulated.invalid")  # so no CloudWatch ages
    with mock_aws():
        sns, sqs = boto3.client("sns", "us-east-1"), boto3.client("sqs", "us-east-1")
        topic = sns.create_topic(Name="hl7lake-hub")["TopicArn"]
        url = sqs.create_queue(QueueName="hl7lake-lake-writer")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        sqs.send_message(QueueUrl=url, MessageBody="x")
        registry = CollectorRegistry()
        register_queue_metrics(GatewaySettings(region="us-east-1"), registry)
        text = generate_latest(registry).decode()
    assert 'hl7lake_queue_visible_messages{queue="hl7lake-lake-writer"} 1.0' in text
    assert "hl7lake_queue_oldest_message_age_seconds{" not in text
