"""Save moto's in-memory backends to one file and restore them on the next start.

A snapshot is a pickle of every moto backend in use (S3, SQS, SNS, DynamoDB, Cognito, CloudFormation,
IAM, ...), all in one `pickle.dumps` so that objects shared between services (CloudFormation stacks
hold the queues, tables and pools they created) stay shared. Measured against request replay and
API export in docs/decisions/0008. File layout, so the header can be checked before unpickling:

    hl7lake-moto-state 1\\n
    {"moto_version": ..., "python_version": ..., "sha256": <of the payload>, ...}\\n
    <pickle payload>
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import io
import json
import logging
import os
import pickle
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moto
import moto.backends
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.core.base_backend import BackendDict

log = logging.getLogger("hl7lake.emulator")

MAGIC = b"hl7lake-moto-state 1\n"
SNAPSHOT_NAME = "moto-state.bin"
# moto's own bookkeeping (recorder, state manager): not user data.
SKIPPED_SERVICES = frozenset({"moto_api"})
PICKLE_ATTEMPTS = 5

BackendState = dict[str, dict[str, dict[str, Any]]]


class UnreadableSnapshotError(Exception):
    pass


def fresh_lock() -> tuple[Callable[[], Any], tuple[()]]:
    return threading.Lock, ()


def fresh_rlock() -> tuple[Callable[[], Any], tuple[()]]:
    return threading.RLock, ()


def fresh_condition() -> tuple[Callable[[], Any], tuple[()]]:
    return threading.Condition, ()


def private_key_from_pem(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def private_key_as_pem(key: Any) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_key_from_pem, (pem,)


@functools.cache
def rsa_private_key_type() -> type:
    """cryptography's concrete (Rust) RSA key class, which only an instance reveals."""
    return type(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 (never used)


@functools.cache
def backend_dispatch_table() -> dict[type, Callable[[Any], Any]]:
    """How to pickle what moto's backends hold but pickle cannot: locks (SQS queues hold a Condition)
    become new unlocked locks; Cognito user pools' RSA signing keys travel as PEM. moto's S3 keys
    already pickle their spooled temp files through FakeKey.__getstate__."""
    return {
        **copyreg.dispatch_table,
        type(threading.Lock()): lambda _lock: fresh_lock(),
        type(threading.RLock()): lambda _lock: fresh_rlock(),
        threading.Condition: lambda _condition: fresh_condition(),
        rsa_private_key_type(): private_key_as_pem,
    }


def dump_backends(state: BackendState, buffer: io.BytesIO) -> None:
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = backend_dispatch_table()
    pickler.dump(state)


def backends_in_use() -> BackendState:
    state: BackendState = {}
    for backend_dict in list(BackendDict._instances):  # type: ignore[misc]
        if backend_dict.service_name in SKIPPED_SERVICES:
            continue
        state[backend_dict.service_name] = {
            account: dict(dict.items(regions)) for account, regions in list(dict.items(backend_dict))
        }
    return state


def pickle_backends() -> bytes:
    """Pickles the live backends. Requests may be running meanwhile: a dict they resize mid-pickle
    raises RuntimeError, and we try again (pickling holds the GIL almost throughout, so this is rare)."""
    for attempt in range(1, PICKLE_ATTEMPTS + 1):
        buffer = io.BytesIO()
        try:
            dump_backends(backends_in_use(), buffer)
        except RuntimeError:
            if attempt == PICKLE_ATTEMPTS:
                raise
            time.sleep(0.05)
            continue
        return buffer.getvalue()
    raise AssertionError("unreachable")


def install_backends(state: BackendState) -> None:
    for service, accounts in state.items():
        backend_dict = moto.backends.get_backend(service)  # type: ignore[call-overload]
        for account, regions in accounts.items():
            account_backends = backend_dict[account]
            for region, backend in regions.items():
                account_backends[region] = backend


def header_for(payload: bytes) -> dict[str, Any]:
    return {
        "moto_version": moto.__version__,
        "python_version": platform.python_version(),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "payload_bytes": len(payload),
    }


def write_atomically(path: Path, parts: list[bytes]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as file:
        for part in parts:
            file.write(part)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_snapshot(path: Path) -> BackendState:
    with path.open("rb") as file:
        if file.readline() != MAGIC:
            raise UnreadableSnapshotError("not an hl7lake emulator snapshot (bad first line)")
        try:
            header = json.loads(file.readline())
        except ValueError as exc:
            raise UnreadableSnapshotError(f"unreadable header ({exc})") from exc
        if not isinstance(header, dict) or "moto_version" not in header:
            raise UnreadableSnapshotError("header names no moto version")
        if header["moto_version"] != moto.__version__:
            raise UnreadableSnapshotError(
                f"saved by moto {header['moto_version']}, this is moto {moto.__version__}"
            )
        payload = file.read()
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise UnreadableSnapshotError("checksum mismatch (truncated or damaged file)")
    try:
        state = pickle.loads(payload)  # noqa: S301 (our own file, in our own state dir)
    except Exception as exc:
        raise UnreadableSnapshotError(f"cannot unpickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise UnreadableSnapshotError("payload is not a backend map")
    return state


@dataclass
class SnapshotStore:
    directory: Path

    @property
    def path(self) -> Path:
        return self.directory / SNAPSHOT_NAME

    def save(self) -> None:
        started = time.perf_counter()
        payload = pickle_backends()
        pickled = time.perf_counter()
        header = json.dumps(header_for(payload)).encode() + b"\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, [MAGIC, header, payload])
        log.info(
            "emulator state saved to %s: %.1f MB, pickle %.0f ms, write %.0f ms",
            self.path,
            len(payload) / 1e6,
            (pickled - started) * 1000,
            (time.perf_counter() - pickled) * 1000,
        )

    def restore(self) -> bool:
        """Loads the snapshot into moto's backends; True if there was one. A snapshot that cannot be
        loaded is moved aside (never deleted) and the emulator starts empty, saying so loudly."""
        if not self.path.exists():
            log.info("no emulator state in %s: starting empty", self.directory)
            return False
        started = time.perf_counter()
        try:
            state = read_snapshot(self.path)
        except (OSError, UnreadableSnapshotError) as exc:
            self.move_aside(str(exc))
            return False
        try:
            install_backends(state)
        except Exception as exc:
            BackendDict.reset()  # drop whatever was half installed
            self.move_aside(f"cannot install it ({type(exc).__name__}: {exc})")
            return False
        log.info(
            "emulator state restored from %s: %s in %.0f ms",
            self.path,
            ", ".join(sorted(state)),
            (time.perf_counter() - started) * 1000,
        )
        return True

    def move_aside(self, reason: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        os.replace(self.path, aside)
        log.error(
            "EMULATOR STATE NOT RESTORED: %s cannot be loaded: %s. Moved it to %s; starting EMPTY "
            "(re-provision with `hl7lake up`, or restore that file with a matching moto version)",
            self.path,
            reason,
            aside,
        )
