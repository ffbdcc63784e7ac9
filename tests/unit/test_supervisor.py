"""`hl7lake up`'s supervisor with small fake children (python -c scripts) and a clock the test turns."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hl7lake.cli import build_parser
from hl7lake.emulator import free_port
from hl7lake.ports import PortClaim, StackFailure, check_ports_free
from hl7lake.readiness import Probe, wait_until_ready
from hl7lake.supervisor import Supervisor
from hl7lake.up import UpSettings, port_claims, prepare_state_dir
from tests.e2e.running import free_port_run

EXITS_AT_ONCE = [
    sys.executable,
    "-c",
    "import sys; print('config error: HL7LAKE_NOPE is missing'); sys.exit(7)",
]
SLEEPS = [sys.executable, "-c", "import time; time.sleep(60)"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def supervisor(tmp_path: Path, clock: FakeClock) -> Iterator[Supervisor]:
    sup = Supervisor(
        dict(os.environ), tmp_path, clock=clock, restart_limit=5, restart_window=300, console=io.BytesIO()
    )
    yield sup
    sup.stop(timeout=5)
    for essential in sup.essentials.values():
        essential.process.kill()
        essential.process.wait()


def wait_exited(sup: Supervisor, name: str, timeout: float = 15) -> None:
    process = sup.children[name].process
    assert process is not None
    process.wait(timeout)


def crash_and_restart(sup: Supervisor, clock: FakeClock, name: str, gap: float) -> bool:
    """Lets the child exit, has the supervisor notice, then `gap` seconds later restart it."""
    wait_exited(sup, name)
    if not sup.check():
        return False
    clock.now += gap
    assert sup.check()
    assert sup.children[name].restart_due is None, "restart should have happened by now"
    return True


def test_spread_out_crashes_never_stop_the_stack(supervisor: Supervisor, clock: FakeClock) -> None:
    # Eight crashes two minutes apart: never more than 5 within 5 minutes (a lifetime budget stopped at 6).
    supervisor.start("worker", EXITS_AT_ONCE)
    for _ in range(8):
        assert crash_and_restart(supervisor, clock, "worker", gap=120)


def test_a_crash_loop_within_the_window_stops_the_stack(
    supervisor: Supervisor, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor.start("worker", EXITS_AT_ONCE)
    for _ in range(5):
        assert crash_and_restart(supervisor, clock, "worker", gap=20)
    wait_exited(supervisor, "worker")
    with caplog.at_level(logging.ERROR, logger="hl7lake.up"):
        assert not supervisor.check()
    assert "worker exited with code 7 after 5 restarts within 300s" in caplog.text
    assert "config error: HL7LAKE_NOPE is missing" in caplog.text  # its last lines


def test_restart_budget_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HL7LAKE_RESTART_LIMIT", "2")
    monkeypatch.setenv("HL7LAKE_RESTART_WINDOW_SECONDS", "30")
    monkeypatch.setenv("HL7LAKE_STATE_DIR", "/tmp/lake-state")
    settings = UpSettings()
    assert (settings.restart_limit, settings.restart_window_seconds) == (2, 30)
    assert settings.state_dir == "/tmp/lake-state"


def test_restarts_back_off_without_blocking_the_watch(supervisor: Supervisor, clock: FakeClock) -> None:
    supervisor.start("a", EXITS_AT_ONCE)
    supervisor.start("b", EXITS_AT_ONCE)
    wait_exited(supervisor, "a")
    wait_exited(supervisor, "b")
    started = time.monotonic()
    assert supervisor.check()
    assert time.monotonic() - started < 0.5  # scheduled, not slept
    due = {name: child.restart_due for name, child in supervisor.children.items()}
    assert due == {"a": clock.now + 1, "b": clock.now + 1}
    old_pids = {name: child.process.pid for name, child in supervisor.children.items() if child.process}
    clock.now += 1
    assert supervisor.check()
    new_pids = {name: child.process.pid for name, child in supervisor.children.items() if child.process}
    assert all(new_pids[name] != old_pids[name] for name in ("a", "b"))


def test_backoff_doubles_and_the_restart_waits_for_its_time(supervisor: Supervisor, clock: FakeClock) -> None:
    supervisor.start("worker", EXITS_AT_ONCE)
    delays = []
    for _ in range(4):
        wait_exited(supervisor, "worker")
        assert supervisor.check()
        child = supervisor.children["worker"]
        assert child.restart_due is not None
        delays.append(child.restart_due - clock.now)
        clock.now = child.restart_due - 0.01
        assert supervisor.check()
        assert child.restart_due is not None, "restarted before its back-off ended"
        clock.now += 0.01
        assert supervisor.check()
        assert child.restart_due is None
    assert delays == [1, 2, 4, 8]


def test_output_goes_to_the_console_and_a_log_file_per_child(tmp_path: Path) -> None:
    console = io.BytesIO()
    sup = Supervisor(dict(os.environ), tmp_path, console=console)
    sup.start(
        "gateway",
        [sys.executable, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"],
    )
    wait_exited(sup, "gateway")
    sup.stop(timeout=5)
    log_text = (tmp_path / "logs" / "gateway.log").read_text()
    assert "to stdout" in log_text and "to stderr" in log_text
    assert b"to stdout" in console.getvalue() and b"to stderr" in console.getvalue()


def test_a_child_exiting_during_start_up_fails_at_once_with_its_last_lines(supervisor: Supervisor) -> None:
    supervisor.start("mllp", SLEEPS)
    supervisor.start("gateway", EXITS_AT_ONCE)
    never = Probe("gateway (http://127.0.0.1:1/readyz)", lambda: False)
    started = time.monotonic()
    with pytest.raises(StackFailure) as failure:
        wait_until_ready(supervisor, [never], timeout=60, stop=threading.Event())
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "gateway exited with code 7 during start-up" in message
    assert "config error: HL7LAKE_NOPE is missing" in message
    assert str(supervisor.log_dir / "gateway.log") in message
    assert elapsed < 10, f"took {elapsed:.1f}s"


def test_start_up_timeout_names_what_is_not_ready(supervisor: Supervisor) -> None:
    supervisor.start("mllp", SLEEPS)
    with pytest.raises(StackFailure, match=r"not ready within 0s: MLLP listener"):
        wait_until_ready(
            supervisor, [Probe("MLLP listener", lambda: False)], timeout=0.3, stop=threading.Event()
        )


def test_a_taken_port_names_the_process_holding_it_and_the_setting() -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(StackFailure) as failure:
            check_ports_free([PortClaim("gateway port", "127.0.0.1", port, "set HL7LAKE_PORT")])
    message = str(failure.value)
    assert f"gateway port {port} on 127.0.0.1 is taken by pid {os.getpid()} (" in message
    assert "set HL7LAKE_PORT" in message


def test_every_port_is_claimed_before_anything_starts() -> None:
    settings = UpSettings(
        port=free_port(), mllp_port=free_port(), emulator_port=free_port(), metrics_base_port=free_port_run(5)
    )
    claims = port_claims(settings)
    base = settings.metrics_base_port
    assert {(c.port, c.remedy.split()[1]) for c in claims} == {
        (settings.emulator_port, "HL7LAKE_EMULATOR_PORT"),
        (settings.port, "HL7LAKE_PORT"),
        (settings.mllp_port, "HL7LAKE_MLLP_PORT"),
        *((port, "HL7LAKE_METRICS_BASE_PORT") for port in range(base, base + 5)),
    }
    check_ports_free(claims)  # all free: no error
    without = UpSettings(
        port=free_port(), mllp_port=free_port(), emulator_port=free_port(), metrics_base_port=0
    )
    assert len(port_claims(without)) == 3  # no metrics endpoints, no claims for them


def test_the_emulator_dying_stops_the_stack_loudly(
    supervisor: Supervisor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator_log = tmp_path / "emulator.log"
    emulator_log.write_text("moto: serving\n")
    emulator = subprocess.Popen(SLEEPS)
    supervisor.watch_essential(
        "emulator", emulator, emulator_log, "Its state since the last snapshot is gone."
    )
    supervisor.start("gateway", SLEEPS)
    assert supervisor.check()
    emulator.kill()
    emulator.wait(10)
    with caplog.at_level(logging.CRITICAL, logger="hl7lake.up"):
        assert not supervisor.check()
    assert "EMULATOR DIED" in caplog.text
    assert "state since the last snapshot is gone" in caplog.text
    assert "moto: serving" in caplog.text


def test_the_emulator_dying_during_start_up_fails_the_start(supervisor: Supervisor, tmp_path: Path) -> None:
    emulator = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    emulator.wait(10)
    supervisor.watch_essential("emulator", emulator, tmp_path / "emulator.log", "State gone.")
    with pytest.raises(StackFailure, match=r"EMULATOR DIED .*exit code 3"):
        wait_until_ready(supervisor, [Probe("gateway", lambda: False)], timeout=30, stop=threading.Event())


def test_fresh_deletes_the_state_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "moto-state.bin").write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="hl7lake.up"):
        prepare_state_dir(state, fresh=False)
        assert "holds a snapshot" in caplog.text
        prepare_state_dir(state, fresh=True)
    assert not state.exists()
    assert "--fresh: deleted the saved state" in caplog.text
    assert "holds no snapshot: the lake starts empty" in caplog.text


def test_fresh_refuses_to_delete_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StackFailure, match="will not delete"):
        prepare_state_dir(Path("."), fresh=True)
    assert tmp_path.exists()


def test_up_takes_fresh() -> None:
    assert build_parser().parse_args(["up", "--fresh"]).fresh is True
    assert build_parser().parse_args(["up"]).fresh is False
