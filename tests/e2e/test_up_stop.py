"""End to end: `hl7lake up` stops quickly on SIGTERM, and its children die with it on SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import EXTERNAL_ENDPOINT
from tests.e2e.running import running_stack
from tests.e2e.test_up_lifecycle import _children, _cmdline

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "mllp", "worker")


def _wait_seconds() -> dict[str, str]:
    """The workers' long poll: `make up`'s own default unless HL7LAKE_E2E_WAIT_SECONDS says otherwise
    (e.g. 5, the production default, to measure a stop that interrupts long polls)."""
    wait = os.environ.get("HL7LAKE_E2E_WAIT_SECONDS")
    return {"HL7LAKE_WAIT_SECONDS": wait} if wait else {}


def _services(up_pid: int) -> list[int]:
    return [pid for pid in _children(up_pid) if any(name in _cmdline(pid) for name in SERVICES)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="needs the embedded emulator")
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the children through /proc")
def test_sigterm_stops_the_whole_stack_and_says_how_long_it_took(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with running_stack(tmp_path, **_wait_seconds()) as stack:
        children = _children(stack.process.pid)
        assert len(_services(stack.process.pid)) >= 5
        time.sleep(1.0)  # the workers are inside a long poll now
        started = time.monotonic()
        stack.process.send_signal(signal.SIGTERM)
        code = stack.process.wait(15)  # a hang guard only: the speed is reported below
        stopped_after = time.monotonic() - started
    text = "".join(capfd.readouterr())
    print(f"hl7lake up stopped {stopped_after:.2f}s after SIGTERM")
    print("".join(line for line in text.splitlines(keepends=True) if "stop" in line))
    assert code == 0
    assert "stopped in " in text
    assert not [pid for pid in children if _alive(pid)], "every child should be stopped"


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="needs the embedded emulator")
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the children through /proc")
def test_the_services_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        services = _services(stack.process.pid)
        emulator = [pid for pid in _children(stack.process.pid) if pid not in services]
        assert len(services) >= 5 and len(emulator) == 1
        os.kill(stack.process.pid, signal.SIGKILL)
        stack.process.wait(5)
        alive = _wait_gone(services + emulator, timeout=15)
        for pid in alive:  # any survivor: by pid only
            os.kill(pid, signal.SIGKILL)
    assert not alive, f"still running after their supervisor was killed: {alive}"
    # The emulator got SIGTERM, so it saved the lake before it went.
    assert (tmp_path / "state" / "moto-state.bin").exists()
