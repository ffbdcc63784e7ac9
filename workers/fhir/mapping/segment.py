"""Read access to one segment of the parsed document by HL7 position (field, repetition, component,
subcomponent), whatever depth the document kept: ``5`` is also ``5.1`` and ``5.1.1``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from workers.fhir.mapping.errors import MappingError

# one repetition of a field: (component, subcomponent) -> value; "F" is (1, 1), "F.C" is (C, 1)
Rep = dict[tuple[int, int], str]
Getter = Callable[[int], "str | None"]

HL7_NULL = '""'


class SegmentView:
    __slots__ = ("fields", "id", "index")

    def __init__(self, segment_id: str, index: int, fields: Mapping[str, str]) -> None:
        self.id = segment_id
        self.index = index  # 1-based position in the message
        nested: dict[int, dict[int, Rep]] = {}
        for key, value in fields.items():
            if value == HL7_NULL:
                continue
            head, _, rest = key.partition(".")
            if "[" in head:
                number, _, repetition = head[:-1].partition("[")
                field, rep = int(number), int(repetition)
            else:
                field, rep = int(head), 1
            if rest:
                comp, _, sub = rest.partition(".")
                position = (int(comp), int(sub) if sub else 1)
            else:
                position = (1, 1)
            nested.setdefault(field, {}).setdefault(rep, {})[position] = value
        self.fields = nested

    def reps(self, field: int) -> list[Rep]:
        by_rep = self.fields.get(field)
        if not by_rep:
            return []
        return [by_rep[r] for r in sorted(by_rep)]

    def rep(self, field: int) -> Rep | None:
        by_rep = self.fields.get(field)
        if not by_rep:
            return None
        return by_rep.get(1) or by_rep[min(by_rep)]

    def value(self, field: int, comp: int = 1, sub: int = 1) -> str | None:
        rep = self.rep(field)
        return rep.get((comp, sub)) if rep else None

    def name(self, field: int) -> str:
        return f"{self.id}-{field}"

    def error(self, reason: str, field: int | None = None) -> MappingError:
        return MappingError(
            reason,
            segment=self.id,
            segment_index=self.index,
            field=self.name(field) if field is not None else None,
        )


def components(rep: Rep) -> Getter:
    """Component getter of a field repetition (subcomponent 1 of each component)."""
    return lambda i: rep.get((i, 1))


def subcomponents(rep: Rep, comp: int) -> Getter:
    """Subcomponent getter of one component (a datatype nested inside a component, e.g. CX-4's HD)."""
    return lambda i: rep.get((comp, i))
