"""`hl7lake up` / `make up`: the whole stack in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

Starts the embedded emulator (HL7LAKE_EMULATOR=localstack: LocalStack beside moto, =external: none),
provisions it, then runs the
gateway, the MLLP listener and one process per worker with the same commands a container would run.
Each service's output goes to the console and to `<run dir>/logs/<name>.log`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from gateway.config import GATEWAY_PORT
from gateway.mllp.config import MLLP_PORT, MLLP_SOURCE
from hl7lake.emulator import EMULATOR_ENV, start_emulator, stop_emulator
from hl7lake.localstack_host import Hybrid
from hl7lake.logs import configure
from hl7lake.ports import PortClaim, StackFailure, check_ports_free
from hl7lake.readiness import Probe, http_answers, tcp_accepts, wait_until_ready
from hl7lake.run_status import StatusWriter, status_path
from hl7lake.settings import EMULATOR_PORT, RootSettings
from hl7lake.supervisor import Supervisor, hl7lake_command
from hub.config import LOCALHOST
from hub.metrics import METRICS_PORTS

log = logging.getLogger("hl7lake.up")

WORKERS = ("er7-staging", "lake-writer", "batch-splitter", "fhir-r4")


class UpSettings(RootSettings):
    """The stack's addresses (the same variables, and defaults, the services read) and `up`'s own."""

    host: str = LOCALHOST
    port: int = GATEWAY_PORT
    mllp_host: str = LOCALHOST
    mllp_port: int = MLLP_PORT
    mllp_source: str = MLLP_SOURCE
    run_dir: str = ".run"
    state_dir: str = ".run/state"
    max_receive_count: int = 5
    # A child may be restarted restart_limit times within any restart_window_seconds; one more exit
    # in that window stops the stack (a crash loop), while rare crashes never add up to a stop.
    restart_limit: int = 5
    restart_window_seconds: float = 60.0
    startup_timeout_seconds: float = 60.0
    # Ctrl-C in dev: how long the MLLP listener waits for messages in flight before it cuts them
    # (the listener's own default, 20 s, is for production)
    mllp_stop_timeout_seconds: float = 3.0
    # /metrics of the MLLP listener and the workers on this port and the next ones (hub.metrics
    # METRICS_PORTS); 0: none (the gateway serves its own at HL7LAKE_PORT).
    metrics_base_port: int = METRICS_PORTS["mllp"]

    def metrics_ports(self) -> dict[str, int]:
        if self.metrics_base_port <= 0:
            return {}
        first = METRICS_PORTS["mllp"]
        return {name: self.metrics_base_port + port - first for name, port in METRICS_PORTS.items()}


# --- what the stack claims and waits for ---------------------------------------------------------


def port_claims(settings: UpSettings) -> list[PortClaim]:
    claims = [
        PortClaim("gateway port", settings.host, settings.port, "set HL7LAKE_PORT"),
        PortClaim("MLLP port", settings.mllp_host, settings.mllp_port, "set HL7LAKE_MLLP_PORT"),
    ]
    if settings.embedded_emulator:
        remedy = "set HL7LAKE_EMULATOR_PORT (or HL7LAKE_EMULATOR=external to use what runs there as AWS)"
        claims.insert(0, PortClaim("emulator port", settings.emulator_host, settings.emulator_port, remedy))
    elif settings.emulator == "localstack":
        remedy = "set HL7LAKE_EMULATOR_PORT (LocalStack listens there, moto on the next port)"
        claims[:0] = [
            PortClaim("LocalStack port", settings.emulator_host, settings.emulator_port, remedy),
            PortClaim("moto port", settings.emulator_host, settings.hybrid_moto_port, remedy),
        ]
    for name, port in settings.metrics_ports().items():
        remedy = "set HL7LAKE_METRICS_BASE_PORT (0: no metrics endpoints)"
        claims.append(PortClaim(f"{name} metrics port", LOCALHOST, port, remedy))
    return claims


def readiness_probes(settings: UpSettings) -> list[Probe]:
    readyz = f"http://{settings.host}:{settings.port}/readyz"
    return [
        Probe(f"gateway ({readyz})", lambda: http_answers(readyz)),
        Probe(
            f"MLLP listener ({settings.mllp_host}:{settings.mllp_port})",
            lambda: tcp_accepts(settings.mllp_host, settings.mllp_port),
        ),
    ]


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
    endpoint = settings.emulator_endpoint
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


def _start_localstack_hybrid(settings: UpSettings, run_dir: Path) -> Hybrid:
    from hl7lake.localstack_host import NoSuitablePython, start_hybrid

    try:
        hybrid = start_hybrid(run_dir, settings.emulator_port, settings.hybrid_moto_port)
    except (NoSuitablePython, RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        raise StackFailure(f"the LocalStack hybrid did not start: {exc}; logs in {run_dir}") from exc
    for key, value in EMULATOR_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.update(settings.emulator_env())
    log.info(
        "LocalStack up endpoint=%s pid=%d, moto (DynamoDB, Cognito) endpoint=%s pid=%d",
        hybrid.localstack_endpoint,
        hybrid.localstack.pid,
        hybrid.moto_endpoint,
        hybrid.moto.pid,
    )
    return hybrid


EMULATOR_DEATH = (
    "Everything the lake stored since the emulator's last state snapshot ({state_dir}) is gone. "
    "Stopping the stack: the services must not run against a dead emulator."
)


# --- `hl7lake up` --------------------------------------------------------------------------------


def _banner(settings: UpSettings) -> str:
    url = f"http://{settings.host}:{settings.port}"
    token_env = (
        "" if settings.emulator_port == EMULATOR_PORT else f"HL7LAKE_EMULATOR_PORT={settings.emulator_port} "
    )
    if settings.emulator == "localstack":
        token_env = f"HL7LAKE_EMULATOR=localstack {token_env}"  # Cognito is moto's, beside LocalStack
    elif not settings.embedded_emulator:
        token_env = ""  # `hl7lake token` uses the same AWS_ENDPOINT_URL / credentials as this shell
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "AWS")
    state = f"state in {settings.state_dir} (`hl7lake up --fresh` starts empty)"
    if settings.emulator == "localstack":
        endpoint += f" (LocalStack; DynamoDB and Cognito: moto {os.environ.get('AWS_ENDPOINT_URL_DYNAMODB')})"
        state = "no state kept between runs (LocalStack hybrid)"
    return f"""
hl7lake is up: gateway {url} (docs {url}/docs), AWS endpoint {endpoint}
logs in {Path(settings.run_dir) / "logs"}/; {state}

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
    from hl7lake.provision import emulated, provision

    # Dev users on any emulator (ours, the LocalStack hybrid, one at AWS_ENDPOINT_URL), never on AWS.
    provision(dev_users=settings.local_emulator or emulated(), max_receive_count=settings.max_receive_count)
    ports = settings.metrics_ports()

    def metrics_env(name: str) -> dict[str, str]:
        return {"HL7LAKE_METRICS_PORT": str(ports.get(name, 0)), "HL7LAKE_METRICS_HOST": LOCALHOST}

    supervisor.start("gateway", hl7lake_command("gateway"))
    supervisor.start("mllp", hl7lake_command("mllp"), metrics_env("mllp"))
    for worker in WORKERS:
        supervisor.start(worker, hl7lake_command("worker", worker), metrics_env(worker))


def _stop_stack(
    supervisor: Supervisor | None, emulator: subprocess.Popen[bytes] | None, hybrid: Hybrid | None = None
) -> None:
    log.info("stopping")
    started = time.monotonic()
    if supervisor is not None:
        supervisor.stop()  # services first: they finish in-flight work against a live emulator
    services = time.monotonic() - started
    if emulator is not None:
        stop_emulator(emulator)  # last: it saves its state
    if hybrid is not None:
        hybrid.stop()
    log.info("stopped in %.1f s (services %.1f s, emulator %.1f s)", *_since(started, services))


def _since(started: float, services: float) -> tuple[float, float, float]:
    total = time.monotonic() - started
    return total, services, total - services


def run_up(fresh: bool = False) -> int:
    configure("up")
    settings = UpSettings()
    run_dir = Path(settings.run_dir)
    stop = _stop_event_on_signals()
    emulator: subprocess.Popen[bytes] | None = None
    hybrid: Hybrid | None = None
    supervisor: Supervisor | None = None
    status = StatusWriter(status_path(run_dir))
    try:
        check_ports_free(port_claims(settings))
        if settings.embedded_emulator:
            # On stop the emulator waits for the requests in flight before it saves its state, and a
            # worker's long poll is one: short polls keep Ctrl-C quick (a few empty receives a second).
            os.environ.setdefault("HL7LAKE_WAIT_SECONDS", "1")
            prepare_state_dir(Path(settings.state_dir), fresh)
            emulator = _start_embedded_emulator(settings, run_dir / "emulator.log")
        elif settings.emulator == "localstack":
            os.environ.setdefault("HL7LAKE_WAIT_SECONDS", "1")
            hybrid = _start_localstack_hybrid(settings, run_dir)
            if fresh:
                log.warning("--fresh ignored: the LocalStack hybrid keeps no state between runs")
        elif fresh:
            log.warning("--fresh ignored: HL7LAKE_EMULATOR=%s keeps no local state", settings.emulator)
        # Workers touch a heartbeat file per poll: `hl7lake healthcheck --worker NAME` reads it (compose).
        os.environ.setdefault("HL7LAKE_HEARTBEAT_DIR", str((run_dir / "heartbeats").resolve()))
        os.environ.setdefault("HL7LAKE_MLLP_STOP_TIMEOUT_SECONDS", str(settings.mllp_stop_timeout_seconds))
        supervisor = Supervisor(
            dict(os.environ),
            run_dir,
            restart_limit=settings.restart_limit,
            restart_window=settings.restart_window_seconds,
        )
        if emulator is not None:
            consequence = EMULATOR_DEATH.format(state_dir=settings.state_dir)
            supervisor.watch_essential("emulator", emulator, run_dir / "emulator.log", consequence)
        if hybrid is not None:
            consequence = "The LocalStack hybrid keeps no state: stopping the stack."
            supervisor.watch_essential(
                "localstack", hybrid.localstack, run_dir / "localstack.log", consequence
            )
            supervisor.watch_essential("moto", hybrid.moto, run_dir / "emulator.log", consequence)
        _start_services(settings, supervisor)
        if not wait_until_ready(
            supervisor, readiness_probes(settings), settings.startup_timeout_seconds, stop
        ):
            return 0
        print(_banner(settings), flush=True)
        while not stop.wait(0.5):
            if not supervisor.check():
                return 1
            status.maybe_write(supervisor)
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
        status.remove()
        _stop_stack(supervisor, emulator, hybrid)
