"""End to end: what `hl7lake up` tells the operator when its start fails or its emulator dies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hl7lake.emulator import free_port, port_in_use
from tests.conftest import EXTERNAL_ENDPOINT
from tests.e2e.running import running_stack, stop

pytestmark = pytest.mark.e2e


def up_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HL7LAKE_"))}
    env.update(
        HL7LAKE_EMULATOR_PORT=str(free_port()),
        HL7LAKE_PORT=str(free_port()),
        HL7LAKE_MLLP_PORT=str(free_port()),
        HL7LAKE_RUN_DIR=str(run_dir),
        HL7LAKE_STATE_DIR=str(run_dir / "state"),
        HL7LAKE_METRICS_BASE_PORT="0",  # never the fixed ports a developer's own stack uses
        **extra,
    )
    return env


@contextmanager
def up(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hl7lake", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        stop(process)


def output_within(process: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"hl7lake up still running after {timeout:.0f}s") from None
    return out


def test_a_taken_gateway_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    env = up_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["HL7LAKE_PORT"])))
        holder.listen()
        started = time.monotonic()
        with up(env) as process:
            out = output_within(process, timeout=30)
    assert process.returncode == 1
    assert f"gateway port {env['HL7LAKE_PORT']} on 127.0.0.1 is taken by pid {os.getpid()}" in out
    assert "set HL7LAKE_PORT" in out
    assert "emulator up" not in out  # nothing started
    print(f"port-taken error after {time.monotonic() - started:.2f}s")


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="needs the embedded emulator")
def test_a_service_crashing_at_start_up_shows_its_exit_code_and_last_lines(tmp_path: Path) -> None:
    env = up_env(tmp_path, HL7LAKE_MLLP_IDLE_TIMEOUT_SECONDS="-1")  # the MLLP listener rejects it
    with up(env) as process:
        out = output_within(process, timeout=90)
    assert process.returncode == 1
    assert "mllp exited with code 2 during start-up" in out  # 2: a bad setting (hub.config.SettingsError)
    assert "HL7LAKE_MLLP_IDLE_TIMEOUT_SECONDS" in out  # from its last lines: the variable, named
    assert (tmp_path / "logs" / "mllp.log").exists()
    assert not port_in_use("127.0.0.1", int(env["HL7LAKE_PORT"])), "the gateway should be stopped"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # a thread that just ended
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # a process that just ended
        return ""


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="needs the embedded emulator")
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the emulator through /proc")
def test_a_killed_worker_comes_back_and_the_emulator_dying_stops_the_stack(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with running_stack(tmp_path) as stack:
        worker = next(pid for pid in _children(stack.process.pid) if "lake-writer" in _cmdline(pid))
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not any(
            "lake-writer" in _cmdline(pid) for pid in _children(stack.process.pid) if pid != worker
        ):
            assert time.monotonic() < deadline, "lake-writer was not restarted"
            assert stack.process.poll() is None, "the stack stopped instead of restarting lake-writer"
            time.sleep(0.2)
        children = _children(stack.process.pid)
        emulator = next(pid for pid in children if "emulator" in _cmdline(pid) or "moto" in _cmdline(pid))
        os.kill(emulator, signal.SIGKILL)
        started = time.monotonic()
        code = stack.process.wait(60)
        stopped_after = time.monotonic() - started
    out = capfd.readouterr()
    text = out.out + out.err
    assert code == 1
    assert "EMULATOR DIED" in text
    assert "since the emulator's last state snapshot" in text
    assert not port_in_use("127.0.0.1", int(stack.url.rsplit(":", 1)[1])), "the gateway should be stopped"
    assert not any(Path(f"/proc/{pid}").exists() for pid in children), "every service should be stopped"
    print(f"stack stopped {stopped_after:.2f}s after the emulator was killed")
