"""The FHIR R4 subscriber's wiring: the hub's list of mapped types is the mapping's, and its stack's
filter policy is the hub's (the hub may not import the worker, so a test keeps them equal)."""

from __future__ import annotations

from hl7lake.templates import STACKS, load_template
from hl7lake.up import WORKERS
from hub.events import Attr, Event
from hub.metrics import METRICS_PORTS
from hub.topology import FHIR_MAPPED_TYPES, FHIR_R4, SUBSCRIPTIONS
from workers.fhir.mapping import MAPPED_TYPES


def test_the_hub_lists_exactly_the_types_the_mapping_maps() -> None:
    assert set(FHIR_MAPPED_TYPES) == set(MAPPED_TYPES) and len(FHIR_MAPPED_TYPES) == len(MAPPED_TYPES)


def test_it_subscribes_to_parsed_events_of_the_mapped_types_only() -> None:
    assert FHIR_R4.filter_policy == {
        Attr.EVENT.value: [Event.PARSED.value],
        Attr.MESSAGE_TYPE.value: list(FHIR_MAPPED_TYPES),
    }
    assert SUBSCRIPTIONS["fhir-r4"] is FHIR_R4


def test_its_stack_subscribes_its_own_queue_with_that_policy() -> None:
    assert "fhir-r4" in STACKS
    resources = load_template("fhir-r4")["Resources"]
    [subscription] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription["FilterPolicy"] == FHIR_R4.filter_policy
    assert subscription["RawMessageDelivery"] is True
    assert subscription["TopicArn"] == {"Fn::ImportValue": {"Fn::Sub": "${CoreStackName}-Topic"}}
    queues = {
        r["Properties"]["QueueName"]["Fn::Sub"] for r in resources.values() if r["Type"] == "AWS::SQS::Queue"
    }
    assert queues == {"${Prefix}-fhir-r4", "${Prefix}-fhir-r4-dlq"}


def test_make_up_runs_it_with_its_metrics_port() -> None:
    assert "fhir-r4" in WORKERS and METRICS_PORTS["fhir-r4"] == 9106
