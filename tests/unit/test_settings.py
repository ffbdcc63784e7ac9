"""Settings: one class per service, defaults written once, a mistyped value stops start-up naming its
variable and what it accepts, and every variable the docs and compose files name is read somewhere."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from gateway.config import GATEWAY_PORT, GatewaySettings
from gateway.mllp.config import MLLP_PORT, MLLP_SOURCE, MllpSettings
from hl7lake import cli, devusers, templates
from hl7lake.emulator import EMULATOR_ENV, use_local_emulator_by_default
from hl7lake.emulator_server.__main__ import parse_args
from hl7lake.settings import EMULATOR_PORT, RootSettings
from hl7lake.up import UpSettings
from hub.aws import AwsCallSettings
from hub.callcount import CallCountSettings
from hub.config import HubSettings, SettingsError, env_name
from hub.metrics import MetricsSettings
from hub.runtime import WorkerSettings
from workers.er7_staging.bootstrap import StagingSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: list[type[BaseSettings]] = [
    HubSettings,
    AwsCallSettings,
    CallCountSettings,
    WorkerSettings,
    StagingSettings,
    GatewaySettings,
    MllpSettings,
    MetricsSettings,
    RootSettings,
    UpSettings,
]
# read outside the settings classes, on purpose
NOT_SETTINGS = {
    "HL7LAKE_TEST_AWS_ENDPOINT",
    "HL7LAKE_TEST_COGNITO_ENDPOINT",
    "HL7LAKE_TEST_DYNAMODB_ENDPOINT",
}


def test_a_mistyped_emulator_mode_names_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HL7LAKE_EMULATOR", "motto")
    with pytest.raises(SettingsError) as refused:
        UpSettings()
    assert str(refused.value) == (
        "HL7LAKE_EMULATOR='motto' is not allowed: use 'embedded', 'external' or 'localstack'"
    )


def test_a_mistyped_emulator_mode_stops_a_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("HL7LAKE_EMULATOR", "motto")
    assert cli.main(["token", "--user", "sender@hospital-a.example"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hl7lake token: HL7LAKE_EMULATOR='motto'") and "'external' or 'localstack'" in err


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [("HL7LAKE_LOG_FORMAT", "xml", "'text' or 'json'"), ("HL7LAKE_LOG_LEVEL", "LOUD", "'INFO'")],
)
def test_mistyped_logging_choices_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^{variable}='{value}' is not allowed: use .*{allowed}"):
        RootSettings()


def test_choices_keep_their_forgiving_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HL7LAKE_LOG_FORMAT", " JSON ")
    monkeypatch.setenv("HL7LAKE_LOG_LEVEL", "debug")
    monkeypatch.setenv("HL7LAKE_EMULATOR", "")
    settings = RootSettings()
    assert (settings.log_format, settings.log_level, settings.emulator) == ("json", "DEBUG", "embedded")


@pytest.mark.parametrize(
    ("settings", "variable", "value"),
    [
        (MllpSettings, "HL7LAKE_MLLP_PORT", "25 75"),
        (GatewaySettings, "HL7LAKE_MAX_BACKLOG", "many"),
        (StagingSettings, "HL7LAKE_VALIDATE", "perhaps"),
        (AwsCallSettings, "HL7LAKE_AWS_MAX_ATTEMPTS", "two"),
    ],
)
def test_every_service_names_the_variable_it_refuses(
    monkeypatch: pytest.MonkeyPatch, settings: type[BaseSettings], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^{variable}: "):
        settings()


def test_each_default_is_written_once_and_shared() -> None:
    up = UpSettings()
    assert GatewaySettings.model_fields["port"].default == GATEWAY_PORT == up.port
    assert MllpSettings.model_fields["port"].default == MLLP_PORT == up.mllp_port
    assert MllpSettings.model_fields["source"].default == MLLP_SOURCE == up.mllp_source
    assert RootSettings.model_fields["emulator_port"].default == EMULATOR_PORT == up.emulator_port
    assert parse_args([]).port == EMULATOR_PORT
    assert GatewaySettings.model_fields["host"].default == up.host == up.mllp_host == parse_args([]).host


def test_the_front_doors_resource_names_are_the_gateways_not_the_hubs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not {"dedup_table", "user_pool_name"} & set(HubSettings.model_fields)
    assert not {"dedup_table", "user_pool_name"} & set(WorkerSettings.model_fields)
    monkeypatch.setenv("HL7LAKE_PREFIX", "t")
    assert (GatewaySettings().dedup_table_name, GatewaySettings().user_pool) == ("t-dedup", "t-users")
    monkeypatch.setenv("HL7LAKE_DEDUP_TABLE", "dedup-x")
    monkeypatch.setenv("HL7LAKE_USER_POOL_NAME", "pool-x")
    assert (GatewaySettings().dedup_table_name, GatewaySettings().user_pool) == ("dedup-x", "pool-x")


def test_the_composition_roots_files_come_from_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert templates.stacks_dir() == ROOT / "stacks"
    assert devusers.users_file() == devusers.DEFAULT_FILE
    monkeypatch.setenv("HL7LAKE_STACKS_DIR", str(tmp_path))
    monkeypatch.setenv("HL7LAKE_DEV_USERS_FILE", str(tmp_path / "users.yaml"))
    assert templates.stacks_dir() == tmp_path
    assert devusers.users_file() == tmp_path / "users.yaml"


def test_dev_commands_use_the_emulator_the_settings_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ENDPOINT_URL", *EMULATOR_ENV):  # restored after the test
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HL7LAKE_EMULATOR", "external")
    use_local_emulator_by_default()
    assert "AWS_ENDPOINT_URL" not in os.environ
    monkeypatch.setenv("HL7LAKE_EMULATOR", "embedded")
    monkeypatch.setenv("HL7LAKE_EMULATOR_PORT", "4999")
    use_local_emulator_by_default()
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in os.environ


def test_dev_commands_in_localstack_mode_reach_moto_for_dynamodb_and_cognito(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_COGNITO_IDP",
        *EMULATOR_ENV,
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HL7LAKE_EMULATOR", "localstack")
    use_local_emulator_by_default()
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:4567"
    assert os.environ["AWS_ENDPOINT_URL_COGNITO_IDP"] == "http://127.0.0.1:4567"


def test_every_variable_the_docs_and_compose_name_is_a_setting() -> None:
    read = {env_name(settings, field) for settings in SETTINGS for field in settings.model_fields}
    named = set()
    for doc in ("README.md", "docker-compose.yml", "docker-compose.moto.yml"):
        named |= set(re.findall(r"HL7LAKE_[A-Z0-9_]*[A-Z0-9]", (ROOT / doc).read_text(encoding="utf-8")))
    assert named - NOT_SETTINGS - read == set()


def test_no_code_reads_our_variables_around_the_settings_classes() -> None:
    read = re.compile(r"""(?:environ\.get|getenv)\(\s*["']HL7LAKE_|environ\[\s*["']HL7LAKE_""")
    readers = [
        str(path.relative_to(ROOT))
        for package in ("hub", "gateway", "workers", "lake", "hl7lake")
        for path in (ROOT / package).rglob("*.py")
        if read.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []
