"""Wiring for the lake writer service (the one place that builds its real adapters)."""

from __future__ import annotations

import threading

from hub import aws
from hub.consumer import Batched
from hub.payloads import S3PayloadStore
from hub.runtime import WorkerSettings, run_worker
from lake.catalog import DynamoCatalog
from lake.objects import S3ObjectStore
from lake.writer import LakeWriter

NAME = "lake-writer"


def build_handler(settings: WorkerSettings) -> Batched:
    s3 = aws.worker_client("s3", settings.region)
    writer = LakeWriter(
        objects=S3ObjectStore(s3, settings.lake_bucket_name),
        catalog=DynamoCatalog(
            aws.worker_client("dynamodb", settings.region),
            settings.catalog_table_name,
        ),
        payloads=S3PayloadStore(s3, settings.payload_bucket_name),
    )
    return Batched(writer.handle_batch)


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
