"""docker-compose.yml, checked without a Docker engine: valid, pinned, healthy, same commands as `make up`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ONE_SHOT = {"bootstrap"}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def image_default(image: str) -> str:
    """`${LOCALSTACK_IMAGE:-localstack/localstack:4.14.0}` → the default the file pins."""
    match = re.fullmatch(r"\$\{\w+:-([^}]+)\}", image)
    return match.group(1) if match else image


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.moto.yml"]])
def test_compose_config_is_valid(files: list[str]) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's package when it can)")
    args = [tool] + [a for f in files for a in ("-f", f)] + ["config", "-q"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_image_is_pinned() -> None:
    checked = 0
    for override in ("docker-compose.yml", "docker-compose.moto.yml"):
        for name, service in yaml.safe_load((ROOT / override).read_text())["services"].items():
            if "image" in service:
                image = image_default(service["image"])
                assert ":" in image and not image.endswith(":latest"), (override, name, image)
                checked += 1
    assert checked >= 2  # the loop checked images (localstack and cognito at least), not nothing
    assert image_default(compose()["services"]["localstack"]["image"]) == "localstack/localstack:4.14.0"
    base = (ROOT / "Dockerfile").read_text().split("FROM ", 1)[1].split()[0]
    assert re.search(r":\d+\.\d+\.\d+", base), base


def test_every_long_running_service_has_a_health_check_and_waits_for_its_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert "healthcheck" in service and service["healthcheck"]["test"], name
        for dependency, rule in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule["condition"] == expected, (name, dependency)
    assert {"localstack", "cognito", "bootstrap", "gateway", "mllp", "er7-staging", "lake-writer"} <= set(
        services
    )


def test_services_run_the_commands_make_up_runs() -> None:
    from hl7lake.up import WORKERS

    services = compose()["services"]
    assert services["gateway"]["command"] == ["hl7lake", "gateway"]
    assert WORKERS  # the loop below must check something
    for worker in WORKERS:
        assert services[worker]["command"] == ["hl7lake", "worker", worker]
        assert "container_name" not in services[worker] and "ports" not in services[worker]  # scalable
    assert services["bootstrap"]["command"] == ["hl7lake", "bootstrap"]
    assert services["mllp"]["command"] == ["hl7lake", "mllp"]


def test_dockerfile_runs_as_non_root_without_dev_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "[dev]" not in dockerfile and "[emulator]" not in dockerfile
    assert dockerfile.index("COPY pyproject.toml") < dockerfile.index("COPY hub")  # dependency layer first


def test_templates_pass_cfn_lint() -> None:
    import sys

    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), *sorted(str(p) for p in (ROOT / "stacks").glob("*.yaml"))],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
