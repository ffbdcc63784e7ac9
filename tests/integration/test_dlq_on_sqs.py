"""`hl7lake dlq` against the emulator: reasons for both ways into a DLQ, and a redrive that leaves
what can never succeed where it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hl7lake.cli import main
from hub import dlq
from tests.factories import received_envelope
from tests.integration.conftest import drain, wait_for


def attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def test_list_and_redrive_on_sqs(stack: Any, sqs: Any, capsys: pytest.CaptureFixture) -> None:
    settings, result = stack
    url = result.queues["er7-staging"]
    dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name("er7-staging"))["QueueUrl"]
    good = received_envelope("MSH|^~\\&|A", message_id="ID1")
    attributes = {k: attr(v) for k, v in good.attributes().items()}
    failed = {**attributes, "reason": attr("RuntimeError: catalog down"), "failures": attr("5")}
    sqs.send_message(QueueUrl=dlq_url, MessageBody=good.to_json(), MessageAttributes=failed)
    sqs.send_message(QueueUrl=dlq_url, MessageBody="not json", MessageAttributes={"reason": attr("bad")})
    moved = received_envelope("MSH|^~\\&|A", message_id="ID2")
    sqs.send_message(QueueUrl=url, MessageBody=moved.to_json())
    for _ in range(4):  # the stack's maxReceiveCount: receives without an outcome
        wait_for(lambda: sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages"))
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)  # the receive that makes SQS move it

    letters = {letter.message_id: letter for letter in wait_for(lambda: _three(sqs, dlq_url))}
    assert letters["ID1"].explanation() == "RuntimeError: catalog down" and letters["ID1"].failures == 5
    assert letters["ID2"].reason is None
    assert letters["ID2"].explanation().startswith("moved by SQS after ")

    assert main(["dlq", "er7-staging", "--redrive"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["redriven"] == 2 and len(out["skipped"]) == 1
    assert out["skipped"][0]["reason"].startswith("not a hub envelope")
    back = drain(sqs, url, expect=2, timeout=5)
    assert sorted(json.loads(m["Body"])["id"] for m in back) == ["ID1", "ID2"]
    assert all({"reason", "failures"}.isdisjoint(m.get("MessageAttributes", {})) for m in back)
    [left] = drain(sqs, dlq_url, expect=1, timeout=5)
    assert left["Body"] == "not json"


def _three(sqs: Any, dlq_url: str) -> list[dlq.DeadLetter] | None:
    letters = dlq.peek(sqs, dlq_url)
    return letters if len(letters) == 3 else None


def test_missing_queue_is_one_line(moto_endpoint: str, prefix: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["dlq", "er7-staging"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "does not exist: run `hl7lake bootstrap`" in captured.err
