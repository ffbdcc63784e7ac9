"""Wiring for the batch splitter worker (`hl7lake worker batch-splitter`): the front door's ingest path
with real adapters, consuming `batch.received` events."""

from __future__ import annotations

import threading

from gateway.backlog import BacklogMonitor, sqs_depth_reader
from gateway.bootstrap import build_ingest, subscriber_queue_urls
from gateway.config import GatewaySettings
from gateway.splitter.handler import BatchSplitter, backlog_pacer
from hub import aws
from hub.consumer import Handler
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from hub.runtime import WorkerSettings, run_worker

NAME = "batch-splitter"


def build_handler(settings: WorkerSettings) -> Handler:
    gateway = GatewaySettings()
    sns, s3 = aws.worker_client("sns", settings.region), aws.worker_client("s3", settings.region)
    ddb, sqs = aws.worker_client("dynamodb", settings.region), aws.worker_client("sqs", settings.region)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    ingest = build_ingest(gateway, sns=sns, s3=s3, ddb=ddb, sqs=sqs, topic_arn=topic_arn)
    payloads = S3PayloadStore(s3, settings.payload_bucket_name)
    publisher = SnsPublisher(sns, topic_arn, payloads, settings.max_inline_bytes)
    pace = lambda: None  # noqa: E731
    if gateway.max_backlog > 0:
        # Half the front door's limit: senders of single messages keep the other half.
        monitor = BacklogMonitor(
            sqs_depth_reader(sqs, subscriber_queue_urls(sqs, gateway)), max(1, gateway.max_backlog // 2)
        )
        pace = backlog_pacer(lambda: bool(monitor.current().behind))
    return BatchSplitter(
        ingest, publisher, payloads, wait_while_behind=pace, duty=gateway.batch_split_duty
    ).handle


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
