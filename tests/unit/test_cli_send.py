"""`hl7lake send` against the gateway app with in-memory services (real token checks) and fakes."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import pytest

from hl7lake.cli import build_parser
from hl7lake.files import collect_files
from hl7lake.outcomes import FileOutcome
from hl7lake.progress import Progress
from hl7lake.send import run_send
from hl7lake.send_http import HttpSender
from tests.unit.test_gateway_api import Stack

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "hl7-corpus" / "messages"
GOOD = ("006-ADT_A01-2.3.hl7", "050-ADT_A01-2.5.hl7", "016-VXU_V04-2.5.1.hl7")
BAD = "072-BAD_NOMSH-nover.hl7"
BATCH = "044-BATCH_ADT_A04-2.5.hl7"


def corpus_folder(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "outbox"
    (folder / "nested").mkdir(parents=True)
    for index, name in enumerate(names):
        shutil.copy(CORPUS / name, (folder / "nested" if index % 2 else folder) / name)
    return folder


def sender_for(stack: Stack) -> HttpSender:
    stack.client.headers["Authorization"] = stack.auth()["Authorization"]
    return HttpSender(stack.client, sleep=lambda s: None)


def send(paths: list[str], sender: HttpSender, concurrency: int = 4) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_send(paths, sender, concurrency=concurrency, out=out, err=err, tty=False)
    return code, out.getvalue(), err.getvalue()


def counts(summary: str) -> dict[str, int]:
    rows = [line.split() for line in summary.split("\n\n")[0].splitlines()[2:]]
    return {name: int(n) for name, n in rows}


def test_folder_of_good_files_is_all_accepted_and_exit_0(tmp_path: Path) -> None:
    stack = Stack()
    code, out, err = send([str(corpus_folder(tmp_path, *GOOD))], sender_for(stack))
    assert code == 0, out + err
    assert counts(out) == {"accepted": 3, "duplicate": 0, "rejected": 0, "files": 3}
    assert len(stack.hub.published) == 3
    assert sorted(line.split("/")[-1] for line in err.splitlines()) == sorted(
        f"{n}: 1 accepted" for n in GOOD
    )  # one plain line per file when stderr is not a terminal


def test_rejected_file_fails_the_run_and_its_reason_is_grouped(tmp_path: Path) -> None:
    code, out, _ = send([str(corpus_folder(tmp_path, *GOOD, BAD))], sender_for(Stack()))
    assert code == 1
    assert counts(out) == {"accepted": 3, "duplicate": 0, "rejected": 1, "files": 4}
    [reason_row] = out.split("\n\n")[1].splitlines()[2:]
    assert reason_row.startswith("1") and "400 " in reason_row and BAD in reason_row


def test_duplicates_are_counted_but_not_failures(tmp_path: Path) -> None:
    stack = Stack()
    folder = corpus_folder(tmp_path, *GOOD)
    assert send([str(folder)], sender_for(stack))[0] == 0
    code, out, _ = send([str(folder / "*.hl7")], sender_for(stack))  # a glob: the top-level files
    assert code == 0
    assert counts(out) == {"accepted": 0, "duplicate": 2, "rejected": 0, "files": 2}


def test_batch_file_is_one_body_counted_message_by_message(tmp_path: Path) -> None:
    stack = Stack()
    assert (CORPUS / BATCH).read_bytes().count(b"MSH|") == 3
    code, out, _ = send([str(CORPUS / BATCH)], sender_for(stack))
    assert code == 0  # its third message repeats its first byte for byte: a duplicate, not a failure
    assert counts(out) == {"accepted": 2, "duplicate": 1, "rejected": 0, "files": 1}


def test_nothing_to_send_is_exit_2(tmp_path: Path) -> None:
    code, _, err = send([str(tmp_path / "none*.hl7")], sender_for(Stack()))
    assert code == 2 and "nothing matches" in err


def fake_gateway(answers: list[httpx.Response]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return httpx.Client(base_url="http://gw", transport=httpx.MockTransport(handle)), seen


BUSY = {"error": "in_progress", "message": "being accepted", "id": "X"}


def test_503_is_retried_after_its_retry_after(tmp_path: Path) -> None:
    path = tmp_path / "a.hl7"
    path.write_bytes((CORPUS / GOOD[0]).read_bytes())
    client, seen = fake_gateway(
        [
            httpx.Response(503, json=BUSY, headers={"Retry-After": "2"}),
            httpx.Response(202, json={"id": "X", "status": "accepted", "duplicate": False}),
        ]
    )
    waits: list[float] = []
    outcome = HttpSender(client, sleep=waits.append).send(path)
    assert outcome.counts == {"accepted": 1} and waits == [2.0] and len(seen) == 2
    assert seen[0].headers["Content-Type"] == "application/hl7-v2" and seen[1].content == path.read_bytes()


def test_503_counts_as_rejected_when_retries_run_out(tmp_path: Path) -> None:
    path = tmp_path / "a.hl7"
    path.write_bytes(b"MSH|^~\\&|x")
    busy = [httpx.Response(503, json=BUSY, headers={"Retry-After": "60"}) for _ in range(3)]
    client, seen = fake_gateway(busy)
    waits: list[float] = []
    outcome = HttpSender(client, retries=2, sleep=waits.append).send(path)
    assert outcome.counts == {"rejected": 1} and len(seen) == 3
    assert waits == [10.0, 10.0]  # bounded
    assert outcome.reasons == ("503 in_progress: being accepted",)


def test_progress_line_has_rate_and_eta() -> None:
    ticks = iter([0.0, 2.0, 2.0])
    stream = io.StringIO()
    progress = Progress(4, stream, tty=True, clock=lambda: next(ticks))
    progress.advance(FileOutcome("a", __import__("collections").Counter({"accepted": 1})))
    assert stream.getvalue() == "\r[######------------------] 1/4 files  0.5/s  ETA 6s"


def test_collect_files_folders_globs_and_repeats(tmp_path: Path) -> None:
    folder = corpus_folder(tmp_path, *GOOD)
    (folder / ".hidden").write_text("x")
    files, missing = collect_files([str(folder), str(folder / GOOD[0]), "nope/*.hl7"])
    assert sorted(p.name for p in files) == sorted(GOOD) and missing == ["nope/*.hl7"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["send", "a"], {"mllp": None, "concurrency": 4, "url": "http://127.0.0.1:8080"}),
        (["send", "a", "b", "--mllp", "--concurrency", "8"], {"mllp": "127.0.0.1:2575", "concurrency": 8}),
        (["send", "a", "--mllp", "h:1", "--token", "T"], {"mllp": "h:1", "token": "T"}),
        (["send", "a"], {"user": "sender@hospital-a.example", "token": None}),
    ],
)
def test_send_command_line(argv: list[str], expected: dict[str, object]) -> None:
    args = vars(build_parser().parse_args(argv))
    assert {k: args[k] for k in expected} == expected
