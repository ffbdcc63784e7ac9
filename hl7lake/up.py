"""`hl7lake up` / `make up`: the whole stack in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

Starts the embedded emulator (unless HL7LAKE_EMULATOR=external), provisions it, then runs the
gateway, the MLLP listener and one process per worker with the same commands a container would run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from hl7lake.emulator import EMULATOR_ENV, port_in_use, start_emulator, wait_http
from hl7lake.logs import configure

log = logging.getLogger("hl7lake.up")

WORKERS = ("er7-staging", "lake-writer")
MAX_RESTARTS = 5


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
    max_receive_count: int = 5


def wait_tcp(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def _banner(settings: UpSettings) -> str:
    url = f"http://{settings.host}:{settings.port}"
    token_env = "" if settings.emulator_port == 4566 else f"HL7LAKE_EMULATOR_PORT={settings.emulator_port} "
    if settings.emulator != "embedded":
        token_env = ""  # `hl7lake token` uses the same AWS_ENDPOINT_URL / credentials as this shell
    return f"""
hl7lake is up: gateway {url} (docs {url}/docs), AWS endpoint {os.environ.get("AWS_ENDPOINT_URL", "AWS")}

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


class Supervisor:
    def __init__(self, env: dict[str, str], run_dir: Path) -> None:
        self.env = env
        self.run_dir = run_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, args: list[str]) -> None:
        self.commands[name] = [sys.executable, "-m", "hl7lake", *args]
        self.children[name] = self._spawn(name)
        log.info("started %s pid=%d", name, self.children[name].pid)

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        # Own session: Ctrl-C reaches only this supervisor, which stops children in order
        # (services first, the emulator last) instead of everything dying at once.
        return subprocess.Popen(self.commands[name], env=self.env, start_new_session=True)

    def check(self) -> bool:
        """Restarts a child that died (a few times); False when one keeps dying."""
        for name, process in list(self.children.items()):
            code = process.poll()
            if code is None:
                continue
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if self.restarts[name] > MAX_RESTARTS:
                log.error("%s keeps exiting (last code %s); stopping", name, code)
                return False
            log.warning(
                "%s exited with code %s; restarting (%d/%d)", name, code, self.restarts[name], MAX_RESTARTS
            )
            time.sleep(min(5, self.restarts[name]))
            self.children[name] = self._spawn(name)
        return True

    def stop(self, timeout: float = 15.0) -> None:
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in self.children.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing pid=%d", name, process.pid)
                process.kill()
                process.wait()


def run_up() -> int:
    configure("up")
    settings = UpSettings()
    run_dir = Path(settings.run_dir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    emulator = None
    if settings.emulator == "embedded":
        endpoint = f"http://{settings.emulator_host}:{settings.emulator_port}"
        for key, value in EMULATOR_ENV.items():
            os.environ.setdefault(key, value)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            emulator = start_emulator(
                settings.emulator_host, settings.emulator_port, run_dir / "emulator.log"
            )
        except (RuntimeError, TimeoutError) as exc:
            log.error("emulator did not start: %s", exc)
            return 1
        log.info("emulator up endpoint=%s pid=%d log=%s", endpoint, emulator.pid, run_dir / "emulator.log")
    # Workers touch a heartbeat file per poll: `hl7lake healthcheck --worker NAME` reads it, as in compose.
    os.environ.setdefault("HL7LAKE_HEARTBEAT_DIR", str((run_dir / "heartbeats").resolve()))
    supervisor = Supervisor(dict(os.environ), run_dir)
    try:
        from hl7lake.provision import provision

        provision(dev_users=settings.emulator == "embedded", max_receive_count=settings.max_receive_count)
        supervisor.start("gateway", ["gateway"])
        if port_in_use(settings.mllp_host, settings.mllp_port):
            raise RuntimeError(
                f"MLLP port {settings.mllp_port} on {settings.mllp_host} is taken: stop what runs there "
                "or set HL7LAKE_MLLP_PORT"
            )
        supervisor.start("mllp", ["mllp"])
        for worker in WORKERS:
            supervisor.start(worker, ["worker", worker])
        wait_http(f"http://{settings.host}:{settings.port}/readyz", timeout=60)
        wait_tcp(settings.mllp_host, settings.mllp_port, timeout=60)
        print(_banner(settings), flush=True)
        while not stop.wait(1.0):
            if not supervisor.check():
                return 1
        return 0
    except Exception as exc:
        log.error("start-up failed: %s: %s", exc.__class__.__name__, exc)
        return 1
    finally:
        log.info("stopping")
        supervisor.stop()
        if emulator is not None:
            emulator.terminate()
            try:
                emulator.wait(10)
            except subprocess.TimeoutExpired:
                emulator.kill()
        log.info("stopped")
