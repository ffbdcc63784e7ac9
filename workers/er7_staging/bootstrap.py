"""Wiring for the ER7 staging worker."""

from __future__ import annotations

import threading

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hub import aws
from hub.config import EnvSettings
from hub.consumer import Batched
from hub.payloads import S3PayloadStore
from hub.publisher import SnsPublisher
from hub.runtime import WorkerSettings, run_worker
from workers.er7_staging.handler import Er7StagingHandler

NAME = "er7-staging"


class StagingSettings(EnvSettings):
    """This worker's own settings (the shared ones are ``WorkerSettings``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    # HL7LAKE_VALIDATE: also check each parsed message against its HL7 version (hl7apy) and send
    # the findings to the catalog. Off by default: ~50 ms of CPU per message (bench/bench_validation.py).
    validate_messages: bool = Field(default=False, validation_alias="HL7LAKE_VALIDATE")


def build_handler(settings: WorkerSettings, staging: StagingSettings | None = None) -> Batched:
    staging = staging or StagingSettings()
    sns = aws.worker_client("sns", settings.region)
    payloads = S3PayloadStore(aws.worker_client("s3", settings.region), settings.payload_bucket_name)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    publisher = SnsPublisher(sns, topic_arn, payloads, settings.max_inline_bytes)
    return Batched(Er7StagingHandler(publisher, payloads, validate=staging.validate_messages).handle_batch)


def run(settings: WorkerSettings | None = None, stop: threading.Event | None = None) -> None:
    run_worker(NAME, build_handler, settings, stop)
