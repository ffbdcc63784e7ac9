"""HL7 v2 → FHIR R4 mapping (HL7 V2-to-FHIR IG): a parsed document in, a transaction Bundle out.

Pure dictionary work on ``hub.document.ParsedDocument``; coverage in docs/fhir-mapping.md.
"""

from workers.fhir.mapping.bundle import MAPPED_TYPES, convert
from workers.fhir.mapping.errors import MappingError

__all__ = ["MAPPED_TYPES", "MappingError", "convert"]
