"""`hl7lake hub`: the hub's live wiring (topic, subscriptions, filters, queues, DLQs) and `--check`."""

from __future__ import annotations

import json
import sys
from typing import Any

from hl7lake.text_table import render_table
from hub import aws
from hub.config import HubSettings
from hub.live_topology import LiveTopology, read_topology
from hub.wiring_check import CheckReport, check


def read_live_topology(settings: HubSettings) -> LiveTopology:
    sns = aws.client("sns", settings.region)
    topic_arn = settings.topic_arn or aws.resolve_topic_arn(sns, settings.topic_name)
    return read_topology(sns, aws.client("sqs", settings.region), topic_arn)


def topology_text(topology: LiveTopology) -> str:
    rows = [
        (
            sub.queue or sub.endpoint,
            "yes" if sub.raw_delivery else "no",
            sub.dlq,
            sub.max_receives,
            json.dumps(sub.filter_policy, separators=(",", ":"))
            if sub.filter_policy
            else "(none: everything)",
        )
        for sub in topology.subscriptions
    ]
    table = render_table(("QUEUE", "RAW", "DLQ", "MAX RECEIVES", "FILTER POLICY"), rows)
    return f"topic {topology.topic_arn}\n{table}"


def check_text(report: CheckReport) -> str:
    rows = [(r.event.value, r.format.value, ", ".join(r.receivers) or "NOBODY") for r in report.routes]
    lines = [render_table(("EVENT", "FORMAT", "RECEIVED BY"), rows)]
    if report.passed:
        lines.append("PASS: every event reaches a subscriber, and every subscriber handles what it receives")
    else:
        lines.append(f"FAIL: {len(report.problems)} problem(s)")
        lines += [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)


def run_hub(*, check_wiring: bool, as_json: bool, settings: HubSettings | None = None) -> int:
    settings = settings or HubSettings()
    topology = read_live_topology(settings)
    if not check_wiring:
        print(json.dumps(topology.to_dict(), indent=2) if as_json else topology_text(topology))
        return 0
    report = check(topology, settings.prefix)
    if as_json:
        print(json.dumps({"topic": topology.topic_arn, **report.to_dict()}, indent=2))
    else:
        print(check_text(report))
    if not report.passed:
        print(f"hl7lake hub --check: FAILED ({len(report.problems)} problem(s))", file=sys.stderr)
    return 0 if report.passed else 1


def describe_aws_error(exc: Exception) -> str:
    """One line for an AWS error or a missing resource; a KeyError (a defect) propagates."""
    if isinstance(exc, KeyError | IndexError):
        raise exc
    response: Any = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""
    return f"AWS refused the request: {code}" if code else f"cannot reach AWS: {exc}"
