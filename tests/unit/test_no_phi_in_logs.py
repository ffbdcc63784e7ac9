"""No message body or patient data in logs: run every path with a recognisable patient and read the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.ingest import IngestService, MediaType, unexpected
from gateway.problems import Problem
from hl7lake.logs import formatter
from lake.writer import LakeWriter
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.fakes.lake import MemoryCatalog, MemoryObjectStore
from workers.er7_staging.handler import Er7StagingHandler

SECRETS = ("ZZSURNAMEQ", "ZZGIVENQ", "MRN8675309", "19451231")
GOOD = (
    "MSH|^~\\&|LAB|HOSP|LAKE|AWS|20260101||ADT^A01|C1|P|2.5\r"
    "PID|1||MRN8675309^^^HOSP||ZZSURNAMEQ^ZZGIVENQ||19451231|F\r"
)
BAD_BODY = GOOD.replace("PID|1", "pid|1")  # staging fails on the segment id
NO_TYPE = GOOD.replace("ADT^A01", "")  # the gateway rejects it


@pytest.fixture
def formatted() -> Iterator[dict[str, io.StringIO]]:
    """The log lines as each format writes them (text and JSON), besides the raw records."""
    streams = {name: io.StringIO() for name in ("text", "json")}
    handlers = [logging.StreamHandler(stream) for stream in streams.values()]
    for handler, name in zip(handlers, streams, strict=True):
        handler.setFormatter(formatter("gateway", name))
        logging.getLogger().addHandler(handler)
    yield streams
    for handler in handlers:
        logging.getLogger().removeHandler(handler)


def test_no_patient_data_reaches_the_logs(
    caplog: pytest.LogCaptureFixture, formatted: dict[str, io.StringIO]
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = MemoryHub()
    ingest = IngestService(MemoryDedupStore(), hub)
    media = MediaType("application/hl7-v2", None)
    staging = Er7StagingHandler(hub, hub.payloads, validate=True)
    lake = LakeWriter(MemoryObjectStore(), MemoryCatalog(), hub.payloads)

    ingest.ingest(GOOD.encode(), media, "hospital-a")
    ingest.ingest(BAD_BODY.replace("C1", "C2").encode(), media, "hospital-a")
    edges = (
        GOOD,  # a duplicate
        NO_TYPE,  # rejected by the gateway
        GOOD.replace("|C1|", "|" + "ZZSURNAMEQ" * 250 + "|"),  # MSH-10 over its limit, quoting a name
        GOOD.replace("ADT^A01", "ADT^" + "MRN8675309" * 30),  # MSH-9 over its limit
        # MSH-18 not a character set, on a body that is not plain ASCII (an ASCII one is accepted)
        GOOD.replace("|2.5\r", "|2.5||||||ZZGIVENQ\r").replace("C1", "C\u00e9"),
    )
    for body in edges:
        with pytest.raises(Problem):
            ingest.ingest(body.encode(), media, "hospital-a")

    class Exploding(MemoryDedupStore):
        def claim(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise ZeroDivisionError("ZZSURNAMEQ")  # a programming error whose text quotes a value

    with pytest.raises(ZeroDivisionError) as crashed:
        IngestService(Exploding(), hub).ingest(GOOD.replace("C1", "C9").encode(), media, "hospital-a")
    assert unexpected(crashed.value).status == 500  # what the front doors answer (and log)
    batch = GOOD.replace("C1", "C3") + GOOD.replace("C1", "C4").replace("|F\r", "|M\r")
    ingest.ingest(batch.encode(), media, "hospital-a")
    for event in hub.drain("er7-staging"):
        staging.handle(event)
    for event in hub.drain("lake-writer"):
        lake.handle(event)

    assert len(hub.published) >= 8  # received, parsed, failed and rejected events all ran
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "accepted id=" in text and "parse failed id=" in text and "rejected id=" in text
    leaked = [secret for secret in SECRETS if secret in text]
    assert leaked == []
    assert formatted  # the loop below must check some format
    for name, stream in formatted.items():
        output = stream.getvalue()
        assert "accepted" in output and [secret for secret in SECRETS if secret in output] == [], name
    json_lines = formatted["json"].getvalue().splitlines()
    assert len(json_lines) == len(caplog.records)  # one object per record, no line broken by a value
    assert all({"ts", "level", "service", "message"} <= set(json.loads(line)) for line in json_lines)
