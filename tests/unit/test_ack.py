"""ACK building (every code, enhanced mode, ERR layout, custom delimiters) and HL7 over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest

from gateway import ack
from gateway.ingest import IngestService, MediaType
from gateway.outcomes import BatchOutcome, IngestOutcome, MemberOutcome, MessageSummary, Status
from gateway.problems import Problem, unavailable
from hub.er7 import Er7Error, ErrorCode
from tests.conftest import corpus_message
from tests.fakes.dedup import MemoryDedupStore
from tests.fakes.hub import MemoryHub
from tests.unit.test_gateway_api import MSG, Stack

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HL7_ACCEPT = {"Accept": "application/hl7-v2"}


def ingest_problem(body: bytes) -> Problem | None:
    service = IngestService(MemoryDedupStore(), MemoryHub())
    try:
        service.ingest(body, MediaType("application/hl7-v2", None), "hospital-a")
    except Problem as problem:
        return problem
    return None


def segments(text: str) -> dict[str, list[str]]:
    d = text[3]
    return {seg[:3]: seg.split(d) for seg in text.split("\r")}


def build(body: bytes, problem: Problem | None = None, **kw: object) -> ack.Ack:
    answer = ack.acknowledge(ack.from_bytes(body), problem, control_id="ACK1", now=NOW, **kw)  # type: ignore[arg-type]
    assert answer is not None
    return answer


def test_aa_swaps_sender_and_receiver_and_echoes_the_control_id() -> None:
    answer = build(MSG)
    assert answer.code == "AA"
    assert answer.text == (
        "MSH|^~\\&|LAKE|AWS|LAB|HOSP_A|20260102030405+0000||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|AA|CTRL-1"
    )
    assert answer.data == answer.text.encode()
    # an independent parser reads it back
    parsed = hl7.parse(answer.text)
    assert str(parsed.segment("MSA")[2]) == "CTRL-1"
    assert str(parsed.segment("MSH")[9]) == "ACK^A01^ACK"


def test_new_control_id_by_default_and_at_most_20_characters() -> None:
    first = ack.acknowledge(ack.from_bytes(MSG), None)
    second = ack.acknowledge(ack.from_bytes(MSG), None)
    assert first and second
    ids = [segments(a.text)["MSH"][9] for a in (first, second)]
    assert ids[0] != ids[1] and all(0 < len(i) <= 20 for i in ids)


def test_custom_delimiters_and_components_are_kept() -> None:
    body = b"MSH#$~\\&#LAB$X$ISO#HOSP#LAKE#AWS#20260101##ORU$R01$ORU_R01#C$9#T#2.6\rPID#1##MRN1\r"
    answer = build(body)
    assert answer.text == (
        "MSH#$~\\&#LAKE#AWS#LAB$X$ISO#HOSP#20260102030405+0000##ACK$R01$ACK#ACK1#T#2.6\rMSA#AA#C$9"
    )
    assert str(hl7.parse(answer.text).segment("MSH")[3]) == "LAKE"


def test_truncation_character_of_v27_is_kept(corpus_dir: Path) -> None:
    answer = build(corpus_message("049-RSP_K22-2.7.hl7"))
    assert answer.text.startswith("MSH|^~\\&#|")
    assert segments(answer.text)["MSH"][11] == "2.7"


def test_version_before_231_has_no_message_structure() -> None:
    body = MSG.replace(b"ADT^A01^ADT_A01", b"ADT^A01").replace(b"2.5.1", b"2.3")
    assert segments(build(body).text)["MSH"][8] == "ACK^A01"


def test_duplicate_is_aa() -> None:
    duplicate = Problem(409, "duplicate", "already accepted", details={"id": "01X"})
    assert build(MSG, duplicate).code == "AA"


def test_ae_names_segment_field_and_reason_in_v25_err() -> None:
    body = MSG.replace(b"^~\\&", b"^~ &")
    problem = ingest_problem(body)
    assert problem is not None and problem.status == 400
    answer = build(body, problem)
    assert answer.code == "AE"
    msa, err = answer.text.split("\r")[1:]
    # the MSH cannot be read, but its field separator is sound and MSH-10 a plain id: echoed
    assert msa == "MSA|AE|CTRL-1"
    fields = err.split("|")
    assert fields[2] == "MSH^1^2^1"  # ERR-2 location: segment, occurrence, field, repetition
    assert fields[3] == "102^Data type error^HL70357"  # ERR-3
    assert fields[4] == "E"  # ERR-4 severity
    assert fields[5] == "bad_message"  # ERR-5 application error code
    assert "encoding characters" in fields[8]  # ERR-8 user message
    assert fields[1] == ""  # ERR-1 only before v2.5


def test_ae_with_err1_and_msa3_before_v25_and_occurrence_of_the_segment() -> None:
    body = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|X1|P|2.3\rPID|1\rOBX|1\rOBX|2|\xff\r"
    problem = ingest_problem(body)
    assert problem is not None and problem.details["segmentIndex"] == 4
    answer = build(body, problem)
    msa = segments(answer.text)["MSA"]
    err = segments(answer.text)["ERR"]
    assert msa[:3] == ["MSA", "AE", "X1"] and "0xff" in msa[3]  # MSA-3 for old receivers
    assert err[2] == "OBX^2^2^1"  # the second OBX (4th segment), field 2
    assert err[1] == "OBX^2^2^102&Data type error&HL70357"  # ERR-1 (ELD)


def test_reason_is_escaped_with_the_message_delimiters() -> None:
    received = ack.from_bytes(b"MSH#$~\\&#A#B#C#D#20260101##ADT$A01#1#P#2.5\r")
    error = ack.AckError("bad # in $ and ~ and \\ and & here\r\nnext", code=ErrorCode.DATA_TYPE_ERROR)
    text = ack.build_ack(received, "AE", error, control_id="Z", now=NOW)
    assert text.split("\r")[2].split("#")[8] == ("bad \\F\\ in \\S\\ and \\R\\ and \\E\\ and \\T\\ here next")


@pytest.mark.parametrize(
    ("problem", "code"),
    [
        (Problem(403, "forbidden", "source not allowed"), "AR"),
        (Problem(413, "too_large", "too large"), "AR"),
        (unavailable("hub unavailable"), "AR"),
        (Problem(503, "internal", "boom"), "AR"),
        (Problem(400, "source_required", "choose one"), "AR"),
    ],
)
def test_refusals_are_ar_with_err_207(problem: Problem, code: str) -> None:
    answer = build(MSG, problem)
    assert answer.code == code
    err = segments(answer.text)["ERR"]
    assert err[3] == "207^Application internal error^HL70357"
    assert err[5] == problem.code
    assert segments(answer.text)["MSA"][:3] == ["MSA", "AR", "CTRL-1"]


def test_batch_not_supported_is_ae_segment_sequence() -> None:
    problem = Problem(400, "batch_not_supported", "the body holds 2 messages; send one per request")
    answer = build(MSG, problem)
    assert answer.code == "AE" and segments(answer.text)["ERR"][3].startswith("100^")


def test_batch_with_a_rejected_message_is_ae_naming_it() -> None:
    missing = Er7Error(
        "message code (MSH-9.1) is missing",
        segment_index=1,
        segment_id="MSH",
        field="MSH-9.1",
        code=ErrorCode.REQUIRED_FIELD_MISSING,
    )
    rejected = Problem(
        400, "bad_message", str(missing), details=missing.to_dict(), condition=missing.condition
    )
    first = MemberOutcome(
        1, Status.ACCEPTED, IngestOutcome(MessageSummary("M1", "ADT^A01", "C1", "src"), False)
    )
    result = BatchOutcome("B1", (first, MemberOutcome(2, Status.REJECTED, rejected)), {}, ())
    answer = ack.acknowledge(ack.from_bytes(MSG), None, result=result)
    assert answer is not None and answer.code == "AE"
    err = segments(answer.text)["ERR"]
    assert "1 of 2 messages" in err[8] and "message 2: message code (MSH-9.1) is missing" in err[8]
    assert err[3] == "101^Required field missing^HL70357"
    duplicate = Problem(409, "duplicate", "this message was already accepted")
    result = BatchOutcome("B1", (first, MemberOutcome(2, Status.DUPLICATE, duplicate)), {}, ())
    accepted = ack.acknowledge(ack.from_bytes(MSG), None, result=result)
    assert accepted is not None and accepted.code == "AA"


def test_unreadable_msh_gets_defaults_and_empty_msa2(corpus_dir: Path) -> None:
    body = corpus_message("052-BAD_NOMSH-nover.hl7")
    problem = ingest_problem(body)
    answer = build(body, problem)
    msh, msa, err = (s.split("|") for s in answer.text.split("\r"))
    assert msh[1] == "^~\\&" and msh[8] == "ACK^^ACK" and msh[11] == "2.5"
    assert msa == ["MSA", "AE"]
    assert err[2] == "PID^1" and err[3].startswith("100^")


def test_bad_encoding_characters_still_echo_a_plain_control_id(corpus_dir: Path) -> None:
    body = corpus_message("053-BAD_ADT_A01-2.6.hl7")  # MSH-2 '^&&^', MSH-10 0123456789
    answer = build(body, ingest_problem(body))
    assert answer.code == "AE"
    msh, msa = (s.split("|") for s in answer.text.split("\r")[:2])
    assert msh[1] == "^~\\&" and msh[11] == "2.5"
    assert msa == ["MSA", "AE", "0123456789"]


def with_ack_types(accept: str, app: str) -> bytes:
    return MSH_ENHANCED.replace(b"{15}", accept.encode()).replace(b"{16}", app.encode())


MSH_ENHANCED = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|E1|P|2.5|||{15}|{16}\rPID|1\r"
REFUSED = unavailable("hub unavailable")
BAD = Problem(400, "bad_message", "bad", details={"reason": "bad", "segment": "PID", "segmentIndex": 2})


@pytest.mark.parametrize(
    ("accept", "app", "expected"),  # codes for (accepted, unreadable, refused); None: nothing sent
    [
        ("", "", ("AA", "AE", "AR")),  # original mode
        ("AL", "", ("CA", "CE", "CR")),
        ("AL", "AL", ("CA", "CE", "CR")),  # the commit ack answers; no deferred app ack
        ("ER", "", (None, "CE", "CR")),
        ("SU", "", ("CA", None, None)),
        ("SU", "AL", ("CA", "AE", "AR")),  # no commit ack on error: the application ack instead
        ("NE", "AL", ("AA", "AE", "AR")),  # no commit ack asked: the application ack, at once
        ("NE", "ER", (None, "AE", "AR")),
        ("NE", "SU", ("AA", None, None)),
        ("NE", "NE", (None, None, None)),
        ("", "AL", ("AA", "AE", "AR")),
    ],
)
def test_enhanced_mode_codes(accept: str, app: str, expected: tuple[str | None, ...]) -> None:
    received = ack.from_bytes(with_ack_types(accept, app))
    assert received.enhanced == bool(accept or app)
    codes = []
    for problem in (None, BAD, REFUSED):
        answer = ack.acknowledge(received, problem)
        codes.append(answer.code if answer else None)
    assert tuple(codes) == expected


def test_ne_ne_over_http_still_answers_a_commit_ack() -> None:
    received = ack.from_bytes(with_ack_types("NE", "NE"))
    answer = ack.acknowledge(received, None, always=True)
    assert answer is not None and answer.code == "CA"


def test_ack_is_written_in_the_message_charset() -> None:
    body = "MSH|^~\\&|MÜNCHEN|B|C|D|20260101||ADT^A01|1|P|2.5|||||DE|8859/1\rPID|1\r".encode("latin-1")
    answer = build(body)
    assert segments(answer.text)["MSH"][17] == "8859/1"
    assert answer.data.decode("latin-1").split("|")[4] == "MÜNCHEN"


# ---- HL7 over HTTP: Accept: application/hl7-v2 answers the ACK, same HTTP status ----


@pytest.fixture
def stack() -> Stack:
    return Stack()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/hl7-v2", "application/hl7-v2"),
        ("x-application/hl7-v2+er7", "x-application/hl7-v2+er7"),
        ("application/json, application/hl7-v2;q=0.5", None),
        ("application/hl7-v2, application/json;q=0.9", "application/hl7-v2"),
        ("*/*", None),
        ("text/html, application/hl7-v2;q=0.1", "application/hl7-v2"),
        ("application/hl7-v2;q=0", None),
        (None, None),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str | None) -> None:
    from gateway.routers.messages import ack_media_type

    assert ack_media_type(accept) == expected


def test_http_accepted_answers_aa_with_202(stack: Stack) -> None:
    response = stack.post(headers=HL7_ACCEPT)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/hl7-v2; charset=utf-8"
    msa = segments(response.text)["MSA"]
    assert msa == ["MSA", "AA", "CTRL-1"]
    [event] = stack.hub.published
    assert response.headers["Location"] == f"/v1/messages/{event.id}"


def test_http_duplicate_answers_aa_with_409(stack: Stack) -> None:
    first = stack.post()
    again = stack.post(headers=HL7_ACCEPT)
    assert again.status_code == 409
    assert segments(again.text)["MSA"][1] == "AA"
    assert again.headers["Location"] == f"/v1/messages/{first.json()['id']}"


def test_http_unreadable_answers_ae_with_400(stack: Stack) -> None:
    response = stack.post(b"PID|1||MRN1\r", headers={"Accept": "x-application/hl7-v2+er7"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    assert segments(response.text)["MSA"][1] == "AE"
    assert segments(response.text)["ERR"][2] == "PID^1"


@pytest.mark.parametrize(
    ("setup", "status"),
    [("too_large", 413), ("forbidden", 403), ("media", 415), ("hub", 503)],
)
def test_http_refusals_answer_ar_with_the_same_status(stack: Stack, setup: str, status: int) -> None:
    body, headers, claims = MSG, dict(HL7_ACCEPT), {}
    if setup == "too_large":
        body = MSG + b"NTE|1||" + b"x" * 5000 + b"\r"
    elif setup == "forbidden":
        claims = {"custom:write": ""}
    elif setup == "media":
        headers["Content-Type"] = "application/json"
    else:
        stack.hub.fail_next = 1
    response = stack.post(body, headers=headers, **claims)
    assert response.status_code == status
    assert segments(response.text)["MSA"] == ["MSA", "AR", "CTRL-1"]
    assert stack.hub.published == []
    if status == 503:
        assert response.headers["Retry-After"]


def test_http_without_hl7_accept_is_json_as_before(stack: Stack) -> None:
    response = stack.post(headers={"Accept": "application/json"})
    assert response.status_code == 202 and response.json()["status"] == "accepted"
