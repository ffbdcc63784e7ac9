"""`hl7lake hub`, `hub --check` and `status` against a provisioned stack on the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hl7lake.cli import main
from hub import aws
from hub.events import Attr, Event, Format
from hub.publisher import _attributes
from hub.wiring_check import sample_envelope
from tests.integration.conftest import drain


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hub_prints_the_live_wiring_and_check_passes_then_fails_on_wrong_subscriptions(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, result = stack
    p = settings.prefix
    code, out, _ = run(capsys, "hub", "--json")
    assert code == 0
    wiring = json.loads(out)
    assert wiring["topic"] == result.topic_arn
    subs = {s["queue"]: s for s in wiring["subscriptions"]}
    assert set(subs) == {f"{p}-er7-staging", f"{p}-lake-writer", f"{p}-batch-splitter", f"{p}-fhir-r4"}
    staging = subs[f"{p}-er7-staging"]
    assert staging["filter_policy"] == {"event": ["message.received"], "format": ["er7"]}
    assert staging["raw_delivery"] is True
    assert (staging["dlq"], staging["max_receives"]) == (f"{p}-er7-staging-dlq", 4)  # read live, not 5
    code, out, _ = run(capsys, "hub")
    assert code == 0 and f"{p}-lake-writer" in out and "MAX RECEIVES" in out

    code, out, _ = run(capsys, "hub", "--check", "--json")
    assert code == 0, out
    routes = {(r["event"], r["format"]): set(r["receivers"]) for r in json.loads(out)["routes"]}
    assert routes[("message.received", "er7")] == {f"{p}-er7-staging", f"{p}-lake-writer"}
    # staging does not get it; the FHIR worker does (the sample is an ADT^A01, a type it maps)
    assert routes[("message.parsed", "json")] == {f"{p}-lake-writer", f"{p}-fhir-r4"}
    assert routes[("message.converted", "fhir")] == {f"{p}-lake-writer"}
    assert routes[("batch.received", "er7")] == {f"{p}-batch-splitter", f"{p}-lake-writer"}
    _emulator_delivers_as_the_check_predicts(settings, result, routes)

    sns, sqs = aws.client("sns", settings.region), aws.client("sqs", settings.region)
    audit_url = sqs.create_queue(QueueName=f"{p}-audit")["QueueUrl"]
    audit_arn = sqs.get_queue_attributes(QueueUrl=audit_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=result.topic_arn,
        Protocol="sqs",
        Endpoint=audit_arn,
        Attributes={"FilterPolicy": json.dumps({"event": ["message.parsed"]}), "RawMessageDelivery": "true"},
    )
    code, out, err = run(capsys, "hub", "--check")
    assert code == 1 and "FAILED" in err, err
    assert f"{p}-audit receives message.parsed (json) but no hl7lake worker reads that queue" in out

    staging_arn = next(
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=result.topic_arn)["Subscriptions"]
        if s["Endpoint"].endswith(f":{p}-er7-staging")
    )
    sns.set_subscription_attributes(
        SubscriptionArn=staging_arn,
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"event": [{"prefix": "message."}]}),
    )
    code, out, _ = run(capsys, "hub", "--check")
    assert code == 1
    assert f"{p}-er7-staging receives message.parsed (json), which worker er7-staging does not handle" in out
    assert f"{p}-er7-staging receives message.received" not in out  # what it handles is no problem


def _emulator_delivers_as_the_check_predicts(settings: Any, result: Any, routes: dict) -> None:
    """The evaluator and SNS agree: a published received event reaches exactly the predicted queues."""
    sns, sqs = aws.client("sns", settings.region), aws.client("sqs", settings.region)
    for event, format in ((Event.RECEIVED, Format.ER7), (Event.PARSED, Format.JSON)):
        envelope = sample_envelope(event, format)
        sns.publish(
            TopicArn=result.topic_arn, Message=envelope.to_json(), MessageAttributes=_attributes(envelope)
        )
        for name, url in result.queues.items():
            got = drain(sqs, url, expect=1, timeout=1.5)
            queue = f"{settings.prefix}-{name}"
            expected = queue in routes[(event.value, format.value)]
            assert len(got) == (1 if expected else 0), (event, queue)
            if got:
                assert got[0]["MessageAttributes"][Attr.EVENT.value]["StringValue"] == event.value


def test_status_exit_codes_gate_on_dead_letters(
    stack: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, result = stack
    monkeypatch.setenv("HL7LAKE_RUN_DIR", str(tmp_path))  # no `hl7lake up` status file there
    code, out, _ = run(capsys, "status")
    assert code == 0, out
    assert "not started by hl7lake up" in out and "no SQS metrics" in out and out.rstrip().endswith("OK")

    sqs = aws.client("sqs", settings.region)
    sqs.send_message(QueueUrl=result.queues["lake-writer"], MessageBody="{}")
    dlq_url = sqs.get_queue_url(QueueName=settings.dlq_name("lake-writer"))["QueueUrl"]
    sqs.send_message(QueueUrl=dlq_url, MessageBody="{}")
    code, out, _ = run(capsys, "status", "--json")
    assert code == 1
    report = json.loads(out)
    queues = {q["queue"]: q for q in report["queues"]}
    writer = queues[settings.queue_name("lake-writer")]
    assert (writer["visible"], writer["dlq_depth"], writer["oldest_age_seconds"]) == (1, 1, None)
    assert report["problems"] == [f"{settings.queue_name('lake-writer')}: 1 message(s) in its DLQ"]
    assert report["services"] is None and report["throughput"]["from"] == "catalog"
