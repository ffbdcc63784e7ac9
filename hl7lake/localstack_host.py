"""LocalStack as a host process (no Docker), and the hybrid it forms with moto.

LocalStack (`localstack-core`, pinned with hashes in requirements/localstack.lock) runs in its own
virtual environment (.run/localstack-venv), on Python >= 3.13 (it imports `warnings.deprecated`, new in
3.13, so 3.12 fails at start despite its `Requires-Python`). It serves CloudFormation, S3, SNS and SQS;
moto (our embedded emulator) serves DynamoDB and Cognito beside it, reached through boto3's
per-service endpoints (docs/decisions/0011).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hl7lake.emulator import (
    EMULATOR_ENV,
    port_in_use,
    start_and_wait,
    start_emulator,
    stop_emulator,
)

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "localstack.lock"
MIN_PYTHON = (3, 13)
SERVICES = "cloudformation,sns,sqs,s3,sts,iam"


class NoSuitablePython(RuntimeError):
    pass


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = out.strip().split(".")
    return int(major), int(minor)


def _candidates() -> list[str]:
    names = [f"python3.{minor}" for minor in range(20, MIN_PYTHON[1] - 1, -1)] + ["python3"]
    found = [path for name in names if (path := shutil.which(name))]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        versions = [p for p in pyenv.iterdir() if re.fullmatch(r"3\.\d+\.\d+", p.name)]
        for version in sorted(versions, key=lambda p: [int(x) for x in p.name.split(".")], reverse=True):
            found.append(str(version / "bin" / "python"))
    return found


def find_python() -> str:
    """A Python >= 3.13 from PATH or pyenv; NoSuitablePython names what was looked at otherwise."""
    for python in _candidates():
        version = _version(python)
        if version is not None and version >= MIN_PYTHON:
            return python
    wanted = ".".join(map(str, MIN_PYTHON))
    raise NoSuitablePython(f"LocalStack needs Python >= {wanted}; none found on PATH or in pyenv")


# one for `make up` and `make test-localstack`: installing it takes a minute or two
VENV = ROOT / ".run" / "localstack-venv"


def ensure_venv(venv: Path = VENV) -> Path:
    """The LocalStack venv, (re)installed from the lock when the lock changed; returns its python."""
    python = venv / "bin" / "python"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    marker = venv / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == digest:
        return python
    if not python.exists():
        subprocess.run([find_python(), "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(LOCK)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    marker.write_text(digest)
    return python


def localstack_env(port: int, data_dir: Path) -> dict[str, str]:
    return {
        "OVERRIDE_IN_DOCKER": "0",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        # queue URLs on 127.0.0.1, not *.localhost.localstack.cloud (a public DNS name)
        "SQS_ENDPOINT_STRATEGY": "path",
        "FILESYSTEM_ROOT": str(data_dir),
        "SERVICES": SERVICES,
    }


def start_localstack(python: Path, port: int, data_dir: Path, log_file: Path) -> subprocess.Popen[bytes]:
    if port_in_use("127.0.0.1", port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is taken")
    data_dir.mkdir(parents=True, exist_ok=True)
    return start_and_wait(
        [str(python), "-m", "localstack.runtime.main"],
        {**os.environ, **localstack_env(port, data_dir)},
        log_file,
        health_url=f"http://127.0.0.1:{port}/_localstack/health",
        what="LocalStack",
        timeout=120,
    )


@dataclass
class Hybrid:
    """LocalStack for CloudFormation/S3/SNS/SQS, moto for DynamoDB and Cognito."""

    localstack: subprocess.Popen[bytes]
    moto: subprocess.Popen[bytes]
    localstack_endpoint: str
    moto_endpoint: str

    def aws_env(self) -> dict[str, str]:
        """boto3's variables that point each service at the emulator serving it."""
        return {
            **EMULATOR_ENV,
            "AWS_ENDPOINT_URL": self.localstack_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto_endpoint,
            "AWS_ENDPOINT_URL_COGNITO_IDP": self.moto_endpoint,
        }

    def stop(self) -> None:
        stop_emulator(self.moto)
        stop_emulator(self.localstack)


def start_hybrid(
    run_dir: Path, localstack_port: int, moto_port: int, moto_state_dir: Path | None = None
) -> Hybrid:
    python = ensure_venv()
    localstack = start_localstack(
        python, localstack_port, run_dir / "localstack-data", run_dir / "localstack.log"
    )
    try:
        moto = start_emulator("127.0.0.1", moto_port, run_dir / "emulator.log", state_dir=moto_state_dir)
    except BaseException:
        stop_emulator(localstack)
        raise
    return Hybrid(localstack, moto, f"http://127.0.0.1:{localstack_port}", f"http://127.0.0.1:{moto_port}")
