"""Wiring for the batch splitter worker (`hl7lake worker batch-splitter`): the front door's ingest path
with real adapters, consuming `batch.received` events."""

from __future__ import annotations

import threading

from gateway.bootstrap import build_ingest
from gateway.config import GatewaySettings
from gateway.splitter.handler import BatchSplitter, backlog_pacer
from hub import aws
from hub.consumer import Handler
from hub.payloads import S3PayloadStore
from hub.runtime import WorkerSettings, run_worker

NAME = "batch-splitter"


def build_handler(settings: WorkerSettings) -> Handler:
    gateway = GatewaySettings()
    sns, s3 = aws.worker_client("sns", settings.region), aws.worker_client("s3", settings.region)
    ddb, sqs = aws.worker_client("dynamodb", settings.region), aws.worker_client("sqs", settings.region)
    # Half the front door's backlog limit: senders of single messages keep the other half.
    ingest = build_ingest(
        gateway,
        sns=sns,
        s3=s3,
        ddb=ddb,
        sqs=sqs,
        backlog_limit=max(1, gateway.max_backlog // 2),
        door="batch-splitter",
    )
    backlog = ingest.backlog
    pace = backlog_pacer(lambda: bool(backlog.current().behind)) if backlog else lambda: None
    payloads = S3PayloadStore(s3, settings.payload_bucket_name)
    return BatchSplitter(
        ingest, ingest.publisher, payloads, wait_while_behind=pace, duty=gateway.batch_split_duty
    ).handle


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
