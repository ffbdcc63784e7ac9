"""A stop and start of `hl7lake up` keeps the lake: every acknowledged message is readable afterwards
(also those still queued when the stack stopped), the dedup records still answer 409, and a token
issued before the restart still works."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXTERNAL_ENDPOINT, corpus_message
from tests.e2e.running import running_stack

pytestmark = pytest.mark.e2e

ER7 = {"Content-Type": "application/hl7-v2"}
COUNT = 30


def numbered(body: bytes, n: int) -> bytes:
    first, sep, rest = body.partition(b"\r")
    fields = first.split(b"|")
    fields[9] = b"RESTART%04d" % n
    return b"|".join(fields) + sep + rest


def statuses(client: httpx.Client, ids: list[str], auth: dict[str, str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for message_id in ids:
        response = client.get(f"/v1/messages/{message_id}", headers=auth)
        found[message_id] = response.json().get("status") if response.status_code == 200 else None
    return found


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="state is kept by the embedded emulator")
def test_stop_and_start_keep_every_acknowledged_message(tmp_path: Path, corpus_dir: Path) -> None:
    base = corpus_message("050-ADT_A01-2.5.hl7").replace(b"\n", b"\r").replace(b"\r\r", b"\r")
    bodies = [numbered(base, n) for n in range(COUNT)]
    prefix = f"rs{uuid.uuid4().hex[:8]}"
    with running_stack(tmp_path, prefix=prefix) as stack:
        auth = stack.token("sender@hospital-a.example")
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            ids = []
            for body in bodies:
                response = client.post("/v1/messages", content=body, headers={**ER7, **auth})
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        # Stop at once: some of these are still in the hub's queues, not yet in the lake.
    assert stack.process.returncode == 0
    assert (tmp_path / "state" / "moto-state.bin").exists()

    with running_stack(tmp_path, prefix=prefix) as again:
        started = time.monotonic()
        with httpx.Client(base_url=again.url, timeout=30) as client:
            deadline = time.monotonic() + 60
            found = statuses(client, ids, auth)  # the token from before the restart
            while set(found.values()) != {"parsed"} and time.monotonic() < deadline:
                time.sleep(0.5)
                found = statuses(client, ids, auth)
            assert set(found.values()) == {"parsed"}, found
            raw = client.get(f"/v1/messages/{ids[0]}/raw", headers=auth)
            assert raw.status_code == 200 and b"RESTART0000" in raw.content
            duplicate = client.post("/v1/messages", content=bodies[-1], headers={**ER7, **auth})
            assert duplicate.status_code == 409 and duplicate.json()["id"] == ids[-1]
        print(f"all {COUNT} readable {time.monotonic() - started:.1f}s after the restarted stack was up")
