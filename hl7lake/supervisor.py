"""Runs the stack's processes: each one's output to the console and its own log file, restarts with
back-off, and a stop when a crash loops or a process the stack cannot lose (the emulator) dies."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from hl7lake.ports import StackFailure

log = logging.getLogger("hl7lake.up")  # the operator reads these as `hl7lake up`'s lines, as before

TAIL_LINES = 20
MAX_BACKOFF_SECONDS = 30.0

Clock = Callable[[], float]

PR_SET_PDEATHSIG = 1  # linux/prctl.h


# --- children die with their supervisor ------------------------------------------------------------


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()  # resolved here: between fork and exec the child only makes the call


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies, even by SIGKILL
    (Linux; None elsewhere). The kernel watches the *thread* that forks: spawn from one that lives
    as long as the supervisor (its main thread)."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: nobody will send it
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


# --- logs ----------------------------------------------------------------------------------------

_console_lock = threading.Lock()


def _tee(stream: IO[bytes], log_file: IO[bytes], tail: deque[str], console: BinaryIO | None) -> None:
    """Copies a child's output, line by line, to its log file, the console and its recent-lines tail."""
    with stream, log_file:
        for line in iter(stream.readline, b""):
            log_file.write(line)
            log_file.flush()
            tail.append(line.decode(errors="replace").rstrip("\n"))
            with _console_lock:
                try:
                    out = console if console is not None else sys.stderr.buffer
                    out.write(line)
                    out.flush()
                except (OSError, ValueError):  # console closed (e.g. a pipe into `head`): keep the file
                    pass


def tail_file(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 64 * 1024))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _indented(lines: Sequence[str]) -> str:
    return "\n".join(f"    | {line}" for line in lines) if lines else "    (no output)"


# --- supervisor ----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    command: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's
    process: subprocess.Popen[bytes] | None = None
    tee: threading.Thread | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    restarts: deque[float] = field(default_factory=deque)  # clock times of recent restarts
    restart_due: float | None = None
    restart_count: int = 0  # every restart since `hl7lake up` began (`restarts` keeps a window)
    started_at: float | None = None  # wall-clock time of the last start, for `hl7lake status`


@dataclass(frozen=True)
class Essential:
    """A process the stack cannot run without and that is never restarted (the emulator)."""

    process: subprocess.Popen[bytes]
    log_file: Path
    consequence: str


def hl7lake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hl7lake", *args]


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        run_dir: Path,
        *,
        clock: Clock = time.monotonic,
        restart_limit: int = 5,
        restart_window: float = 60.0,
        console: BinaryIO | None = None,
    ) -> None:
        self.env = {**env, "PYTHONUNBUFFERED": "1"}  # lines reach the console as they are written
        self.log_dir = run_dir / "logs"
        self.clock = clock
        self.restart_limit = restart_limit
        self.restart_window = restart_window
        self.console = console
        self.children: dict[str, Child] = {}
        self.essentials: dict[str, Essential] = {}

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        child = Child(name, command, self.log_dir / f"{name}.log", dict(env or {}))
        self.children[name] = child
        self._spawn(child, mode="wb")
        assert child.process is not None
        log.info("started %s pid=%d log=%s", name, child.process.pid, child.log_file)

    def watch_essential(
        self, name: str, process: subprocess.Popen[bytes], log_file: Path, consequence: str
    ) -> None:
        self.essentials[name] = Essential(process, log_file, consequence)

    def _spawn(self, child: Child, mode: str) -> None:
        child.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file = child.log_file.open(mode)
        # Own session: Ctrl-C reaches only this supervisor, which stops children in order
        # (services first, the emulator last) instead of everything dying at once.
        try:
            process = subprocess.Popen(
                child.command,
                env={**self.env, **child.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # only a prctl call: safe beside the tee threads
            )
        except OSError:
            log_file.close()
            raise
        assert process.stdout is not None
        child.process = process
        child.restart_due = None
        child.started_at = time.time()
        child.tee = threading.Thread(
            target=_tee,
            args=(process.stdout, log_file, child.tail, self.console),
            name=f"tee-{child.name}",
            daemon=True,
        )
        child.tee.start()

    def check(self) -> bool:
        """Restarts children that died, at their scheduled time; False when the stack must stop."""
        dead = self.dead_essential_report()
        if dead is not None:
            log.critical("%s", dead)
            return False
        now = self.clock()
        for child in self.children.values():
            if child.restart_due is not None:
                if now >= child.restart_due:
                    self._restart(child)
                continue
            assert child.process is not None
            code = child.process.poll()
            if code is not None and not self._schedule_restart(child, code, now):
                return False
        return True

    def raise_if_any_exited(self) -> None:
        """During start-up every exit is fatal: StackFailure with the child's code and last lines."""
        dead = self.dead_essential_report()
        if dead is not None:
            raise StackFailure(dead)
        for child in self.children.values():
            assert child.process is not None
            code = child.process.poll()
            if code is not None:
                raise StackFailure(self._exit_report(child, code, "during start-up"))

    def _schedule_restart(self, child: Child, code: int, now: float) -> bool:
        while child.restarts and child.restarts[0] <= now - self.restart_window:
            child.restarts.popleft()
        if len(child.restarts) >= self.restart_limit:
            window = (
                f"after {len(child.restarts)} restarts within {self.restart_window:.0f}s; stopping the stack"
            )
            log.error("%s", self._exit_report(child, code, window))
            return False
        child.restarts.append(now)
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (len(child.restarts) - 1))
        child.restart_due = now + delay
        log.warning(
            "%s exited with code %s; restarting in %.0fs (restart %d of %d allowed within %.0fs; log %s)",
            child.name,
            code,
            delay,
            len(child.restarts),
            self.restart_limit,
            self.restart_window,
            child.log_file,
        )
        return True

    def _restart(self, child: Child) -> None:
        self._spawn(child, mode="ab")
        child.restart_count += 1
        assert child.process is not None
        log.info("restarted %s pid=%d", child.name, child.process.pid)

    def _exit_report(self, child: Child, code: int, when: str) -> str:
        if child.tee is not None:
            child.tee.join(timeout=2)  # the last lines may still be in the pipe
        return (
            f"{child.name} exited with code {code} {when}; last lines of {child.log_file}:\n"
            f"{_indented(list(child.tail))}"
        )

    def dead_essential_report(self) -> str | None:
        for name, essential in self.essentials.items():
            code = essential.process.poll()
            if code is not None:
                return (
                    f"{name.upper()} DIED (pid {essential.process.pid}, exit code {code}). "
                    f"{essential.consequence}\nlast lines of {essential.log_file}:\n"
                    f"{_indented(tail_file(essential.log_file))}"
                )
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every running child at once (they finish in-flight work in parallel), then wait
        for all of them against one deadline; kill what is left."""
        running = [c for c in self.children.values() if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing pid=%d", child.name, child.process.pid)
                child.process.kill()
                child.process.wait()
        for child in self.children.values():
            if child.tee is not None:
                child.tee.join(timeout=2)
