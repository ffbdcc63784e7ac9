"""Settings shared by every service: where AWS (or the emulator) is and what the resources are called.

Every value comes from the environment (prefix ``HL7LAKE_``), so the same code runs against the
embedded emulator, LocalStack or real AWS. The AWS endpoint itself is boto3's standard
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_<SERVICE>``) and is read by boto3, not here.
"""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HL7LAKE_", extra="ignore")

    region: str = Field(default_factory=lambda: os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    prefix: str = "hl7lake"
    topic_arn: str | None = None
    payload_bucket: str | None = None
    lake_bucket: str | None = None
    catalog_table: str | None = None
    dedup_table: str | None = None
    user_pool_name: str | None = None
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

    @property
    def dedup_table_name(self) -> str:
        return self.dedup_table or f"{self.prefix}-dedup"

    @property
    def user_pool(self) -> str:
        return self.user_pool_name or f"{self.prefix}-users"

    def queue_name(self, subscriber: str) -> str:
        return f"{self.prefix}-{subscriber}"

    def dlq_name(self, subscriber: str) -> str:
        return f"{self.prefix}-{subscriber}-dlq"
