"""The SNS filter-policy evaluator against the semantics AWS documents (examples from the SNS
developer guide: "Filter policy constraints", "AND/OR logic", "Attribute string/numeric value
matching", "Key matching")."""

from __future__ import annotations

import pytest

from hub.filter_policy import FilterPolicyError, from_message_attributes, matches

ATTRS = {
    "store": "example_corp",
    "event": "order_placed",
    "price_usd": 210.75,
    "customer_interests": ["soccer"],
}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"store": ["example_corp"]}, True),
        ({"store": ["other_corp"]}, False),
        ({"store": ["other_corp", "example_corp"]}, True),  # values of one key: OR
        ({"store": ["example_corp"], "event": ["order_cancelled"]}, False),  # keys: AND
        ({"store": ["example_corp"], "event": ["order_placed"]}, True),
        ({"missing": ["x"]}, False),
        ({"store": ["Example_Corp"]}, False),  # exact matching is case-sensitive
        ({"store": [{"equals-ignore-case": "EXAMPLE_CORP"}]}, True),
        ({"store": [{"prefix": "example"}]}, True),
        ({"store": [{"prefix": "corp"}]}, False),
        ({"store": [{"suffix": "_corp"}]}, True),
        ({"store": [{"suffix": "example"}]}, False),
        ({"store": [{"anything-but": ["other_corp"]}]}, True),
        ({"store": [{"anything-but": ["example_corp", "x"]}]}, False),
        ({"store": [{"anything-but": "example_corp"}]}, False),
        ({"store": [{"anything-but": {"prefix": "exa"}}]}, False),
        ({"store": [{"anything-but": {"prefix": "oth"}}]}, True),
        ({"missing": [{"anything-but": ["x"]}]}, False),  # anything-but needs the attribute
        ({"store": [{"exists": True}]}, True),
        ({"store": [{"exists": False}]}, False),
        ({"missing": [{"exists": False}]}, True),
        ({"missing": [{"exists": True}]}, False),
        ({"price_usd": [{"numeric": [">=", 100]}]}, True),
        ({"price_usd": [{"numeric": [">", 0, "<=", 150]}]}, False),
        ({"price_usd": [{"numeric": ["=", 210.75]}]}, True),
        ({"price_usd": [210.75]}, True),  # an exact number matches a Number attribute
        ({"price_usd": ["210.75"]}, False),  # a string never matches a Number attribute
        ({"store": [{"numeric": [">", 0]}]}, False),  # numeric never matches a String attribute
        ({"customer_interests": ["soccer"]}, True),  # String.Array: any element
        ({"customer_interests": ["rugby"]}, False),
        ({"$or": [{"store": ["x"]}, {"event": ["order_placed"]}]}, True),
        ({"$or": [{"store": ["x"]}, {"event": ["y"]}]}, False),
        (
            {"store": ["example_corp"], "$or": [{"event": ["y"]}, {"price_usd": [{"numeric": [">", 200]}]}]},
            True,
        ),
    ],
)
def test_attribute_policies(policy: dict, expected: bool) -> None:
    assert matches(policy, ATTRS) is expected


def test_nested_body_policies_descend_into_objects() -> None:
    body = {"event": "message.parsed", "batch": {"count": 3, "source": "hospital-a"}}
    assert matches({"batch": {"source": ["hospital-a"]}}, body)
    assert not matches({"batch": {"source": ["hospital-b"]}}, body)
    assert not matches({"event": {"source": ["hospital-a"]}}, body)  # not an object there
    assert matches({"batch": {"count": [{"numeric": [">", 2]}]}}, body)


@pytest.mark.parametrize(
    "policy",
    [
        {"store": "example_corp"},  # not a list
        {"store": [{"wildcard": "*corp"}]},  # an operator not implemented
        {"store": [{"prefix": "a", "suffix": "b"}]},
        {"price_usd": [{"numeric": [">"]}]},
        {"price_usd": [{"numeric": ["!=", 3]}]},
    ],
)
def test_policies_not_understood_are_errors_not_silent_answers(policy: dict) -> None:
    with pytest.raises(FilterPolicyError):
        matches(policy, ATTRS)


def test_message_attributes_from_sns_shapes() -> None:
    values = from_message_attributes(
        {
            "event": {"DataType": "String", "StringValue": "message.received"},
            "size": {"DataType": "Number", "StringValue": "12"},
            "tags": {"DataType": "String.Array", "StringValue": '["a","b"]'},
        }
    )
    assert values == {"event": "message.received", "size": 12.0, "tags": ["a", "b"]}
    assert matches({"size": [{"numeric": [">", 10]}], "tags": ["b"]}, values)
