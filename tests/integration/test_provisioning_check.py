"""Detect, don't assume: the gap-filler reads back what the emulator's CloudFormation created and
applies only what is missing. Runs on moto (`make test`) and on the LocalStack hybrid
(`make test-localstack`); the differences between the two are docs/decisions/0011."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from gateway.config import GatewaySettings
from hl7lake.emulator_gaps import Clients, missing_settings
from hl7lake.import_check import check_imports
from hl7lake.offloaded import deploy_offloaded, offloaded_services
from hl7lake.provision import deploy_stack, provision, stack_context, stack_name
from hl7lake.templates import STACKS, load_template
from hub import aws
from tests.conftest import EXTERNAL_ENDPOINT


def _clients(region: str) -> Clients:
    return functools.cache(lambda service: aws.client(service, region, read_timeout=30))


def _parameters(settings: GatewaySettings) -> dict[str, str]:
    return {
        "Prefix": settings.prefix,
        "CoreStackName": stack_name(settings.prefix, "core"),
        "MaxReceiveCount": "4",
    }


def _missing(settings: GatewaySettings, clients: Clients, short: str) -> list[str]:
    name, template = stack_name(settings.prefix, short), load_template(short)
    ctx = stack_context(clients, name, template, _parameters(settings), settings.region)
    return missing_settings(template, ctx, clients)


def test_after_bootstrap_nothing_the_templates_set_is_missing(moto_endpoint: str, prefix: str) -> None:
    settings = GatewaySettings()
    provision(settings, dev_users=False, max_receive_count=4)
    clients = _clients(settings.region)
    for short in STACKS:
        assert _missing(settings, clients, short) == [], short


def test_a_setting_taken_away_is_detected_and_only_it_is_put_back(moto_endpoint: str, prefix: str) -> None:
    settings = GatewaySettings()
    result = provision(settings, dev_users=False, max_receive_count=4)
    clients = _clients(settings.region)
    sns: Any = clients("sns")
    queue = result.queues["er7-staging"]
    arn = clients("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    subscription = next(
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=result.topic_arn)["Subscriptions"]
        if s["Endpoint"] == arn["QueueArn"]
    )
    sns.set_subscription_attributes(
        SubscriptionArn=subscription, AttributeName="RawMessageDelivery", AttributeValue="false"
    )
    clients("s3").delete_bucket_lifecycle(Bucket=settings.payload_bucket_name)

    assert _missing(settings, clients, "staging-er7") == [
        f"subscription {settings.prefix}-er7-staging RawMessageDelivery"
    ]
    assert _missing(settings, clients, "core") == [f"lifecycle rules of {settings.payload_bucket_name}"]
    provision(settings, dev_users=False, max_receive_count=4)  # the gap-filler puts back what it finds
    for short in STACKS:
        assert _missing(settings, clients, short) == [], short
    raw = sns.get_subscription_attributes(SubscriptionArn=subscription)["Attributes"]["RawMessageDelivery"]
    assert raw == "true"


def test_what_each_emulators_cloudformation_creates_itself(moto_endpoint: str, prefix: str) -> None:
    """The core stack deployed without the gap-filler: what is left for it to do, per emulator."""
    settings = GatewaySettings()
    clients = _clients(settings.region)
    name, template = stack_name(settings.prefix, "core"), load_template("core")
    if offloaded := offloaded_services():
        ctx = stack_context(clients, name, template, _parameters(settings), settings.region, deployed=False)
        template = deploy_offloaded(template, ctx, clients, offloaded)
    deploy_stack(clients("cloudformation"), name, template, _parameters(settings))

    missing = set(_missing(settings, clients, "core"))

    lake, artifacts, queue = settings.lake_bucket_name, settings.payload_bucket_name, f"{prefix}-lake-writer"
    if EXTERNAL_ENDPOINT:  # LocalStack: creates subscriptions, queue policies, all but lifecycle rules
        assert missing == {f"lifecycle rules of {artifacts}"}
    else:  # moto 5: skips them, and the bucket settings but encryption (AES256 by default)
        assert missing == {
            f"versioning of {lake}",
            f"public access block of {lake}",
            f"public access block of {artifacts}",
            f"lifecycle rules of {artifacts}",
            f"queue policy of {queue}",
            f"subscription {queue}",
        }


def test_a_stack_importing_what_no_stack_exports_is_refused(moto_endpoint: str, prefix: str) -> None:
    """AWS fails it; LocalStack would deploy it with an empty value: refused before either sees it."""
    settings = GatewaySettings()
    clients = _clients(settings.region)
    name, template = stack_name(settings.prefix, "staging-er7"), load_template("staging-er7")
    ctx = stack_context(clients, name, template, _parameters(settings), settings.region, deployed=False)
    with pytest.raises(RuntimeError, match=rf"imports {prefix}-core-Topic, which no deployed stack exports"):
        check_imports(name, template, ctx)
