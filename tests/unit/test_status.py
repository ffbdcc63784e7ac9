"""`hl7lake status`: the supervisor's status file, the CI gate (DLQs, old messages), throughput from the
catalog and the screen."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hl7lake.run_status import StatusWriter, read_status, snapshot, status_path, write_status
from hl7lake.status import (
    StatusReport,
    Throughput,
    gate_problems,
    recent_throughput,
    services_view,
    status_text,
)
from hl7lake.supervisor import Supervisor
from hub.queue_health import QueueHealth


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_supervisor_snapshot_names_each_child_with_pid_state_and_restarts(tmp_path: Path) -> None:
    sup = Supervisor(dict(os.environ), tmp_path, console=io.BytesIO())
    try:
        sup.start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
        sup.start("quitter", [sys.executable, "-c", "pass"])
        sup.children["quitter"].process.wait(10)  # type: ignore[union-attr]
        sup.children["sleeper"].restart_count = 2
        data = snapshot(sup, now=5.0)
    finally:
        sup.stop(timeout=5)
    assert data["supervisorPid"] == os.getpid() and data["updatedAt"] == 5.0
    sleeper, quitter = data["services"]["sleeper"], data["services"]["quitter"]
    assert sleeper["up"] is True and sleeper["restarts"] == 2 and sleeper["pid"] > 0
    assert sleeper["lastStart"] is not None
    assert quitter["up"] is False


def test_the_writer_writes_every_few_seconds_and_removes_the_file(tmp_path: Path) -> None:
    clock = Clock()
    sup = Supervisor(dict(os.environ), tmp_path, console=io.BytesIO())
    writer = StatusWriter(status_path(tmp_path), every=2, clock=clock)
    write_status(writer.path, {"another": "supervisor"})
    writer.remove()
    assert writer.path.exists()  # never written by this writer: not its file to remove
    writer.maybe_write(sup)
    first = writer.path.stat().st_mtime_ns
    writer.path.write_text("{}")
    clock.now += 1.9
    writer.maybe_write(sup)
    assert writer.path.read_text() == "{}"  # not yet
    clock.now += 0.1
    writer.maybe_write(sup)
    assert json.loads(writer.path.read_text())["supervisorPid"] == os.getpid()
    assert first
    writer.remove()
    assert not writer.path.exists()


def test_a_status_file_counts_only_while_its_supervisor_lives_and_keeps_it_fresh(tmp_path: Path) -> None:
    path = status_path(tmp_path)
    assert read_status(path) is None  # no file
    write_status(path, {"supervisorPid": os.getpid(), "updatedAt": 1000.0, "services": {}})
    assert read_status(path, now=1010.0) is not None
    assert read_status(path, now=1100.0) is None  # stale: the supervisor stopped writing
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_status(path, {"supervisorPid": dead.pid, "updatedAt": 1000.0, "services": {}})
    assert read_status(path, now=1001.0) is None  # its writer is gone


def test_services_view_adds_the_workers_heartbeat_ages(tmp_path: Path) -> None:
    beats = tmp_path / "heartbeats"
    beats.mkdir()
    (beats / "lake-writer.heartbeat").touch()
    os.utime(beats / "lake-writer.heartbeat", (990.0, 990.0))
    services = {"lake-writer": {"up": True}, "gateway": {"up": True}}
    write_status(
        status_path(tmp_path), {"supervisorPid": os.getpid(), "updatedAt": 1000.0, "services": services}
    )
    view = services_view(tmp_path, beats, now=1000.0)
    assert view is not None
    assert view["lake-writer"]["heartbeatAgeSeconds"] == 10.0
    assert view["gateway"]["heartbeatAgeSeconds"] is None


def test_the_gate_fails_on_a_dlq_holding_messages_or_a_message_older_than_max_age() -> None:
    assert gate_problems([QueueHealth("q", 9, 1, 0, 299.0), QueueHealth("r", 0, 0, None, None)], 300) == []
    problems = gate_problems([QueueHealth("q", 0, 0, 2, None), QueueHealth("r", 1, 0, 0, 301.0)], 300)
    assert problems == ["q: 2 message(s) in its DLQ", "r: oldest message 301s old (limit 300s)"]


class FakeDynamo:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        return self.pages[len(self.requests) - 1]


def test_throughput_counts_the_last_minute_of_the_catalog_by_status() -> None:
    items = [{"status": {"S": s}} for s in ("parsed", "failed", "received", "parsed")]
    ddb = FakeDynamo([{"Items": items[:2], "ScannedCount": 10, "LastEvaluatedKey": {"id": {"S": "x"}}},
                      {"Items": items[2:], "ScannedCount": 10}])  # fmt: skip
    counts = recent_throughput(ddb, "catalog", now=datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    assert (counts.received, counts.parsed, counts.failed, counts.complete) == (4, 2, 1, True)
    first = ddb.requests[0]
    assert first["ExpressionAttributeValues"][":since"] == {"S": "2026-01-01T00:00:00.000Z"}
    assert ddb.requests[1]["ExclusiveStartKey"] == {"id": {"S": "x"}}


def test_the_screen_says_when_no_hl7lake_up_runs_and_when_ages_are_unknown() -> None:
    report = StatusReport(
        None, [QueueHealth("hl7lake-lake-writer", 1, 2, 3, None)], Throughput(5, 4, 1), False, 300
    )
    report.problems = gate_problems(report.queues, 300)
    text = status_text(report)
    assert "not started by hl7lake up" in text
    assert "hl7lake-lake-writer" in text and "unknown" in text and "no SQS metrics" in text
    assert "received 5, parsed 4, failed 1" in text
    assert "NOT OK: 1 problem(s)" in text
    assert not report.healthy and report.to_dict()["healthy"] is False
    up = StatusReport(
        {"gateway": {"up": True, "pid": 7, "restarts": 1, "lastStart": 90.0}}, [], None, True, 300
    )
    text = status_text(up, now=100.0)
    assert "gateway" in text and "10s ago" in text and text.endswith("OK")
