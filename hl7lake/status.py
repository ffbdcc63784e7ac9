"""`hl7lake status`: services, subscriptions and the last minute on one screen; non-zero exit when a
DLQ holds messages or a queue's oldest message is older than ``--max-age`` (a CI gate).

Services come from `hl7lake up`'s status file and the workers' heartbeat files; queues from SQS
(ages from CloudWatch, on AWS only); throughput from the catalog (a scan filtered on receivedAt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hl7lake.run_status import read_status, status_path
from hl7lake.text_table import render_table
from hub.queue_health import QueueHealth

THROUGHPUT_WINDOW_SECONDS = 60
# The catalog scan stops after this many items read: a large table is reported as "at least".
MAX_SCANNED_ITEMS = 50_000
NO_AGE_NOTE = "oldest age unknown: the emulator's CloudWatch has no SQS metrics (on AWS it is shown)"


@dataclass
class Throughput:
    received: int = 0
    parsed: int = 0
    failed: int = 0
    complete: bool = True  # False: the scan stopped early, the counts are lower bounds

    def to_dict(self) -> dict[str, Any]:
        return {
            "windowSeconds": THROUGHPUT_WINDOW_SECONDS,
            "from": "catalog",
            "received": self.received,
            "parsed": self.parsed,
            "failed": self.failed,
            "complete": self.complete,
        }


def recent_throughput(ddb: Any, table: str, now: datetime | None = None) -> Throughput:
    """Messages received in the last minute, by their status now (batch bodies' own items excluded)."""
    since = (now or datetime.now(UTC)) - timedelta(seconds=THROUGHPUT_WINDOW_SECONDS)
    since_text = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    counts = Throughput()
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#r >= :since AND (attribute_not_exists(#k) OR #k <> :batch)",
        "ProjectionExpression": "#s",
        "ExpressionAttributeNames": {"#r": "receivedAt", "#k": "kind", "#s": "status"},
        "ExpressionAttributeValues": {":since": {"S": since_text}, ":batch": {"S": "batch"}},
    }
    scanned = 0
    while True:
        page = ddb.scan(**kwargs)
        scanned += int(page.get("ScannedCount", 0))
        for item in page.get("Items", []):
            counts.received += 1
            status = item.get("status", {}).get("S")
            if status == "parsed":
                counts.parsed += 1
            elif status == "failed":
                counts.failed += 1
        start = page.get("LastEvaluatedKey")
        if not start:
            return counts
        if scanned >= MAX_SCANNED_ITEMS:
            counts.complete = False
            return counts
        kwargs["ExclusiveStartKey"] = start


@dataclass
class StatusReport:
    services: dict[str, dict[str, Any]] | None  # None: no `hl7lake up` runs
    queues: list[QueueHealth]
    throughput: Throughput | None
    ages_known: bool
    max_age: float
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "services": self.services,
            "queues": [q.to_dict() for q in self.queues],
            "agesKnown": self.ages_known,
            "throughput": self.throughput.to_dict() if self.throughput else None,
            "maxAgeSeconds": self.max_age,
        }


def gate_problems(queues: list[QueueHealth], max_age: float) -> list[str]:
    problems = []
    for queue in queues:
        if queue.dlq_depth:
            problems.append(f"{queue.queue}: {queue.dlq_depth} message(s) in its DLQ")
        if queue.oldest_age_seconds is not None and queue.oldest_age_seconds > max_age:
            problems.append(
                f"{queue.queue}: oldest message {queue.oldest_age_seconds:.0f}s old (limit {max_age:.0f}s)"
            )
    return problems


def services_view(
    run_dir: Path, heartbeat_dir: Path | None, now: float | None = None
) -> dict[str, Any] | None:
    """The supervisor's snapshot with each worker's last heartbeat (seconds ago) added."""
    status = read_status(status_path(run_dir), now=now)
    if status is None:
        return None
    now = time.time() if now is None else now
    services: dict[str, dict[str, Any]] = dict(status.get("services") or {})
    for name, service in services.items():
        service["heartbeatAgeSeconds"] = _heartbeat_age(heartbeat_dir, name, now)
    return services


def _heartbeat_age(heartbeat_dir: Path | None, name: str, now: float) -> float | None:
    if heartbeat_dir is None:
        return None
    try:
        return round(now - (heartbeat_dir / f"{name}.heartbeat").stat().st_mtime, 1)
    except OSError:
        return None


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s ago"


def status_text(report: StatusReport, now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = ["SERVICES"]
    if report.services is None:
        lines.append("  not started by hl7lake up")
    else:
        rows = [
            (
                name,
                "up" if s.get("up") else "DOWN",
                s.get("pid"),
                s.get("restarts"),
                _ago(now - s["lastStart"]) if s.get("lastStart") else "-",
                _ago(s.get("heartbeatAgeSeconds")),
            )
            for name, s in sorted(report.services.items())
        ]
        lines.append(render_table(("NAME", "STATE", "PID", "RESTARTS", "STARTED", "LAST HEARTBEAT"), rows))
    lines += ["", "SUBSCRIPTIONS"]
    queue_rows = [
        (
            q.queue,
            q.visible,
            q.in_flight,
            "unknown" if q.oldest_age_seconds is None else f"{q.oldest_age_seconds:.0f}s",
            "none" if q.dlq_depth is None else q.dlq_depth,
        )
        for q in report.queues
    ]
    lines.append(render_table(("QUEUE", "WAITING", "IN FLIGHT", "OLDEST", "DLQ"), queue_rows))
    if not report.ages_known:
        lines.append(f"  ({NO_AGE_NOTE})")
    lines += ["", f"LAST {THROUGHPUT_WINDOW_SECONDS} s (from the catalog)"]
    if report.throughput is None:
        lines.append("  unknown: the catalog could not be read")
    else:
        t = report.throughput
        bound = "" if t.complete else " (at least; the scan stopped early)"
        lines.append(f"  received {t.received}, parsed {t.parsed}, failed {t.failed}{bound}")
    lines.append("")
    if report.healthy:
        lines.append("OK")
    else:
        lines.append(f"NOT OK: {len(report.problems)} problem(s)")
        lines += [f"  - {p}" for p in report.problems]
    return "\n".join(lines)


def build_report(max_age: float) -> StatusReport:
    """Everything `hl7lake status` shows, read now (AWS errors propagate to the command)."""
    from hl7lake.hub_command import read_live_topology
    from hl7lake.up import UpSettings
    from hub import aws
    from hub.config import HubSettings
    from hub.queue_health import cloudwatch_has_sqs_metrics, read_health
    from hub.runtime import WorkerSettings

    settings, up = HubSettings(), UpSettings()
    run_dir = Path(up.run_dir)
    heartbeats = WorkerSettings().heartbeat_dir
    services = services_view(run_dir, Path(heartbeats) if heartbeats else run_dir / "heartbeats")
    ages_known = cloudwatch_has_sqs_metrics()
    cloudwatch = aws.client("cloudwatch", settings.region) if ages_known else None
    topology = read_live_topology(settings)
    queues = read_health(aws.client("sqs", settings.region), topology.subscriptions, cloudwatch)
    try:
        throughput: Throughput | None = recent_throughput(
            aws.client("dynamodb", settings.region), settings.catalog_table_name
        )
    except Exception:  # the queues are the gate; a missing catalog only blanks this line
        throughput = None
    report = StatusReport(services, queues, throughput, ages_known, max_age)
    report.problems = gate_problems(queues, max_age)
    return report
