"""Each compose service's command and environment, run here as a local process against the test emulator.

The compose environment is translated to this machine: container host names become the emulator's
127.0.0.1 endpoint, 0.0.0.0 becomes 127.0.0.1, ports become free ones. Each long-running service must
pass its own compose health check; the one-shot bootstrap must exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def local(argv: list[str]) -> list[str]:
    assert argv[0] == "hl7lake"
    return [sys.executable, "-m", "hl7lake", *argv[1:]]


def translate(env: dict[str, str], endpoint: str, port: int, heartbeat: Path, prefix: str) -> dict[str, str]:
    out = {}
    for key, value in env.items():
        cognito = os.environ.get("AWS_ENDPOINT_URL_COGNITO_IDP", endpoint)
        value = str(value).replace("http://localstack:4566", endpoint).replace("http://cognito:5000", cognito)
        out[key] = value.replace("0.0.0.0", "127.0.0.1")
    out.update(HL7LAKE_PORT=str(port), HL7LAKE_PREFIX=prefix, HL7LAKE_WAIT_SECONDS="1")
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):  # the host-mode LocalStack hybrid: DynamoDB is moto's
        out["AWS_ENDPOINT_URL_DYNAMODB"] = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
    if "HL7LAKE_HEARTBEAT_DIR" in out:
        out["HL7LAKE_HEARTBEAT_DIR"] = str(heartbeat)
    return out


def test_compose_services_run_and_become_healthy_locally(
    moto_endpoint: str, prefix: str, tmp_path: Path
) -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HL7LAKE_"))}

    def env_of(name: str, port: int) -> dict[str, str]:
        return {
            **base,
            **translate(services[name]["environment"], moto_endpoint, port, tmp_path / name, prefix),
        }

    boot = subprocess.run(
        local(services["bootstrap"]["command"]),
        env=env_of("bootstrap", 0),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert boot.returncode == 0, boot.stderr[-2000:]

    running: dict[str, tuple[subprocess.Popen[bytes], list[str], dict[str, str]]] = {}
    try:
        for name in ("gateway", "mllp", "er7-staging", "lake-writer"):
            port = free_port()
            env = env_of(name, port)
            if "HL7LAKE_MLLP_PORT" in env:
                env["HL7LAKE_MLLP_PORT"] = str(port)
            check = [
                str(a).replace(":8080/", f":{port}/").replace(":2575", f":{port}")
                for a in services[name]["healthcheck"]["test"][1:]
            ]
            process = subprocess.Popen(
                local(services[name]["command"]),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            running[name] = (process, local(check), env)
        pending = set(running)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                process, check, env = running[name]
                assert process.poll() is None, f"{name} exited with {process.returncode}"
                if subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0:
                    pending.discard(name)
            time.sleep(0.2)
        assert pending == set(), f"not healthy in time: {pending}"
    finally:
        for process, _, _ in running.values():
            process.terminate()
        for process, _, _ in running.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
