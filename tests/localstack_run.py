"""`make test-localstack`: the integration and end-to-end suites against LocalStack (+ moto's Cognito).

With a Docker engine: LocalStack 4.14.0 and moto as containers (the `docker` SDK) on free loopback
ports, removed afterwards whatever happened. Without one: host mode (hl7lake.localstack_host) —
LocalStack from PyPI in .run/localstack-venv on Python >= 3.13 for CloudFormation/S3/SNS/SQS, moto
beside it for DynamoDB and Cognito, both stopped by PID afterwards. No Python >= 3.13: says so and
exits 2 (a named skip, never a green run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from hl7lake.emulator import free_port

LOCALSTACK_IMAGE = os.environ.get("LOCALSTACK_IMAGE", "localstack/localstack:4.14.0")
COGNITO_IMAGE = "motoserver/moto:5.2.5"


def wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def run_suites(test_env: dict[str, str]) -> int:
    return subprocess.call(
        [sys.executable, "-m", "pytest", "tests/integration", "tests/e2e", *sys.argv[1:]], env=test_env
    )


def host_mode(reason: str) -> int:
    from pathlib import Path

    from hl7lake.localstack_host import NoSuitablePython, start_hybrid

    print(f"no Docker engine ({reason}): LocalStack runs as a host process", file=sys.stderr)
    run_dir = Path(".run/test-localstack")
    started = time.monotonic()
    try:
        hybrid = start_hybrid(run_dir, free_port(), free_port())
    except NoSuitablePython as exc:
        print(f"make test-localstack NOT RUN: {exc}", file=sys.stderr)
        return 2
    print(
        f"LocalStack {hybrid.localstack_endpoint} (pid {hybrid.localstack.pid}), "
        f"moto {hybrid.moto_endpoint} (pid {hybrid.moto.pid}) up in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    try:
        return run_suites(
            {
                **os.environ,
                "HL7LAKE_TEST_AWS_ENDPOINT": hybrid.localstack_endpoint,
                "HL7LAKE_TEST_COGNITO_ENDPOINT": hybrid.moto_endpoint,
                "HL7LAKE_TEST_DYNAMODB_ENDPOINT": hybrid.moto_endpoint,
            }
        )
    finally:
        hybrid.stop()


def main() -> int:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        return host_mode(exc.__class__.__name__)
    aws_port, cognito_port = free_port(), free_port()
    env = {"SERVICES": "cloudformation,sns,sqs,s3,dynamodb,sts,iam"}
    if os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        env["LOCALSTACK_AUTH_TOKEN"] = os.environ["LOCALSTACK_AUTH_TOKEN"]
    containers = []
    try:
        containers.append(
            client.containers.run(
                LOCALSTACK_IMAGE, detach=True, environment=env, ports={"4566/tcp": ("127.0.0.1", aws_port)}
            )
        )
        containers.append(
            client.containers.run(
                COGNITO_IMAGE,
                ["-H", "0.0.0.0", "-p", "5000"],
                detach=True,
                ports={"5000/tcp": ("127.0.0.1", cognito_port)},
            )
        )
        wait(f"http://127.0.0.1:{aws_port}/_localstack/health")
        wait(f"http://127.0.0.1:{cognito_port}/moto-api/")
        test_env = {
            **os.environ,
            "HL7LAKE_TEST_AWS_ENDPOINT": f"http://127.0.0.1:{aws_port}",
            "HL7LAKE_TEST_COGNITO_ENDPOINT": f"http://127.0.0.1:{cognito_port}",
        }
        return run_suites(test_env)
    finally:
        for container in containers:
            container.remove(force=True)


if __name__ == "__main__":
    raise SystemExit(main())
