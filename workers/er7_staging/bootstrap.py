"""Wiring for the ER7 staging worker."""

from __future__ import annotations

import threading

from hub import aws
from hub.consumer import Handler
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from hub.runtime import WorkerSettings, run_worker
from workers.er7_staging.handler import Er7StagingHandler

NAME = "er7-staging"


def build_handler(settings: WorkerSettings) -> Handler:
    sns = aws.client("sns", settings.region)
    payloads = S3PayloadStore(aws.client("s3", settings.region), settings.payload_bucket_name)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    publisher = SnsPublisher(sns, topic_arn, payloads, settings.max_inline_bytes)
    return Er7StagingHandler(publisher, payloads).handle


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
