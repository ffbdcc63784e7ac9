"""boto3 clients with the timeouts and retry mode every service uses."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=30,
    max_pool_connections=32,
)


@cache
def _session(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


def client(service: str, region: str) -> Any:
    """A thread-safe client; the endpoint comes from AWS_ENDPOINT_URL[_<SERVICE>] when set."""
    return _session(region).client(service, config=_CONFIG)  # type: ignore[call-overload]


def resolve_topic_arn(sns: Any, name: str) -> str:
    paginator = sns.get_paginator("list_topics")
    for page in paginator.paginate():
        for topic in page["Topics"]:
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return str(topic["TopicArn"])
    raise LookupError(f"SNS topic {name!r} not found: run `hl7lake bootstrap` first")
