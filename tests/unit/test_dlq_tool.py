"""`hl7lake dlq`: reasons for every dead letter, a redrive that cannot loop, one clear line on errors."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from hl7lake import cli
from hub import dlq
from tests.factories import received_envelope

DLQ, QUEUE = "https://sqs/dlq", "https://sqs/queue"


@dataclass
class _Message:
    id: str
    body: str
    attributes: dict[str, Any]
    receives: int = 0
    visible: bool = True
    handle: str = ""


@dataclass
class FakeSqs:
    """Just enough SQS: visibility (no clock: a hidden message stays hidden until shown or deleted)."""

    queues: dict[str, list[_Message]] = field(default_factory=lambda: {DLQ: [], QUEUE: []})
    on_send: Any = None
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def put(self, url: str, body: str, attributes: dict[str, Any] | None = None, receives: int = 0) -> None:
        self.queues[url].append(_Message(f"m{next(self._ids)}", body, attributes or {}, receives))

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        visible = sum(m.visible for m in self.queues[QueueUrl])
        return {"Attributes": {"ApproximateNumberOfMessages": str(visible)}}

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int = 1, **kw: Any) -> dict[str, Any]:
        got = [m for m in self.queues[QueueUrl] if m.visible][:MaxNumberOfMessages]
        for m in got:
            m.receives += 1
            m.visible = kw.get("VisibilityTimeout", 30) == 0
            m.handle = f"{m.id}-{m.receives}"
        return {"Messages": [self._wire(m) for m in got]} if got else {}

    @staticmethod
    def _wire(m: _Message) -> dict[str, Any]:
        return {
            "MessageId": m.id,
            "ReceiptHandle": m.handle,
            "Body": m.body,
            "MessageAttributes": m.attributes,
            "Attributes": {"ApproximateReceiveCount": str(m.receives)},
        }

    def send_message(self, QueueUrl: str, MessageBody: str, MessageAttributes: Any = None) -> dict[str, str]:
        self.sent.append((QueueUrl, MessageBody, MessageAttributes or {}))
        self.put(QueueUrl, MessageBody, MessageAttributes)
        if self.on_send:
            self.on_send(self, QueueUrl, MessageBody)
        return {"MessageId": "x"}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.queues[QueueUrl] = [m for m in self.queues[QueueUrl] if m.handle != ReceiptHandle]

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        for m in self.queues[QueueUrl]:
            if m.handle == ReceiptHandle:
                m.visible = VisibilityTimeout == 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        return {"QueueUrl": DLQ if QueueName.endswith("-dlq") else QUEUE}


def attr(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def body(n: int) -> str:
    return received_envelope("MSH|^~\\&|A", message_id=f"ID{n}").to_json()


def consumer_dead_letters_at_once(sqs: FakeSqs, url: str, sent_body: str) -> None:
    """What the worker does with a message it can never handle, while the redrive is still running."""
    if url == QUEUE:
        sqs.queues[QUEUE] = [m for m in sqs.queues[QUEUE] if m.body != sent_body]
        sqs.put(DLQ, sent_body, {"reason": attr("RuntimeError: bad"), "failures": attr("1")})


def test_redrive_skips_bodies_that_are_not_envelopes_and_leaves_them_in_the_dlq() -> None:
    sqs = FakeSqs()
    sqs.put(DLQ, body(1), {"event": attr("message.received"), "reason": attr("x"), "failures": attr("5")})
    sqs.put(DLQ, "not json", {"reason": attr("not a hub envelope")})
    report = dlq.redrive(sqs, DLQ, QUEUE)

    assert report.redriven == 1
    assert [s["reason"] for s in report.skipped] == [
        "not a hub envelope: JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
    ]
    [(url, sent_body, attributes)] = sqs.sent
    assert url == QUEUE and sent_body == body(1)
    assert set(attributes) == {"event"}  # the consumer's bookkeeping starts over
    [left] = sqs.queues[DLQ]
    assert left.body == "not json" and left.visible  # still there, and visible again


def test_redrive_moves_each_message_once_even_when_it_comes_straight_back() -> None:
    sqs = FakeSqs(on_send=consumer_dead_letters_at_once)
    for n in range(3):
        sqs.put(DLQ, body(n))
    report = dlq.redrive(sqs, DLQ, QUEUE)

    assert report.redriven == 3
    assert len(sqs.sent) == 3  # before: each came back and was moved again, until the limit
    assert len(sqs.queues[DLQ]) == 3 and all(m.visible for m in sqs.queues[DLQ])


def test_redrive_reads_a_snapshot_and_skips_what_it_moved_in_this_run() -> None:
    sqs = FakeSqs()
    sqs.put(DLQ, body(1))
    seen: list[str] = []

    def back_before_the_run_ends(fake: FakeSqs, url: str, sent_body: str) -> None:
        if url == QUEUE and not seen:
            seen.append(sent_body)
            fake.put(DLQ, sent_body)

    sqs.on_send = back_before_the_run_ends
    sqs.put(DLQ, body(2))
    report = dlq.redrive(sqs, DLQ, QUEUE)
    assert report.redriven + len(report.skipped) == 2  # the snapshot: two messages when it started
    assert len(sqs.sent) == 2


def test_peek_shows_the_consumer_reason_or_that_sqs_moved_it() -> None:
    sqs = FakeSqs()
    sqs.put(DLQ, body(1), {"reason": attr("RuntimeError: catalog down"), "failures": attr("5")})
    sqs.put(DLQ, body(2), receives=4)  # SQS's own redrive: no reason attribute
    first, second = dlq.peek(sqs, DLQ)

    assert (first.message_id, first.failures, first.explanation()) == ("ID1", 5, "RuntimeError: catalog down")
    assert second.explanation() == "moved by SQS after 4 receives (no handler failure recorded)"
    assert all(m.visible for m in sqs.queues[DLQ])


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def fake_sqs(monkeypatch: pytest.MonkeyPatch) -> FakeSqs:
    sqs = FakeSqs()
    monkeypatch.setattr("hub.aws.client", lambda *a, **kw: sqs)
    return sqs


def test_dlq_lists_reasons(fake_sqs: FakeSqs, capsys: pytest.CaptureFixture[str]) -> None:
    fake_sqs.put(DLQ, body(1), receives=5)
    assert cli.main(["dlq", "er7-staging"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "id": "ID1",
        "event": "message.received",
        "tries": 5,
        "failures": None,
        "reason": "moved by SQS after 5 receives (no handler failure recorded)",
    }


def test_dlq_redrive_prints_redriven_and_skipped(
    fake_sqs: FakeSqs, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sqs.put(DLQ, body(1))
    fake_sqs.put(DLQ, "{}")
    assert cli.main(["dlq", "er7-staging", "--redrive"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["redriven"] == 1
    assert [s["reason"] for s in out["skipped"]] == [
        "not a hub envelope: KeyError: <7 chars>"
    ]  # value_free: no quoted text


def test_dlq_talks_to_the_embedded_emulator_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("HL7LAKE_EMULATOR", raising=False)
    endpoints: list[str | None] = []

    def client(*_: Any, **__: Any) -> FakeSqs:
        import os

        endpoints.append(os.environ.get("AWS_ENDPOINT_URL"))
        return FakeSqs()

    monkeypatch.setattr("hub.aws.client", client)
    assert cli.main(["dlq", "er7-staging"]) == 0
    assert endpoints == ["http://127.0.0.1:4566"]


def _raise(exc: Exception) -> Any:
    def client(*_: Any, **__: Any) -> Any:
        class Broken(FakeSqs):
            def get_queue_url(self, QueueName: str) -> dict[str, str]:
                raise exc

        return Broken()

    return client


def test_missing_queue_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "gone"}}
    monkeypatch.setattr("hub.aws.client", _raise(ClientError(error, "GetQueueUrl")))
    assert cli.main(["dlq", "er7-staging"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1:] == [
        "hl7lake dlq: a queue of er7-staging does not exist: run `hl7lake bootstrap`"
    ]


def test_unreachable_endpoint_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hl7lake.emulator import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert cli.main(["dlq", "er7-staging"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("hl7lake dlq:")] == [
        line for line in err.splitlines() if line.strip()
    ]
    assert "cannot reach SQS" in err
