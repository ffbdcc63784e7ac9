"""End to end over MLLP: `hl7lake up`, then python-hl7's `mllp_send` (a client nobody here wrote).

Valid, malformed and duplicate corpus messages get the right HL7 ACK, and every accepted message
reaches the lake parsed (read back through the HTTP API with a real token).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CORPUS, require_shared
from tests.e2e.running import RunningStack, running_stack

pytestmark = pytest.mark.e2e

MLLP_SEND = Path(sys.executable).with_name("mllp_send")
VALID = "050-ADT_A01-2.5.hl7"  # MSH-10 0123456789, MSH-16 AL
MALFORMED = "053-BAD_ADT_A01-2.6.hl7"  # MSH-2 '^&&^'
PLAIN = "046-ADT_A01-2.3.hl7"  # original acknowledgement mode, sent as the README shows (--loose)
_FRAME = re.compile(rb"\x0b(.*?)\x1c\r", re.DOTALL)


@dataclass
class Stack:
    running: RunningStack
    tmp: Path

    @property
    def url(self) -> str:
        return self.running.url

    def headers(self) -> dict[str, str]:
        return self.running.token("sender@hospital-a.example")

    def mllp_send(self, body: bytes, *, loose: bool = False) -> list[bytes]:
        """Runs mllp_send on a file holding exactly this message; returns the ACKs it printed."""
        path = self.tmp / f"{uuid.uuid4().hex}.hl7"
        # mllp_send splits its input at 0x1C: frame the message (its CR-separated segments intact)
        path.write_bytes(body if loose else b"\x0b" + body + b"\x1c\r")
        args = [str(MLLP_SEND), "--port", str(self.running.mllp_port), "--file", str(path), "127.0.0.1"]
        out = subprocess.run(
            [*args[:1], "--loose", *args[1:]] if loose else args,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return _FRAME.findall(out.stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not MLLP_SEND.exists():
        pytest.skip(f"{MLLP_SEND} not installed (the `hl7` package, a dev dependency)")
    require_shared(CORPUS, "public HL7 corpus")
    with running_stack(tmp_path_factory.mktemp("run")) as running:
        yield Stack(running, tmp_path_factory.mktemp("mllp"))


def segments(ack: bytes) -> dict[str, list[str]]:
    text = ack.decode()
    return {seg[:3]: seg.split(text[3]) for seg in text.split("\r") if seg}


def wait_parsed(
    client: httpx.Client, headers: dict[str, str], control_id: str, message_type: str, timeout: float = 90
) -> list[dict[str, Any]]:
    """Catalog entries with this control id and type once one of them is parsed."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        items = client.get("/v1/messages", params={"limit": 100}, headers=headers).json()["items"]
        found = [i for i in items if i["controlId"] == control_id and i["messageType"] == message_type]
        if any(i["status"] == "parsed" for i in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"{control_id} {message_type} not parsed in time: {found}")


def test_valid_malformed_and_duplicate_get_the_right_acks(stack: Stack) -> None:
    valid = (CORPUS / "messages" / VALID).read_bytes()
    [accepted] = stack.mllp_send(valid)
    msh, msa = segments(accepted)["MSH"], segments(accepted)["MSA"]
    assert msa[:3] == ["MSA", "AA", "0123456789"]
    assert msh[2:6] == ["REC APP", "REC FAC", "SEND APP", "SEND FAC"]  # sender and receiver swapped
    assert msh[8] == "ACK^A01^ACK" and msh[11] == "2.5" and msh[9]

    [rejected] = stack.mllp_send((CORPUS / "messages" / MALFORMED).read_bytes())
    parts = segments(rejected)
    assert parts["MSA"][1] == "AE"
    assert parts["ERR"][2] == "MSH^1^2^1"  # MSH-2, the encoding characters
    assert parts["ERR"][3].startswith("102^") and parts["ERR"][4] == "E"
    assert "encoding characters" in parts["ERR"][8]

    [duplicate] = stack.mllp_send(valid)  # a resend: acknowledged so the sender stops
    assert segments(duplicate)["MSA"][:3] == ["MSA", "AA", "0123456789"]
    assert segments(duplicate)["MSH"][9] != msh[9]  # each ACK has its own control id

    with httpx.Client(base_url=stack.url, timeout=30) as client:
        headers = stack.headers()
        found = wait_parsed(client, headers, "0123456789", "ADT^A01")
        assert len(found) == 1  # the duplicate was not stored again
        item = found[0]
        assert item["source"] == "hospital-a"
        doc = client.get(f"/v1/messages/{item['id']}/parsed", headers=headers).json()
        pid = next(s for s in doc["segments"] if s["id"] == "PID")
        assert pid["fields"]["5.1"] == "SURNAME"


def test_readme_command_with_a_raw_corpus_file(stack: Stack) -> None:
    body = (CORPUS / "messages" / PLAIN).read_bytes()
    [accepted] = stack.mllp_send(body, loose=True)
    msa = segments(accepted)["MSA"]
    assert msa[1] == "AA" and msa[2] == "Q150084616T145947960"
    assert segments(accepted)["MSH"][8] == "ACK^A01"  # v2.3: no message structure component
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        wait_parsed(client, stack.headers(), "Q150084616T145947960", "ADT^A01")


def test_sigterm_closes_the_listener(stack: Stack) -> None:
    stack.running.process.send_signal(signal.SIGTERM)
    assert stack.running.process.wait(30) == 0
    with socket.socket() as sock:
        sock.settimeout(1)
        assert sock.connect_ex(("127.0.0.1", stack.running.mllp_port)) != 0
