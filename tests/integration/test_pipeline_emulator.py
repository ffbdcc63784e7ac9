"""The whole flow in one process on the emulator: real Cognito tokens, SNS→SQS, S3 and DynamoDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.bootstrap import build_app
from gateway.config import GatewaySettings
from hl7lake.tokens import get_token
from hub import aws
from hub.consumer import SqsConsumer
from hub.runtime import WorkerSettings
from lake import bootstrap as lake_service
from tests.conftest import corpus_message
from tests.integration.conftest import wait_for
from workers.er7_staging import bootstrap as staging_service

ER7 = {"Content-Type": "application/hl7-v2"}


@pytest.fixture
def running(stack) -> Iterator[TestClient]:
    settings, result = stack
    worker_settings = WorkerSettings()
    sqs = aws.client("sqs", settings.region)
    stop = threading.Event()
    threads = []
    for name, service in (("er7-staging", staging_service), ("lake-writer", lake_service)):
        consumer = SqsConsumer(
            sqs, result.queues[name], service.build_handler(worker_settings), wait_seconds=1, name=name
        )
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
    with TestClient(build_app(GatewaySettings())) as client:
        yield client
    stop.set()
    for thread in threads:
        thread.join(10)


def bearer(user: str, access: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {get_token(user, access=access)}"}


def test_message_lands_parsed_and_only_its_institution_sees_it(running: TestClient, corpus_dir) -> None:
    sender = bearer("sender@hospital-a.example")
    body = corpus_message("050-ADT_A01-2.5.hl7")
    accepted = running.post("/v1/messages", content=body, headers={**ER7, **sender})
    assert accepted.status_code == 202, accepted.text
    mid = accepted.json()["id"]
    item = wait_for(
        lambda: (
            (r := running.get(f"/v1/messages/{mid}", headers=sender).json()).get("status") == "parsed" and r
        )
    )
    assert item["messageType"] == "ADT^A01" and item["source"] == "hospital-a"
    assert item["raw"].startswith("s3://") and "/source=hospital-a/type=ADT_A01/" in item["raw"]
    doc = running.get(f"/v1/messages/{mid}/parsed", headers=sender).json()
    pid = next(s for s in doc["segments"] if s["id"] == "PID")
    assert pid["fields"]["5.1"] == "SURNAME"
    assert running.get(f"/v1/messages/{mid}/raw", headers=sender).content.startswith(b"MSH|")

    reader = bearer("reader@hospital-a.example", access=True)  # access token: attributes via GetUser
    assert running.get(f"/v1/messages/{mid}", headers=reader).json()["status"] == "parsed"
    assert running.post("/v1/messages", content=body, headers={**ER7, **reader}).status_code == 403
    other = bearer("sender@hospital-b.example")
    assert running.get(f"/v1/messages/{mid}", headers=other).status_code == 404
    assert running.get("/v1/messages", headers=other).json()["items"] == []
    listed = running.get("/v1/messages?status=parsed&type=ADT^A01", headers=sender).json()
    assert [i["id"] for i in listed["items"]] == [mid]
    assert running.post("/v1/messages", content=body, headers={**ER7, **sender}).status_code == 409


def test_malformed_message_is_cataloged_failed_with_reason(running: TestClient) -> None:
    sender = bearer("sender@hospital-a.example")
    bad = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|X1|P|2.5.1\rPID|1||MRN1\rO_X|1|ST|x||v\r"
    mid = running.post("/v1/messages", content=bad, headers={**ER7, **sender}).json()["id"]
    item = wait_for(
        lambda: (
            (r := running.get(f"/v1/messages/{mid}", headers=sender).json()).get("status") == "failed" and r
        )
    )
    assert item["error"]["segmentIndex"] == 3 and item["error"]["reason"]
    assert running.get(f"/v1/messages/{mid}/parsed", headers=sender).status_code == 404


def test_large_message_goes_through_the_claim_check(running: TestClient) -> None:
    sender = bearer("sender@hospital-b.example")
    obx = "".join(f"OBX|{i}|TX|NOTE||{'line of report text ' * 20}\r" for i in range(1, 1200))
    body = ("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|BIG1|P|2.5.1\rPID|1||MRN\r" + obx).encode()
    assert len(body) > 300_000
    mid = running.post("/v1/messages", content=body, headers={**ER7, **sender}).json()["id"]
    wait_for(
        lambda: running.get(f"/v1/messages/{mid}", headers=sender).json().get("status") == "parsed",
        timeout=30,
    )
    doc = running.get(f"/v1/messages/{mid}/parsed", headers=sender).json()
    assert len(doc["segments"]) == 1201
    assert running.get(f"/v1/messages/{mid}/raw", headers=sender).content == body


def test_readiness_reports_every_dependency(running: TestClient) -> None:
    ready = running.get("/readyz").json()
    assert ready["status"] == "ready"
    assert set(ready["checks"]) == {"hub", "dedup", "catalog", "lake", "identity", "backlog"}
