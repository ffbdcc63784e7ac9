"""Every ADT A01/A03/A04/A08, ORU R01 and VXU V04 message of both corpora becomes a Bundle that the
FHIR R4B models accept, or a MappingError that names the segment (and the field when one is to blame)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.unit.fhir_corpus import mapped_documents
from workers.fhir.mapping import MappingError, convert

# A message the mapping refuses has bad data the FHIR element needs (a PID-7 of '19_610_6', an OBX with no
# OBX-3, an ORU with no PID): few, and each named.
MAX_REFUSED = 15


def test_every_mapped_corpus_message_converts_to_a_valid_bundle_or_a_precise_refusal(
    corpus_dir: Path, peer_corpus_dir: Path
) -> None:
    documents = mapped_documents(corpus_dir, peer_corpus_dir)
    types = collections.Counter(doc["header"]["messageType"] for _, doc in documents)
    assert {"ADT^A01", "ADT^A04", "ADT^A08", "ORU^R01", "VXU^V04"} <= set(types)
    refused: dict[str, MappingError] = {}
    invalid: dict[str, str] = {}
    for name, document in documents:
        try:
            bundle = convert(document, name)
        except MappingError as err:
            refused[name] = err
            continue
        try:
            Bundle.model_validate(bundle)
        except ValueError as err:
            invalid[name] = str(err)[:500]
    print(f"\n{len(documents)} messages {dict(types)}: {len(refused)} refused")
    for name, err in refused.items():
        print(f"  {name}: {err.to_dict()}")
    assert invalid == {}
    assert len(refused) <= MAX_REFUSED
    assert len(documents) - len(refused) >= 150
    for name, err in refused.items():
        detail = err.to_dict()
        assert detail["stage"] == "fhir" and detail["reason"], name
        assert detail["segment"] and detail["segmentIndex"] >= 1, name
        assert "field" in detail or "no PID" in detail["reason"], name


@pytest.mark.parametrize("resource_type", ["Patient", "Encounter", "Observation", "DiagnosticReport"])
def test_the_corpus_yields_each_main_resource(
    corpus_dir: Path, peer_corpus_dir: Path, resource_type: str
) -> None:
    seen = 0
    for name, document in mapped_documents(corpus_dir, peer_corpus_dir):
        try:
            bundle = convert(document, name)
        except MappingError:
            continue
        seen += sum(e["resource"]["resourceType"] == resource_type for e in bundle["entry"])
    assert seen >= 5
