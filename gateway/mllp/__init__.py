"""MLLP: HL7 v2's own transport (0x0B message 0x1C 0x0D over TCP), answered with HL7 ACKs.

The listener feeds every message to the same ingest path as ``POST /v1/messages``
(:class:`gateway.ingest.IngestService`): same dedup, same hub, same lake.
"""
