"""Resolving CloudFormation intrinsic functions against a deployed stack (for the emulator gap-filler)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


@dataclass
class StackContext:
    parameters: dict[str, str]
    physical_ids: dict[str, str]
    exports: dict[str, str]
    get_att: Callable[[str, str, str], str]  # (resource type, physical id, attribute) -> value
    resource_types: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        try:
            return self.physical_ids[name]
        except KeyError:
            raise LookupError(f"no physical id for {name!r} in the deployed stack") from None

    def attribute(self, logical: str, attribute: str) -> str:
        return self.get_att(self.resource_types[logical], self.ref(logical), attribute)


def resolve(value: Any, ctx: StackContext) -> Any:
    if isinstance(value, list):
        return [resolve(v, ctx) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return ctx.ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return ctx.attribute(logical, attribute)
        if key == "Fn::Sub":
            template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], ctx))
            return _SUB_VAR.sub(lambda m: _sub_var(m.group(1), variables, ctx), template)
        if key == "Fn::ImportValue":
            name = resolve(arg, ctx)
            try:
                return ctx.exports[name]
            except KeyError:
                raise LookupError(f"no export named {name!r}") from None
        if key == "Fn::Join":
            separator, parts = arg
            return str(separator).join(str(p) for p in resolve(parts, ctx))
    return {k: resolve(v, ctx) for k, v in value.items()}


def _sub_var(name: str, variables: dict[str, Any], ctx: StackContext) -> str:
    if name in variables:
        return str(variables[name])
    if "." in name:
        logical, attribute = name.split(".", 1)
        return ctx.attribute(logical, attribute)
    return ctx.ref(name)
