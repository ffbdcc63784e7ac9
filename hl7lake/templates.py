"""CloudFormation templates in `stacks/`: loading (short-form tags included) and where they live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hl7lake.settings import RootSettings

STACKS = ("core", "front-door", "staging-er7", "batch-splitter", "fhir-r4")


def stacks_dir() -> Path:
    configured = RootSettings().stacks_dir
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "stacks"


class _CfnLoader(yaml.SafeLoader):
    """Reads `!Ref`, `!Sub`, `!GetAtt`, ... into their long `Fn::` forms."""


def _construct(tag: str, node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


def _constructor(tag: str) -> Any:
    return lambda loader, node: _construct(tag, node, loader)


for _tag in ("Ref", "Sub", "GetAtt", "ImportValue", "Join", "Select", "Split", "If", "Equals", "Not",
             "And", "Or", "FindInMap", "Base64", "GetAZs", "Condition"):  # fmt: skip
    _CfnLoader.add_constructor(f"!{_tag}", _constructor(_tag))


def load_template(name: str) -> dict[str, Any]:
    path = stacks_dir() / f"{name}.yaml"
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 (safe loader subclass)
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path} is not a CloudFormation template")
    return data
