"""FHIR R4 subscriber: parsed HL7 v2 messages → FHIR R4 transaction Bundles (``message.converted``)."""
