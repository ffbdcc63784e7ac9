"""Settings shared by every service: where AWS (or the emulator) is and what the resources are called.

Every value comes from the environment (prefix ``HL7LAKE_``), so the same code runs against the
embedded emulator, LocalStack or real AWS. The AWS endpoint itself is boto3's standard
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_<SERVICE>``) and is read by boto3, not here.

Each service has one settings class built on ``EnvSettings``: a value the environment gets wrong
stops the process at start-up with a ``SettingsError`` naming the variable and what it accepts.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every listener binds to loopback unless told otherwise.
LOCALHOST = "127.0.0.1"


class SettingsError(ValueError):
    """An environment variable holds a value its setting refuses."""


def env_name(settings: type[BaseSettings], field: str) -> str:
    """The environment variable a field (or its alias: errors name a field by it) is read from."""
    aliases = {info.validation_alias for info in settings.model_fields.values()}
    if field in aliases:
        return field
    info = settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def explain(settings: type[BaseSettings], error: ValidationError) -> str:
    """One line per refused value: the variable, then what it accepts."""
    lines = []
    for problem in error.errors():
        loc = problem["loc"]
        if not loc:
            lines.append(f"{settings.__name__}: {problem['msg']}")
            continue
        name = env_name(settings, str(loc[0]))
        where = "".join(f"[{part}]" for part in loc[1:])
        if problem["type"] == "literal_error":
            allowed = problem.get("ctx", {}).get("expected", "")
            lines.append(f"{name}{where}={problem['input']!r} is not allowed: use {allowed}")
        else:
            lines.append(f"{name}{where}: {problem['msg']}")
    return "; ".join(lines)


class EnvSettings(BaseSettings):
    """Base of every service's settings: a bad value fails with a message naming its variable."""

    model_config = SettingsConfigDict(env_prefix="HL7LAKE_", extra="ignore")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(explain(type(self), error)) from error


class HubSettings(EnvSettings):
    # AWS_DEFAULT_REGION is boto3's own variable: read here only as the default for HL7LAKE_REGION.
    region: str = Field(default_factory=lambda: os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    prefix: str = "hl7lake"
    topic_arn: str | None = None
    payload_bucket: str | None = None
    lake_bucket: str | None = None
    catalog_table: str | None = None
    # Events whose JSON envelope exceeds this many bytes carry their payload by reference (S3).
    # SNS refuses messages over 256 KiB including attributes; keep a margin.
    max_inline_bytes: int = 200 * 1024

    @property
    def topic_name(self) -> str:
        return f"{self.prefix}-hub"

    @property
    def payload_bucket_name(self) -> str:
        return self.payload_bucket or f"{self.prefix}-artifacts"

    @property
    def lake_bucket_name(self) -> str:
        return self.lake_bucket or f"{self.prefix}-lake"

    @property
    def catalog_table_name(self) -> str:
        return self.catalog_table or f"{self.prefix}-catalog"

    def queue_name(self, subscriber: str) -> str:
        return f"{self.prefix}-{subscriber}"

    def dlq_name(self, subscriber: str) -> str:
        return f"{self.prefix}-{subscriber}-dlq"
