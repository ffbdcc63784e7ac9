"""Resources another emulator serves: dropped from the template, references resolved."""

from __future__ import annotations

from typing import Any

import pytest

from hl7lake import offloaded
from hl7lake.intrinsics import StackContext

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": {"Fn::Sub": "${Prefix}-t"}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
        "Policy": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {"Resource": [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::GetAtt": ["Queue", "Arn"]}]},
        },
    },
    "Outputs": {
        "Name": {"Value": {"Ref": "Table"}},
        "Text": {"Value": {"Fn::Sub": "${Table}/${Queue}"}},
    },
}


def _ctx() -> StackContext:
    params = {"Prefix": "p", "AWS::Region": "us-east-1", "AWS::AccountId": "123"}
    return StackContext(params, {}, {}, lambda *_: "unused")


def test_offloaded_resources_are_created_elsewhere_and_replaced_by_their_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = []

    def create(clients: Any, kind: str, props: dict[str, Any]) -> str:
        created.append((kind, props))
        return str(props["TableName"])

    monkeypatch.setattr(offloaded, "create_resource", create)
    reduced = offloaded.deploy_offloaded(TEMPLATE, _ctx(), lambda s: None, {"dynamodb"})
    assert created == [("AWS::DynamoDB::Table", {"TableName": "p-t"})]
    assert set(reduced["Resources"]) == {"Queue", "Policy"}
    assert reduced["Resources"]["Policy"]["Properties"]["Resource"] == [
        "arn:aws:dynamodb:us-east-1:123:table/p-t",
        {"Fn::GetAtt": ["Queue", "Arn"]},
    ]
    assert reduced["Outputs"] == {"Name": {"Value": "p-t"}, "Text": {"Value": {"Fn::Sub": "p-t/${Queue}"}}}
    assert "Table" in TEMPLATE["Resources"]  # the loaded template itself is left alone


def test_services_are_offloaded_only_where_their_endpoint_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_COGNITO_IDP",
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert offloaded.offloaded_services() == set()  # AWS
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert offloaded.offloaded_services() == set()  # one emulator
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4567")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDP", "http://127.0.0.1:4567")
    assert offloaded.offloaded_services() == {"dynamodb", "cognito-idp"}
