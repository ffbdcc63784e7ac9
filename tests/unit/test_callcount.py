"""The benchmark's AWS call counter: off by default, counts by service and operation when asked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
from moto import mock_aws

from hub import callcount
from hub.callcount import CallCounter


def test_counts_calls_by_service_and_operation(tmp_path: Path) -> None:
    counter = CallCounter(tmp_path)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.events.register("before-call", counter.count)
        sqs = session.client("sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.send_message(QueueUrl=url, MessageBody="y")
    counter.flush()
    counts = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
    assert counts == {"sqs.CreateQueue": 1, "sqs.SendMessage": 2}


def test_off_unless_the_environment_asks(monkeypatch) -> None:
    monkeypatch.delenv(callcount.ENV, raising=False)
    assert callcount.counter_from_env() is None
