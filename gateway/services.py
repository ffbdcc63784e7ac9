"""Everything the routes need, built once per process by gateway.bootstrap (or by tests with fakes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.auth import TokenVerifier
from gateway.backlog import BacklogMonitor
from gateway.config import GatewaySettings
from gateway.ingest import IngestService
from gateway.lake_reader import LakeReader
from gateway.ui.services import UiServices

ReadinessCheck = Callable[[], None]


@dataclass
class GatewayServices:
    settings: GatewaySettings
    verifier: TokenVerifier
    ingest: IngestService
    reader: LakeReader
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    backlog: BacklogMonitor | None = None
    ui: UiServices | None = None  # the /ui dashboard; without it the gateway serves the API alone
