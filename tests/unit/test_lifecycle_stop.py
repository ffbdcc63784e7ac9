"""Process lifecycle: services die with a killed supervisor, stop in parallel, and a worker's stop
does not wait out its long poll (it finishes only the batch in hand)."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hl7lake.supervisor import Supervisor, die_with_parent
from hl7lake.up import _stop_stack
from hub.consumer import SqsConsumer
from hub.events import Envelope, Event, Format

DEADLINE = 10.0
LINUX = sys.platform.startswith("linux")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_until(condition: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux only")
def test_children_die_with_a_supervisor_killed_by_sigkill(tmp_path: Path) -> None:
    parent_script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from hl7lake.supervisor import Supervisor
        supervisor = Supervisor({{}}, Path({str(tmp_path)!r}), console=open("/dev/null", "wb"))
        supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        print(supervisor.children["sleeper"].process.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(DEADLINE)
        _wait_until(lambda: not _alive(child), "the child outlived its supervisor")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_die_with_parent_is_only_offered_where_it_works() -> None:
    assert (die_with_parent() is not None) == LINUX


SLOW_STOP = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.0), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n",
]


def test_children_stop_in_parallel(tmp_path: Path) -> None:
    supervisor = Supervisor(dict(os.environ), tmp_path, console=io.BytesIO())  # type: ignore[arg-type]
    for name in ("a", "b", "c", "d"):
        supervisor.start(name, SLOW_STOP)
    _wait_until(
        lambda: all("ready" in "".join(c.tail) for c in supervisor.children.values()), "children ready"
    )
    started = time.monotonic()
    supervisor.stop()
    elapsed = time.monotonic() - started
    print(f"4 children taking 1 s each stopped in {elapsed:.2f}s")
    assert elapsed < 3.0  # one after the other would take 4 s
    assert all(c.process is not None and c.process.returncode == 0 for c in supervisor.children.values())


def test_the_stop_says_how_long_it_took(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hl7lake.up")
    _stop_stack(None, None)
    assert any(r.getMessage().startswith("stopped in ") for r in caplog.records)


ENVELOPE = Envelope(
    event=Event.RECEIVED,
    id="01TEST",
    source="hospital-a",
    received_at="2026-01-01T00:00:00Z",
    message_type="ADT^A01",
    control_id="C1",
    format=Format.ER7,
).to_json()


class BlockingSqs:
    """receive_message: the first call answers at once (the batch in hand), later ones block like a
    long poll until ``release`` (then answer with one message)."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.deleted: list[str] = []
        self.made_visible: list[str] = []

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            return {"Messages": [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": ENVELOPE}]}
        self.release.wait(DEADLINE)
        return {"Messages": [{"MessageId": "m2", "ReceiptHandle": "r2", "Body": ENVELOPE}]}

    def delete_message_batch(self, Entries: list[dict[str, str]], **_: Any) -> dict[str, Any]:
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {}

    def change_message_visibility_batch(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.made_visible += [e["ReceiptHandle"] for e in Entries if e["VisibilityTimeout"] == 0]
        return {}


def test_a_stop_does_not_wait_out_the_long_poll_and_finishes_the_batch_in_hand() -> None:
    sqs = BlockingSqs()
    stop = threading.Event()
    handled = threading.Event()

    def handler(_: Envelope) -> None:
        handled.set()
        stop.set()  # the stop arrives while the batch is in hand: it is still finished

    consumer = SqsConsumer(sqs, "queue", handler, wait_seconds=20)
    runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    runner.start()
    assert handled.wait(DEADLINE)
    started = time.monotonic()
    runner.join(DEADLINE)
    assert not runner.is_alive()
    assert time.monotonic() - started < 1.0
    assert sqs.deleted == ["r1"]

    stop.clear()
    runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    runner.start()
    _wait_until(lambda: sqs.calls >= 2, "second poll started")
    started = time.monotonic()
    stop.set()
    runner.join(DEADLINE)
    print(f"consumer stopped {time.monotonic() - started:.2f}s into a 20 s long poll")
    assert time.monotonic() - started < 1.0
    sqs.release.set()  # the abandoned poll returns a message after all: visible again at once
    _wait_until(lambda: sqs.made_visible == ["r2"], "the abandoned poll's message was released")
    assert sqs.deleted == ["r1"]
