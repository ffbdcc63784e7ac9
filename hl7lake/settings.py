"""The composition root's own settings: the embedded emulator, logging and where its files live.

Read by every `hl7lake` command (each configures logging), so a typo here — `HL7LAKE_EMULATOR=motto`
— stops any of them at start-up with a message naming the variable and its allowed values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from hub.config import LOCALHOST, EnvSettings

EMULATOR_PORT = 4566
# seconds between the emulator's state snapshots while requests arrive
EMULATOR_SAVE_INTERVAL = 30.0

# "external": use AWS_ENDPOINT_URL / real AWS as configured; "localstack": LocalStack as a host process
# on the emulator port, moto beside it on the next port for DynamoDB and Cognito (docs/decisions/0011)
EmulatorMode = Literal["embedded", "external", "localstack"]
LogFormat = Literal["text", "json"]
# the names logging.basicConfig accepts
LogLevel = Literal["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"]


class RootSettings(EnvSettings):
    # An empty variable means its default (HL7LAKE_LOG_FORMAT= is plain text, as it always was).
    model_config = SettingsConfigDict(env_ignore_empty=True)

    emulator: EmulatorMode = "embedded"
    emulator_host: str = LOCALHOST
    emulator_port: int = EMULATOR_PORT
    emulator_save_interval: float = EMULATOR_SAVE_INTERVAL
    log_format: LogFormat = "text"
    log_level: LogLevel = "INFO"
    # None: the files shipped with the code (stacks/, hl7lake/dev-users.yaml)
    stacks_dir: str | None = None
    dev_users_file: str | None = None

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def embedded_emulator(self) -> bool:
        return self.emulator == "embedded"

    @property
    def local_emulator(self) -> bool:
        """An emulator `hl7lake up` starts itself (moto alone, or the LocalStack hybrid)."""
        return self.emulator != "external"

    @property
    def emulator_endpoint(self) -> str:
        return f"http://{self.emulator_host}:{self.emulator_port}"

    @property
    def hybrid_moto_port(self) -> int:
        """In the LocalStack hybrid: moto's port, for DynamoDB and Cognito."""
        return self.emulator_port + 1

    def emulator_env(self) -> dict[str, str]:
        """boto3's endpoint variables for the local emulator(s) of this mode."""
        if self.emulator == "external":
            return {}
        env = {"AWS_ENDPOINT_URL": self.emulator_endpoint}
        if self.emulator == "localstack":
            moto = f"http://{self.emulator_host}:{self.hybrid_moto_port}"
            env |= {"AWS_ENDPOINT_URL_DYNAMODB": moto, "AWS_ENDPOINT_URL_COGNITO_IDP": moto}
        return env
