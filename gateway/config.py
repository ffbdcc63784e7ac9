"""Front-door settings (environment variables prefixed HL7LAKE_)."""

from __future__ import annotations

from hub.config import LOCALHOST, HubSettings

GATEWAY_PORT = 8080


class GatewaySettings(HubSettings):
    host: str = LOCALHOST
    port: int = GATEWAY_PORT
    # 32 MiB: a batch body of 10,000 lab results of ~3 KB (bigger bodies are split by the batch splitter).
    max_body_bytes: int = 32 * 1024 * 1024
    dedup_ttl_seconds: int = 7 * 24 * 3600
    # How long an unfinished ingest holds its claim before a retry of the same message takes it over
    # (same id: a takeover never doubles the message). Above the worst-case time of one ingest with
    # bounded AWS calls, so a slow request is rarely taken over.
    in_progress_seconds: int = 15
    # Dedup completions are written in batches (BatchWriteItem) collected for up to this long; 0 writes
    # each at once. A resend to another front door within this window is answered 503 in_progress.
    dedup_complete_linger_seconds: float = 0.2
    # The front door's own resources (provisioned by the composition root from these names).
    dedup_table: str | None = None
    user_pool_name: str | None = None
    # Cognito: found by name when not given.
    user_pool_id: str | None = None
    client_id: str | None = None
    client_name: str = "hl7lake-gateway"
    # OIDC issuer and JWKS; derived from the pool (and from AWS_ENDPOINT_URL for an emulator).
    oidc_issuer: str | None = None
    jwks_url: str | None = None
    clock_skew_seconds: int = 30
    # Back-pressure: refuse new messages (503 + Retry-After, MLLP AR) while any subscriber's queue holds
    # more than this many waiting events; 0 turns it off. Read every backlog_refresh_seconds.
    max_backlog: int = 1000
    backlog_refresh_seconds: float = 2.0
    # /readyz answers within this many seconds even when a dependency hangs.
    readiness_timeout_seconds: float = 1.5
    # A batch body of more messages than this (over HTTP with a JSON answer) is accepted whole and split
    # after the answer by the batch splitter; its outcomes are at /v1/batches/{id}.
    sync_batch_limit: int = 100
    # One request, one budget: a body of more messages than this is refused (413, MLLP AR) before any
    # of them is deduplicated.
    max_messages_per_request: int = 10_000
    # The share of time the batch splitter works (it rests the remainder after each chunk of 100), so
    # that a large batch does not slow the senders of single messages more than about 2×.
    batch_split_duty: float = 0.5

    @property
    def dedup_table_name(self) -> str:
        return self.dedup_table or f"{self.prefix}-dedup"

    @property
    def user_pool(self) -> str:
        return self.user_pool_name or f"{self.prefix}-users"
