"""What the benchmarks share: `hl7lake up` on free ports in a temporary folder, its processes, and
reading their CPU time and memory from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from hl7lake.emulator import free_port

ROLES = ("emulator", "gateway", "mllp", "er7-staging", "lake-writer")


@dataclass
class Stack:
    url: str
    mllp_port: int
    emulator_port: int
    run_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def token(self, user: str = "sender@hospital-a.example") -> str:
        return subprocess.run(
            [sys.executable, "-m", "hl7lake", "token", "--user", user],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{self.emulator_port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def processes(self) -> dict[str, int]:
        return children_of(self.process.pid)


@contextmanager
def running_stack(keep_logs: bool = False, **settings: str) -> Iterator[Stack]:
    """`hl7lake up` with its own emulator, ports, state and logs; stopped (and its folder removed
    unless keep_logs) afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="hl7lake-bench-"))
    emulator_port, port, mllp_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HL7LAKE_"))}
    env.update(
        HL7LAKE_EMULATOR_PORT=str(emulator_port),
        HL7LAKE_PORT=str(port),
        HL7LAKE_MLLP_PORT=str(mllp_port),
        HL7LAKE_RUN_DIR=str(run_dir),
        HL7LAKE_STATE_DIR=str(run_dir / "state"),
        HL7LAKE_LOG_LEVEL="WARNING",
        HL7LAKE_WAIT_SECONDS="1",
        HL7LAKE_METRICS_BASE_PORT="0",  # no fixed ports beside a developer's own stack
        **settings,
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "hl7lake", "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stack = Stack(f"http://127.0.0.1:{port}", mllp_port, emulator_port, run_dir, env, up)
    ok = False
    try:
        deadline = time.monotonic() + 120
        while not _ready(stack.url):
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stack did not get ready; logs in {run_dir}")
            time.sleep(0.2)
        yield stack
        ok = True
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
        if ok and not keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def children_of(pid: int) -> dict[str, int]:
    """The processes `hl7lake up` runs, by role (gateway, mllp, er7-staging, lake-writer, emulator)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid != pid:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if any("emulator" in w or "moto" in w for w in words):
            found["emulator"] = int(entry.name)
        elif "hl7lake" in words:
            found[" ".join(words[words.index("hl7lake") + 1 :]).replace("worker ", "")] = int(entry.name)
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_by_role(pids: dict[str, int]) -> dict[str, float]:
    found = {}
    for role, pid in pids.items():
        try:
            found[role] = cpu_seconds(pid)
        except OSError:
            continue
    return found


def queue_depths(sqs: Any, prefix: str) -> dict[str, int]:
    """Messages in each queue (waiting, in flight or delayed), by queue name."""
    depths = {}
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        depths[url.rsplit("/", 1)[-1]] = sum(
            int(attributes.get(k, 0))
            for k in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
    return depths


def wait_drained(sqs: Any, prefix: str, timeout: float, interval: float = 0.25) -> float:
    """Waits until every working queue (not the DLQs) is empty; the monotonic time it was seen empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depths = queue_depths(sqs, prefix)
        if not any(v for k, v in depths.items() if not k.endswith("-dlq")):
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"queues not drained in {timeout:.0f}s: {depths}")
