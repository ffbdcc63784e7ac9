"""`hl7lake up` / `make up`: the whole stack in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

Starts the embedded emulator (unless HL7LAKE_EMULATOR=external), provisions it, then runs the
gateway, the MLLP listener and one process per worker with the same commands a container would run.
Each service's output goes to the console and to `<run dir>/logs/<name>.log`.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from pydantic_settings import BaseSettings, SettingsConfigDict

from hl7lake.emulator import EMULATOR_ENV, start_emulator, stop_emulator
from hl7lake.logs import configure

log = logging.getLogger("hl7lake.up")

WORKERS = ("er7-staging", "lake-writer")
TAIL_LINES = 20
MAX_BACKOFF_SECONDS = 30.0

Clock = Callable[[], float]


class UpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HL7LAKE_", extra="ignore")

    emulator: str = "embedded"  # or "external": use AWS_ENDPOINT_URL / real AWS as configured
    emulator_host: str = "127.0.0.1"
    emulator_port: int = 4566
    host: str = "127.0.0.1"
    port: int = 8080
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_source: str = "hospital-a"
    run_dir: str = ".run"
    state_dir: str = ".run/state"
    max_receive_count: int = 5
    # A child may be restarted restart_limit times within any restart_window_seconds; one more exit
    # in that window stops the stack (a crash loop), while rare crashes never add up to a stop.
    restart_limit: int = 5
    restart_window_seconds: float = 60.0
    startup_timeout_seconds: float = 60.0


class StackFailure(RuntimeError):
    """Why the stack cannot start or keep running, worded for the operator."""


# --- ports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortClaim:
    what: str  # e.g. "gateway port"
    host: str
    port: int
    remedy: str  # the setting to change


def port_claims(settings: UpSettings) -> list[PortClaim]:
    claims = [
        PortClaim("gateway port", settings.host, settings.port, "set HL7LAKE_PORT"),
        PortClaim("MLLP port", settings.mllp_host, settings.mllp_port, "set HL7LAKE_MLLP_PORT"),
    ]
    if settings.emulator == "embedded":
        remedy = "set HL7LAKE_EMULATOR_PORT (or HL7LAKE_EMULATOR=external to use what runs there as AWS)"
        claims.insert(0, PortClaim("emulator port", settings.emulator_host, settings.emulator_port, remedy))
    return claims


def check_ports_free(claims: Iterable[PortClaim]) -> None:
    """Raises StackFailure naming every taken port, who holds it and the setting to change."""
    problems = [problem for claim in claims if (problem := _port_problem(claim)) is not None]
    if problems:
        raise StackFailure("\n".join(problems))


def _port_problem(claim: PortClaim) -> str | None:
    # A bind test, as the service will do it (SO_REUSEADDR, like uvicorn and werkzeug): a connect
    # test misses sockets that are bound but not listening, and addresses the host does not have.
    with socket.socket(socket.AF_INET6 if ":" in claim.host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((claim.host, claim.port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return f"{claim.what} {claim.port} on {claim.host}: cannot listen ({exc}); {claim.remedy}"
        else:
            return None
    holder = describe_port_holder(claim.port)
    return f"{claim.what} {claim.port} on {claim.host} is taken by {holder}: stop it or {claim.remedy}"


def describe_port_holder(port: int) -> str:
    """'pid 123 (command line)' for the process listening on a TCP port, as far as this user can see."""
    if not Path("/proc/net/tcp").exists():
        return _holder_from_lsof(port) or "another process"
    found = _socket_inode_and_uid(port)
    if found is None:
        return "another process"
    inode, uid = found
    pid = _pid_holding_socket(inode)
    if pid is None:
        return f"a process of user {_user_name(uid)} that this user cannot inspect"
    return f"pid {pid} ({_command_line(pid)})"


def _socket_inode_and_uid(port: int) -> tuple[str, int] | None:
    """The inode of the socket bound to the port (a listening one first) from /proc/net/tcp{,6}."""
    matches: list[tuple[bool, str, int]] = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, uid, inode = fields[1], fields[3], fields[7], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and inode != "0":
                matches.append((state == "0A", inode, int(uid)))  # 0A: LISTEN
    if not matches:
        return None
    _, inode, owner = max(matches, key=lambda match: match[0])
    return inode, owner


def _pid_holding_socket(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:  # another user's process, or one that just exited
            continue
    return None


def _command_line(pid: int, limit: int = 160) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "command line unknown"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _holder_from_lsof(port: int) -> str | None:
    """macOS and other systems without /proc: lsof names the pid and command."""
    lsof = shutil.which("lsof")
    if lsof is None:
        return None
    try:
        out = subprocess.run(
            [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = {line[0]: line[1:] for line in reversed(out.splitlines()) if line}
    if "p" not in fields:
        return None
    return f"pid {fields['p']} ({fields.get('c', 'command unknown')})"


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
    process: subprocess.Popen[bytes] | None = None
    tee: threading.Thread | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    restarts: deque[float] = field(default_factory=deque)  # clock times of recent restarts
    restart_due: float | None = None


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

    def start(self, name: str, command: list[str]) -> None:
        child = Child(name, command, self.log_dir / f"{name}.log")
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
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            log_file.close()
            raise
        assert process.stdout is not None
        child.process = process
        child.restart_due = None
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
        """SIGTERM to every running child (they finish in-flight work), then kill what is left."""
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


# --- readiness -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    what: str
    ready: Callable[[], bool]


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (http URL we built)
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def tcp_accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def readiness_probes(settings: UpSettings) -> list[Probe]:
    readyz = f"http://{settings.host}:{settings.port}/readyz"
    return [
        Probe(f"gateway ({readyz})", lambda: http_answers(readyz)),
        Probe(
            f"MLLP listener ({settings.mllp_host}:{settings.mllp_port})",
            lambda: tcp_accepts(settings.mllp_host, settings.mllp_port),
        ),
    ]


def wait_until_ready(
    supervisor: Supervisor, probes: Sequence[Probe], timeout: float, stop: threading.Event
) -> bool:
    """True when every probe passes; False when asked to stop first. StackFailure as soon as a child
    exits (its code and last lines), or when the timeout passes (what is still not ready)."""
    deadline = time.monotonic() + timeout
    pending = list(probes)
    while True:
        supervisor.raise_if_any_exited()
        pending = [probe for probe in pending if not probe.ready()]
        if not pending:
            return True
        if time.monotonic() > deadline:
            names = ", ".join(probe.what for probe in pending)
            raise StackFailure(f"not ready within {timeout:.0f}s: {names}; logs in {supervisor.log_dir}")
        if stop.wait(0.2):
            return False


# --- state and the emulator ----------------------------------------------------------------------


def prepare_state_dir(state_dir: Path, fresh: bool) -> None:
    """`--fresh` deletes the saved state; either way, say whether the lake restores state or starts empty."""
    if fresh and state_dir.exists():
        _refuse_to_delete_precious(state_dir)
        shutil.rmtree(state_dir)
        log.info("--fresh: deleted the saved state in %s", state_dir)
    if state_dir.is_dir() and any(state_dir.iterdir()):
        log.info("state dir %s holds a snapshot: the emulator restores it", state_dir)
    else:
        log.info("state dir %s holds no snapshot: the lake starts empty", state_dir)


def _refuse_to_delete_precious(state_dir: Path) -> None:
    resolved = state_dir.resolve()
    precious = {Path("/"), Path.home().resolve(), *Path.cwd().resolve().parents, Path.cwd().resolve()}
    if resolved in precious:
        raise StackFailure(
            f"--fresh will not delete {resolved}: point HL7LAKE_STATE_DIR at a directory of its own"
        )


def _start_embedded_emulator(settings: UpSettings, log_file: Path) -> subprocess.Popen[bytes]:
    endpoint = f"http://{settings.emulator_host}:{settings.emulator_port}"
    for key, value in EMULATOR_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        emulator = start_emulator(
            settings.emulator_host, settings.emulator_port, log_file, state_dir=Path(settings.state_dir)
        )
    except (RuntimeError, TimeoutError) as exc:
        raise StackFailure(f"emulator did not start: {exc}; its log: {log_file}") from exc
    log.info("emulator up endpoint=%s pid=%d log=%s", endpoint, emulator.pid, log_file)
    return emulator


EMULATOR_DEATH = (
    "Everything the lake stored since the emulator's last state snapshot ({state_dir}) is gone. "
    "Stopping the stack: the services must not run against a dead emulator."
)


# --- `hl7lake up` --------------------------------------------------------------------------------


def _banner(settings: UpSettings) -> str:
    url = f"http://{settings.host}:{settings.port}"
    token_env = "" if settings.emulator_port == 4566 else f"HL7LAKE_EMULATOR_PORT={settings.emulator_port} "
    if settings.emulator != "embedded":
        token_env = ""  # `hl7lake token` uses the same AWS_ENDPOINT_URL / credentials as this shell
    return f"""
hl7lake is up: gateway {url} (docs {url}/docs), AWS endpoint {os.environ.get("AWS_ENDPOINT_URL", "AWS")}
logs in {Path(settings.run_dir) / "logs"}/; state in {settings.state_dir} (`hl7lake up --fresh` starts empty)

  # 1. get a token (dev users and passwords: hl7lake/dev-users.yaml)
  TOKEN=$({token_env}.venv/bin/hl7lake token --user sender@hospital-a.example)
  # 2. send a message
  curl -s -X POST {url}/v1/messages -H "Authorization: Bearer $TOKEN" \\
       -H "Content-Type: application/hl7-v2" --data-binary @../shared/hl7-corpus/messages/050-ADT_A01-2.5.hl7
  # 3. read it back (use the "id" from step 2)
  curl -s {url}/v1/messages/<id> -H "Authorization: Bearer $TOKEN"
  curl -s {url}/v1/messages/<id>/parsed -H "Authorization: Bearer $TOKEN"

  # 4. or over MLLP (HL7's own transport, answered with an HL7 ACK; sends as {settings.mllp_source})
  .venv/bin/mllp_send --loose --port {settings.mllp_port} \\
       --file ../shared/hl7-corpus/messages/050-ADT_A01-2.5.hl7 {settings.mllp_host}

Ctrl-C stops everything.
"""


def _stop_event_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _start_services(settings: UpSettings, supervisor: Supervisor) -> None:
    from hl7lake.provision import provision

    provision(dev_users=settings.emulator == "embedded", max_receive_count=settings.max_receive_count)
    supervisor.start("gateway", hl7lake_command("gateway"))
    supervisor.start("mllp", hl7lake_command("mllp"))
    for worker in WORKERS:
        supervisor.start(worker, hl7lake_command("worker", worker))


def _stop_stack(supervisor: Supervisor | None, emulator: subprocess.Popen[bytes] | None) -> None:
    log.info("stopping")
    if supervisor is not None:
        supervisor.stop()  # services first: they finish in-flight work against a live emulator
    if emulator is not None:
        stop_emulator(emulator)  # last: it saves its state
    log.info("stopped")


def run_up(fresh: bool = False) -> int:
    configure("up")
    settings = UpSettings()
    run_dir = Path(settings.run_dir)
    stop = _stop_event_on_signals()
    emulator: subprocess.Popen[bytes] | None = None
    supervisor: Supervisor | None = None
    try:
        check_ports_free(port_claims(settings))
        if settings.emulator == "embedded":
            prepare_state_dir(Path(settings.state_dir), fresh)
            emulator = _start_embedded_emulator(settings, run_dir / "emulator.log")
        elif fresh:
            log.warning("--fresh ignored: HL7LAKE_EMULATOR=%s keeps no local state", settings.emulator)
        # Workers touch a heartbeat file per poll: `hl7lake healthcheck --worker NAME` reads it (compose).
        os.environ.setdefault("HL7LAKE_HEARTBEAT_DIR", str((run_dir / "heartbeats").resolve()))
        supervisor = Supervisor(
            dict(os.environ),
            run_dir,
            restart_limit=settings.restart_limit,
            restart_window=settings.restart_window_seconds,
        )
        if emulator is not None:
            consequence = EMULATOR_DEATH.format(state_dir=settings.state_dir)
            supervisor.watch_essential("emulator", emulator, run_dir / "emulator.log", consequence)
        _start_services(settings, supervisor)
        if not wait_until_ready(
            supervisor, readiness_probes(settings), settings.startup_timeout_seconds, stop
        ):
            return 0
        print(_banner(settings), flush=True)
        while not stop.wait(0.5):
            if not supervisor.check():
                return 1
        return 0
    except StackFailure as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:
        # A dead emulator surfaces as connection errors (e.g. while provisioning): name the cause.
        dead = supervisor.dead_essential_report() if supervisor is not None else None
        log.error("start-up failed: %s", dead or f"{exc.__class__.__name__}: {exc}")
        return 1
    finally:
        _stop_stack(supervisor, emulator)
