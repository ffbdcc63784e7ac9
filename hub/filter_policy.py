"""SNS filter policies evaluated as AWS documents them, for policies read live from a subscription.

A policy maps keys to a list of conditions (any one must hold) and every key must hold; a key whose
value is an object descends into a nested message body (FilterPolicyScope MessageBody). Conditions:
an exact string or number, ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (values
or a prefix), ``exists``, ``numeric`` ranges, and ``$or`` between whole sub-policies.

Values: a str is a String attribute, an int/float a Number attribute, a list a String.Array (any
element may match). A missing key matches only ``{"exists": false}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_MISSING = object()


class FilterPolicyError(ValueError):
    """A policy this evaluator does not understand (an operator AWS has that is not implemented here)."""


def matches(policy: Mapping[str, Any], message: Mapping[str, Any]) -> bool:
    """True when SNS would deliver a message with these attributes (or this body) under ``policy``."""
    for key, rule in policy.items():
        if key == "$or":
            if not any(matches(alternative, message) for alternative in rule):
                return False
            continue
        value = message.get(key, _MISSING)
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif not any(_condition(condition, value) for condition in _conditions(rule)):
            return False
    return True


def _conditions(rule: Any) -> list[Any]:
    if not isinstance(rule, list):
        raise FilterPolicyError(f"a filter policy value must be a list or an object, not {rule!r}")
    return rule


def _condition(condition: Any, value: Any) -> bool:
    if isinstance(condition, Mapping):
        return _operator(condition, value)
    if value is _MISSING:
        return False
    return any(_equal(condition, v) for v in _each(value))


def _each(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(condition: Any, value: Any) -> bool:
    if _is_number(condition):
        return _is_number(value) and float(value) == float(condition)
    return isinstance(value, str) and value == condition


def _operator(condition: Mapping[str, Any], value: Any) -> bool:
    if len(condition) != 1:
        raise FilterPolicyError(f"one operator per condition, got {sorted(condition)}")
    ((name, operand),) = condition.items()
    if name == "exists":
        return (value is not _MISSING) == bool(operand)
    if value is _MISSING:
        return False
    values = _each(value)
    if name == "prefix":
        return any(isinstance(v, str) and v.startswith(operand) for v in values)
    if name == "suffix":
        return any(isinstance(v, str) and v.endswith(operand) for v in values)
    if name == "equals-ignore-case":
        return any(isinstance(v, str) and v.casefold() == str(operand).casefold() for v in values)
    if name == "anything-but":
        return any(_not_any_of(operand, v) for v in values)
    if name == "numeric":
        return any(_is_number(v) and _in_range(operand, float(v)) for v in values)
    raise FilterPolicyError(f"filter policy operator {name!r} is not supported here")


def _not_any_of(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        if set(operand) != {"prefix"}:
            raise FilterPolicyError(f"anything-but supports a value list or a prefix, not {dict(operand)}")
        return not (isinstance(value, str) and value.startswith(operand["prefix"]))
    return not any(_equal(excluded, value) for excluded in _each(operand))


def _in_range(operand: list[Any], value: float) -> bool:
    if not operand or len(operand) % 2:
        raise FilterPolicyError(f"numeric takes operator/value pairs, got {operand!r}")
    for op, bound in zip(operand[::2], operand[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise FilterPolicyError(f"numeric operator {op!r} is not one of {sorted(_NUMERIC_OPS)}")
        if not _NUMERIC_OPS[op](value, float(bound)):
            return False
    return True


def from_message_attributes(attributes: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """SNS ``MessageAttributes`` (DataType + StringValue) as the values ``matches`` takes."""
    values: dict[str, Any] = {}
    for name, attribute in attributes.items():
        kind, text = attribute.get("DataType", "String"), attribute.get("StringValue", "")
        if kind.startswith("Number"):
            values[name] = float(text)
        elif kind == "String.Array":
            values[name] = json.loads(text)
        elif kind.startswith("String"):
            values[name] = text
    return values
