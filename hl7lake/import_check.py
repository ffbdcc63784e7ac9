"""Refuses a stack whose `Fn::ImportValue` names no export, before an emulator deploys it.

AWS fails such a stack; LocalStack's CloudFormation lets it succeed with an empty value (a topic
named `topic-<random>` where the template wanted the hub's name: docs/decisions/0011).
"""

from __future__ import annotations

from typing import Any

from hl7lake.intrinsics import StackContext, resolve


def imported_names(value: Any, ctx: StackContext) -> list[str]:
    if isinstance(value, list):
        return [name for v in value for name in imported_names(v, ctx)]
    if not isinstance(value, dict):
        return []
    if len(value) == 1 and "Fn::ImportValue" in value:
        return [str(resolve(value["Fn::ImportValue"], ctx))]
    return [name for v in value.values() for name in imported_names(v, ctx)]


def check_imports(stack: str, template: dict[str, Any], ctx: StackContext) -> None:
    missing = sorted(set(imported_names(template, ctx)) - set(ctx.exports))
    if missing:
        raise RuntimeError(f"stack {stack} imports {', '.join(missing)}, which no deployed stack exports")
