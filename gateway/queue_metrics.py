"""The hub's queues on the gateway's /metrics: depths, DLQs and oldest ages per subscription."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

from gateway.config import GatewaySettings
from hub import aws
from hub.queue_health import QueueHealthCollector, cloudwatch_has_sqs_metrics, live_reader

CACHE_SECONDS = 5.0


def register_queue_metrics(
    settings: GatewaySettings, registry: CollectorRegistry = REGISTRY
) -> QueueHealthCollector:
    """Called once per process (the gateway's `run`); a scrape reads SQS at most every 5 s."""
    sns = aws.client("sns", settings.region)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    cloudwatch = aws.client("cloudwatch", settings.region) if cloudwatch_has_sqs_metrics() else None
    reader = live_reader(sns, aws.client("sqs", settings.region), topic_arn, cloudwatch)
    collector = QueueHealthCollector(reader, ttl=CACHE_SECONDS)
    registry.register(collector)
    return collector
