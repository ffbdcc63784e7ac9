"""`make test-localstack`: the integration and end-to-end suites against LocalStack 4.14.0 (+ moto's Cognito).

Needs a Docker engine (a laptop, a CI runner with Docker). Starts both containers through the
`docker` SDK on free loopback ports, runs pytest with HL7LAKE_TEST_AWS_ENDPOINT pointing at them,
and removes the containers afterwards, whatever happened.
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


def main() -> int:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        print(
            f"make test-localstack needs a Docker engine; none is reachable here ({exc.__class__.__name__}).",
            file=sys.stderr,
        )
        return 2
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
        return subprocess.call(
            [sys.executable, "-m", "pytest", "tests/integration", "tests/e2e", *sys.argv[1:]], env=test_env
        )
    finally:
        for container in containers:
            container.remove(force=True)


if __name__ == "__main__":
    raise SystemExit(main())
