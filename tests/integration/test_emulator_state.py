"""Our moto launcher (hl7lake.emulator_server): state across restarts, SQS semantics under its patches,
and the pieces that need no server (patch guards, snapshot files)."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import moto.core.utils as moto_utils
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt
from moto.sqs.models import Queue, SQSBackend

from hl7lake.emulator import EMULATOR_ENV, free_port, start_emulator, stop_emulator
from hl7lake.emulator_server import sqs_patches
from hl7lake.emulator_server.snapshot import (
    MAGIC,
    SNAPSHOT_NAME,
    SnapshotStore,
    UnreadableSnapshotError,
    dump_backends,
    header_for,
    read_snapshot,
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


class Emulator:
    def __init__(self, port: int, log_file: Path, state_dir: Path | None) -> None:
        self.port = port
        self.log_file = log_file
        self.state_dir = state_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Emulator:
        self.process = start_emulator(HOST, self.port, self.log_file, self.state_dir)
        return self

    def stop(self) -> None:
        if self.process:
            stop_emulator(self.process, timeout=20)
            self.process = None

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=EMULATOR_ENV["AWS_DEFAULT_REGION"],
            aws_access_key_id=EMULATOR_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_ENV["AWS_SECRET_ACCESS_KEY"],
        )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Callable[[Path | None], Emulator]]:
    started: list[Emulator] = []

    def make(state_dir: Path | None) -> Emulator:
        emulator = Emulator(free_port(), tmp_path / f"emulator-{len(started)}.log", state_dir)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


def unique(kind: str) -> str:
    return f"t-{kind}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


def create_user(cognito: Any) -> tuple[str, str, str, dict[str, str]]:
    pool_id = cognito.create_user_pool(PoolName=unique("pool"))["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="t", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    username = f"{unique('user')}@example.test"
    cognito.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=username, Password="Pa55word!x", Permanent=True
    )
    tokens = cognito.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": "Pa55word!x"},
    )["AuthenticationResult"]
    return pool_id, client_id, username, tokens


def verify_with_jwks(emulator: Emulator, pool_id: str, token: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(
        f"{emulator.endpoint}/{pool_id}/.well-known/jwks.json", timeout=5
    ) as response:
        jwks = json.load(response)
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    return dict(
        jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False, "verify_at_hash": False})
    )


def test_state_survives_a_graceful_restart(
    emulators: Callable[[Path | None], Emulator], tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    first = emulators(state_dir).start()
    s3, ddb, sqs, cognito = (first.client(s) for s in ("s3", "dynamodb", "sqs", "cognito-idp"))
    bucket, table, queue = unique("bucket"), unique("table"), unique("queue")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="raw/1.hl7", Body=b"MSH|^~\\&|test")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "m1"}, "status": {"S": "parsed"}})
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="waiting")
    pool_id, client_id, username, tokens = create_user(cognito)
    sub_before = cognito.admin_get_user(UserPoolId=pool_id, Username=username)["UserAttributes"]
    first.stop()
    assert (state_dir / SNAPSHOT_NAME).is_file()

    second = emulators(state_dir)
    second.port = first.port  # same endpoint, as `make up` uses
    second.start()
    s3, ddb, sqs, cognito = (second.client(s) for s in ("s3", "dynamodb", "sqs", "cognito-idp"))
    assert s3.get_object(Bucket=bucket, Key="raw/1.hl7")["Body"].read() == b"MSH|^~\\&|test"
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "m1"}})["Item"]["status"] == {"S": "parsed"}
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in messages] == ["waiting"]
    assert cognito.admin_get_user(UserPoolId=pool_id, Username=username)["UserAttributes"] == sub_before
    # a token issued before the restart still verifies, and Cognito still knows its access token
    claims = verify_with_jwks(second, pool_id, tokens["IdToken"])
    assert claims["cognito:username"] == username
    assert claims["aud"] == client_id
    assert cognito.get_user(AccessToken=tokens["AccessToken"])["Username"] == username
    assert "emulator state restored" in second.log()


def saved_buckets(state_dir: Path) -> set[str]:
    try:
        state = read_snapshot(state_dir / SNAPSHOT_NAME)
    except (OSError, UnreadableSnapshotError):
        return set()
    return {
        name for backend in state.get("s3", {}).get("123456789012", {}).values() for name in backend.buckets
    }


def test_a_crash_loses_only_what_changed_since_the_last_periodic_snapshot(
    emulators: Callable[[Path | None], Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HL7LAKE_EMULATOR_SAVE_INTERVAL", "0.2")
    state_dir = tmp_path / "state"
    first = emulators(state_dir).start()
    bucket = unique("bucket")
    first.client("s3").create_bucket(Bucket=bucket)
    wait_for(lambda: bucket in saved_buckets(state_dir))
    assert first.process is not None
    first.process.kill()  # no graceful stop: only the periodic snapshot is left
    first.process.wait()
    first.process = None
    second = emulators(state_dir).start()
    assert [b["Name"] for b in second.client("s3").list_buckets()["Buckets"]] == [bucket]


def test_an_unreadable_snapshot_is_moved_aside_and_the_emulator_starts_empty(
    emulators: Callable[[Path | None], Emulator], tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / SNAPSHOT_NAME).write_bytes(b"hl7lake-moto-state 1\n{}\n\x80garbage")
    emulator = emulators(state_dir).start()
    assert emulator.client("s3").list_buckets()["Buckets"] == []
    aside = list(state_dir.glob(f"{SNAPSHOT_NAME}.unreadable-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().endswith(b"\x80garbage")
    assert not (state_dir / SNAPSHOT_NAME).exists()
    assert "EMULATOR STATE NOT RESTORED" in emulator.log()
    emulator.stop()
    assert (state_dir / SNAPSHOT_NAME).is_file(), "the next stop saves a fresh snapshot"


@pytest.fixture(scope="module")
def patched_sqs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    emulator = Emulator(free_port(), tmp_path_factory.mktemp("sqs") / "emulator.log", None).start()
    try:
        yield emulator.client("sqs")
    finally:
        emulator.stop()


def receive(sqs: Any, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"], **kwargs
    )
    return list(response.get("Messages", []))


def test_visibility_timeout_hides_a_received_message_and_counts_receives(patched_sqs: Any) -> None:
    url = patched_sqs.create_queue(QueueName=unique("vis"))["QueueUrl"]
    patched_sqs.send_message(QueueUrl=url, MessageBody="m")
    first = receive(patched_sqs, url, VisibilityTimeout=1)
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in first] == ["1"]
    assert receive(patched_sqs, url) == []
    again = wait_for(lambda: receive(patched_sqs, url, VisibilityTimeout=1), timeout=5)
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in again] == ["2"]
    patched_sqs.delete_message(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"])
    time.sleep(1.1)
    assert receive(patched_sqs, url) == []


def test_a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue(patched_sqs: Any) -> None:
    dlq_url = patched_sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = patched_sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = patched_sqs.create_queue(QueueName=unique("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    patched_sqs.send_message(QueueUrl=url, MessageBody="poison")
    assert len(receive(patched_sqs, url, VisibilityTimeout=0)) == 1
    assert len(receive(patched_sqs, url, VisibilityTimeout=0)) == 1
    assert receive(patched_sqs, url, VisibilityTimeout=0) == []  # third receive redrives instead
    dead = receive(patched_sqs, dlq_url)
    assert [m["Body"] for m in dead] == ["poison"]


def test_an_expired_message_is_not_delivered(patched_sqs: Any) -> None:
    url = patched_sqs.create_queue(QueueName=unique("ret"), Attributes={"MessageRetentionPeriod": "1"})[
        "QueueUrl"
    ]
    patched_sqs.send_message(QueueUrl=url, MessageBody="fresh")
    assert [m["Body"] for m in receive(patched_sqs, url, VisibilityTimeout=0)] == ["fresh"]
    time.sleep(1.2)
    assert receive(patched_sqs, url, VisibilityTimeout=0) == []


def test_fifo_keeps_order_and_holds_a_group_while_a_message_is_in_flight(patched_sqs: Any) -> None:
    url = patched_sqs.create_queue(
        QueueName=unique("order") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for body in ("a1", "a2", "a1"):  # the second "a1" is a duplicate within 5 minutes
        patched_sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="a")
    patched_sqs.send_message(QueueUrl=url, MessageBody="b1", MessageGroupId="b")
    first = receive(patched_sqs, url, VisibilityTimeout=30)
    assert [m["Body"] for m in first] == ["a1", "a2", "b1"]
    assert receive(patched_sqs, url) == []


# Without a server: patch guards, equivalence with moto's own code, snapshot files.

ORIGINAL_RETENTION_CHECK = SQSBackend.is_message_valid_based_on_retention_period


def write_snapshot(path: Path, payload: bytes, **header_changes: Any) -> None:
    header = {**header_for(payload), **header_changes}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)


def test_the_patch_guard_accepts_the_installed_moto() -> None:
    sqs_patches.check_sqs_patch_targets()


def test_the_patch_guard_refuses_a_changed_moto_function(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(self: Any, queue_name: str, message: Any) -> bool:
        return True

    monkeypatch.setattr(SQSBackend, "is_message_valid_based_on_retention_period", changed)
    with pytest.raises(sqs_patches.IncompatibleMotoError, match="re-check"):
        sqs_patches.check_sqs_patch_targets()


def test_the_clock_patch_reads_the_same_time_as_moto() -> None:
    assert abs(sqs_patches.unix_time() - moto_utils.unix_time()) < 0.05
    assert abs(sqs_patches.unix_time_millis() - moto_utils.unix_time_millis()) < 50


@pytest.mark.parametrize("age_seconds", [0, 59, 61, 3600])
def test_the_retention_check_agrees_with_moto(age_seconds: int) -> None:
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("retention", MessageRetentionPeriod="60")
    message = backend.send_message("retention", "body")
    message.sent_timestamp = int((time.time() - age_seconds) * 1000)  # type: ignore[assignment]
    expected = ORIGINAL_RETENTION_CHECK(backend, "retention", message)
    assert sqs_patches.is_message_valid_based_on_retention_period(backend, "retention", message) is expected
    assert expected is (age_seconds < 60)


def test_locks_and_rsa_keys_survive_pickling() -> None:
    queue = Queue("pickled", "us-east-1", "123456789012")  # type: ignore[abstract]
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    buffer = io.BytesIO()
    dump_backends({"sqs": {"123456789012": {"us-east-1": [queue, key, threading.Lock()]}}}, buffer)
    restored_queue, restored_key, lock = pickle.loads(buffer.getvalue())["sqs"]["123456789012"]["us-east-1"]
    with restored_queue._messages_lock:
        restored_queue._messages_lock.notify_all()
    assert restored_key.private_numbers() == key.private_numbers()
    assert lock.acquire(blocking=False)


def test_a_snapshot_from_another_moto_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    write_snapshot(path, pickle.dumps({}), moto_version="4.0.0")
    with pytest.raises(UnreadableSnapshotError, match=f"moto 4.0.0, this is moto {moto.__version__}"):
        read_snapshot(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PK\x03\x04 not ours", "bad first line"),
        (MAGIC + b"{not json\n", "unreadable header"),
    ],
)
def test_a_foreign_file_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / SNAPSHOT_NAME
    path.write_bytes(content)
    with pytest.raises(UnreadableSnapshotError, match=reason):
        read_snapshot(path)


def test_a_truncated_snapshot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    payload = pickle.dumps({"s3": {}})
    write_snapshot(path, payload)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(UnreadableSnapshotError, match="checksum"):
        read_snapshot(path)


def test_restore_moves_an_unreadable_snapshot_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SnapshotStore(tmp_path)
    write_snapshot(store.path, pickle.dumps({}), moto_version="0.0.1")
    assert store.restore() is False
    assert not store.path.exists()
    [aside] = tmp_path.glob(f"{SNAPSHOT_NAME}.unreadable-*")
    assert b'"moto_version": "0.0.1"' in aside.read_bytes()
    assert "EMULATOR STATE NOT RESTORED" in caplog.text
    assert "0.0.1" in caplog.text


def test_restore_without_a_snapshot_starts_empty(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path / "absent").restore() is False
