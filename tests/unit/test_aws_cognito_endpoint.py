"""AWS_ENDPOINT_URL_COGNITO_IDP (compose, README, the LocalStack hybrid) reaches the Cognito client:
boto3 itself only reads AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER."""

from __future__ import annotations

import pytest

from hub import aws


def test_the_documented_cognito_variable_names_the_cognito_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDP", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert aws.client("cognito-idp", "us-east-1").meta.endpoint_url == "http://127.0.0.1:5000"
    assert aws.client("sqs", "us-east-1").meta.endpoint_url == "http://127.0.0.1:4566"
