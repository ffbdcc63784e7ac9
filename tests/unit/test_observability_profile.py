"""The compose `observability` profile: valid, scraping every service where it really serves
/metrics, and a dashboard that only queries metrics the code defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import gateway.app  # noqa: F401  (registers the HTTP metrics)
from hub.metrics import METRICS_PORTS
from hub.queue_health import QueueHealth, QueueHealthCollector

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ("prometheus", "grafana", "jaeger")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def scrape_targets() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "observability/prometheus.yml").read_text())
    return {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}


def test_the_profile_is_valid_and_optional() -> None:
    services = compose()["services"]
    for name in PROFILE:
        assert services[name]["profiles"] == ["observability"], name
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's package when it can)")
    result = subprocess.run(
        [tool, "--profile", "observability", "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_long_running_service_is_scraped_where_it_serves_metrics() -> None:
    services = compose()["services"]
    ours = {
        name: s
        for name, s in services.items()
        if s.get("command", [None])[0] == "hl7lake" and s["command"][1] != "bootstrap"
    }
    assert set(ours) == {"gateway", "mllp", "er7-staging", "lake-writer", "batch-splitter", "fhir-r4"}
    targets = scrape_targets()
    assert set(targets) == set(ours)
    for name, service in ours.items():
        env = service["environment"]
        port = env["HL7LAKE_PORT"] if name == "gateway" else env["HL7LAKE_METRICS_PORT"]
        assert targets[name] == f"{name}:{port}", name
        if name != "gateway":
            assert env["HL7LAKE_METRICS_HOST"] == "0.0.0.0", name  # reachable from Prometheus
            assert int(port) == METRICS_PORTS[name], name  # compose and the code's default agree


def test_the_dashboard_queries_only_metrics_the_code_defines() -> None:
    dashboard = json.loads((ROOT / "observability/grafana/dashboards/hl7lake.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(hl7lake_[a-z_]+)", e)}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    queues = CollectorRegistry()  # the gateway registers this collector when it runs
    health = QueueHealth("q", visible=1, in_flight=0, dlq_depth=0, oldest_age_seconds=1.0)
    queues.register(QueueHealthCollector(lambda: [health]))
    defined = {
        metric.name + suffix
        for registry in (REGISTRY, queues)
        for metric in registry.collect()
        for suffix in suffixes.get(metric.type, ("",))
    }
    assert used, "the dashboard queries nothing"
    assert used <= defined, sorted(used - defined)
