"""A batch body larger than HL7LAKE_SYNC_BATCH_LIMIT through the running stack: answered at once,
split by the batch-splitter worker, every message parsed, the outcomes at GET /v1/batches/{id}."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.running import running_stack

pytestmark = pytest.mark.e2e

COUNT = 150


def member(n: int) -> bytes:
    return (
        b"MSH|^~\\&|LAB|HOSP|LAKE|HOSP|20260101120000||ORU^R01|E2EBATCH%05d|P|2.5\r" % n
        + b"PID|1||%d^^^HOSP||DOE^JANE\rOBX|1|NM|GLU||%d|mg/dL\r" % (n, 80 + n % 40)
    )


def test_a_large_batch_is_split_after_the_answer(tmp_path: Path) -> None:
    body = b"".join(member(n) for n in range(COUNT))
    with running_stack(tmp_path, HL7LAKE_SYNC_BATCH_LIMIT="20") as stack:
        auth = stack.token("sender@hospital-a.example")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            started = time.monotonic()
            response = client.post(
                "/v1/messages", content=body, headers={"Content-Type": "application/hl7-v2", **auth}
            )
            answered = time.monotonic() - started
            assert response.status_code == 202, response.text
            batch = response.json()["batch"]
            assert (batch["status"], batch["messages"]) == ("processing", COUNT)
            deadline = time.monotonic() + 120
            while True:
                got = client.get(batch["location"], headers=auth)
                if got.status_code == 200 and got.json()["batch"]["status"] == "completed":
                    break
                assert time.monotonic() < deadline, got.text
                time.sleep(0.5)
            report = got.json()
            assert report["batch"]["accepted"] == COUNT and len(report["messages"]) == COUNT
            ids = [m["id"] for m in report["messages"]]
            assert len(set(ids)) == COUNT
            for message_id in ids[:: COUNT // 10]:
                deadline = time.monotonic() + 60
                while client.get(f"/v1/messages/{message_id}", headers=auth).json().get("status") != "parsed":
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            again = client.post(
                "/v1/messages", content=body, headers={"Content-Type": "application/hl7-v2", **auth}
            )
            assert again.status_code == 202
        print(
            f"{COUNT}-message batch answered in {answered:.2f}s, split in {time.monotonic() - started:.1f}s"
        )
