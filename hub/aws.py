"""boto3 clients with the timeouts and retry mode every service uses.

Every call is bounded: when AWS (or the emulator) stops answering, a caller learns it within a few
seconds and answers its own client (503 + Retry-After), instead of hanging with it. Long polls get
a read timeout above their wait time.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from pydantic_settings import SettingsConfigDict

from hub import callcount
from hub.config import EnvSettings


class AwsCallSettings(EnvSettings):
    """HL7LAKE_AWS_CONNECT_TIMEOUT, HL7LAKE_AWS_READ_TIMEOUT, HL7LAKE_AWS_MAX_ATTEMPTS."""

    model_config = SettingsConfigDict(env_prefix="HL7LAKE_AWS_", extra="ignore")

    connect_timeout: float = 1.0
    read_timeout: float = 1.5
    # Attempts in all (botocore's standard mode: jittered exponential back-off between them).
    max_attempts: int = 2


@cache
def _session(region: str) -> boto3.session.Session:
    session = boto3.session.Session(region_name=region)
    counter = callcount.counter_from_env()
    if counter is not None:  # the pipeline benchmark counts calls per service and operation
        session.events.register("before-call", counter.count)
    return session


@cache
def _call_settings() -> AwsCallSettings:
    return AwsCallSettings()


def client_config(*, read_timeout: float | None = None, max_attempts: int | None = None) -> Config:
    settings = _call_settings()
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts or settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=read_timeout or settings.read_timeout,
        max_pool_connections=32,
        # botocore ≥1.36 computes a CRC32 of every S3 body and sends it aws-chunked by default: CPU
        # on both ends for an integrity check TLS already gives (docs/decisions/0010).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def client(
    service: str, region: str, *, read_timeout: float | None = None, max_attempts: int | None = None
) -> Any:
    """A thread-safe client; the endpoint comes from AWS_ENDPOINT_URL[_<SERVICE>] when set."""
    config = client_config(read_timeout=read_timeout, max_attempts=max_attempts)
    if service == "cognito-idp" and os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP"):
        # Our documented variable (compose, README); boto3 itself only reads the long
        # AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER, so without this Cognito calls went to AWS_ENDPOINT_URL.
        endpoint = os.environ["AWS_ENDPOINT_URL_COGNITO_IDP"]
        return _session(region).client(service, config=config, endpoint_url=endpoint)  # type: ignore[call-overload]
    return _session(region).client(service, config=config)  # type: ignore[call-overload]


def worker_client(service: str, region: str) -> Any:
    """For workers: nobody waits on them, so calls may take longer and retry more before failing."""
    return client(service, region, read_timeout=10, max_attempts=3)


def resolve_topic_arn(sns: Any, name: str) -> str:
    paginator = sns.get_paginator("list_topics")
    for page in paginator.paginate():
        for topic in page["Topics"]:
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return str(topic["TopicArn"])
    raise LookupError(f"SNS topic {name!r} not found: run `hl7lake bootstrap` first")
