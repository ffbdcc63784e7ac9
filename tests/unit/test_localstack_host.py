"""Host-mode LocalStack: which Python it runs on, how it is configured, what `up` claims for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hl7lake import localstack_host
from hl7lake.up import UpSettings, _banner, port_claims


def test_no_python_313_or_newer_is_named_not_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localstack_host, "_candidates", lambda: [sys.executable])
    monkeypatch.setattr(localstack_host, "_version", lambda python: (3, 12))
    with pytest.raises(localstack_host.NoSuitablePython, match=r"Python >= 3\.13"):
        localstack_host.find_python()


def test_the_first_python_new_enough_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"/a/python3.12": (3, 12), "/b/python3.13": (3, 13), "/c/python3.14": (3, 14)}
    monkeypatch.setattr(localstack_host, "_candidates", lambda: list(versions))
    monkeypatch.setattr(localstack_host, "_version", versions.get)
    assert localstack_host.find_python() == "/b/python3.13"


def test_localstack_listens_on_loopback_offline_with_path_queue_urls(tmp_path: Path) -> None:
    env = localstack_host.localstack_env(4999, tmp_path)
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:4999"
    assert env["SQS_ENDPOINT_STRATEGY"] == "path"
    assert env["FILESYSTEM_ROOT"] == str(tmp_path)
    assert {env[k] for k in ("OVERRIDE_IN_DOCKER", "DNS_ADDRESS", "DISABLE_EVENTS")} == {"0", "1"}
    assert "dynamodb" not in env["SERVICES"].split(",")


def test_up_in_localstack_mode_claims_both_emulator_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HL7LAKE_EMULATOR", "localstack")
    monkeypatch.setenv("HL7LAKE_EMULATOR_PORT", "4700")
    ports = {claim.port for claim in port_claims(UpSettings())}
    assert {4700, 4701} <= ports


def test_the_banner_token_command_reaches_moto_cognito_in_localstack_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HL7LAKE_EMULATOR", "localstack")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4567")
    banner = _banner(UpSettings())
    assert "TOKEN=$(HL7LAKE_EMULATOR=localstack .venv/bin/hl7lake token" in banner
    assert (
        "AWS endpoint http://127.0.0.1:4566 (LocalStack; DynamoDB and Cognito: moto http://127.0.0.1:4567)"
        in banner
    )
