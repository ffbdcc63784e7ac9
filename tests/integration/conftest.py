from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from gateway.config import GatewaySettings
from hl7lake.provision import ProvisionResult, provision
from hub import aws

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(moto_endpoint: str, prefix: str) -> tuple[GatewaySettings, ProvisionResult]:
    """A freshly provisioned, uniquely named set of resources on the test emulator.
    SQS's own redrive (receives without an outcome) is the safety net at 4; consumers count handler
    failures themselves."""
    settings = GatewaySettings()
    return settings, provision(settings, max_receive_count=4)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return aws.client("sqs", "us-east-1")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def drain(sqs: Any, url: str, expect: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Receives (and deletes) messages until `expect` arrived or the deadline passed."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if len(got) >= expect:
            # one more look: anything beyond `expect` is a leak the caller must see
            extra = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            got.extend(extra.get("Messages", []))
            return got
        time.sleep(0.05)
    return got
