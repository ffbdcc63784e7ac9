"""Wiring for the FHIR R4 worker (`hl7lake worker fhir-r4`)."""

from __future__ import annotations

import threading

from hub import aws
from hub.consumer import Batched
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from hub.runtime import WorkerSettings, run_worker
from workers.fhir.handler import FhirHandler

NAME = "fhir-r4"


def build_handler(settings: WorkerSettings) -> Batched:
    sns = aws.worker_client("sns", settings.region)
    payloads = S3PayloadStore(aws.worker_client("s3", settings.region), settings.payload_bucket_name)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    publisher = SnsPublisher(sns, topic_arn, payloads, settings.max_inline_bytes)
    return Batched(FhirHandler(publisher, payloads).handle_batch)


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
