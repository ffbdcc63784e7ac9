"""Whether the ports `hl7lake up` needs are free, and if not, who holds each one."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


# Here because the port check is the first to raise it; the supervisor, readiness and up raise it too.
class StackFailure(RuntimeError):
    """Why the stack cannot start or keep running, worded for the operator."""


@dataclass(frozen=True)
class PortClaim:
    what: str  # e.g. "gateway port"
    host: str
    port: int
    remedy: str  # the setting to change


def check_ports_free(claims: Iterable[PortClaim]) -> None:
    """Raises StackFailure naming every taken port, who holds it and the setting to change."""
    problems = [problem for claim in claims if (problem := _port_problem(claim)) is not None]
    if problems:
        raise StackFailure("\n".join(problems))


def _port_problem(claim: PortClaim) -> str | None:
    # A bind test, as the service will do it (SO_REUSEADDR, like uvicorn and werkzeug): a connect
    # test misses sockets that are bound but not listening, and addresses the host does not have.
    with socket.socket(socket.AF_INET6 if ":" in claim.host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((claim.host, claim.port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return f"{claim.what} {claim.port} on {claim.host}: cannot listen ({exc}); {claim.remedy}"
        else:
            return None
    holder = describe_port_holder(claim.port)
    return f"{claim.what} {claim.port} on {claim.host} is taken by {holder}: stop it or {claim.remedy}"


def describe_port_holder(port: int) -> str:
    """'pid 123 (command line)' for the process listening on a TCP port, as far as this user can see."""
    if not Path("/proc/net/tcp").exists():
        return _holder_from_lsof(port) or "another process"
    found = _socket_inode_and_uid(port)
    if found is None:
        return "another process"
    inode, uid = found
    pid = _pid_holding_socket(inode)
    if pid is None:
        return f"a process of user {_user_name(uid)} that this user cannot inspect"
    return f"pid {pid} ({_command_line(pid)})"


def _socket_inode_and_uid(port: int) -> tuple[str, int] | None:
    """The inode of the socket bound to the port (a listening one first) from /proc/net/tcp{,6}."""
    matches: list[tuple[bool, str, int]] = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, uid, inode = fields[1], fields[3], fields[7], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and inode != "0":
                matches.append((state == "0A", inode, int(uid)))  # 0A: LISTEN
    if not matches:
        return None
    _, inode, owner = max(matches, key=lambda match: match[0])
    return inode, owner


def _pid_holding_socket(inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:  # another user's process, or one that just exited
            continue
    return None


def _command_line(pid: int, limit: int = 160) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "command line unknown"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _holder_from_lsof(port: int) -> str | None:
    """macOS and other systems without /proc: lsof names the pid and command."""
    lsof = shutil.which("lsof")
    if lsof is None:
        return None
    try:
        out = subprocess.run(
            [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = {line[0]: line[1:] for line in reversed(out.splitlines()) if line}
    if "p" not in fields:
        return None
    return f"pid {fields['p']} ({fields.get('c', 'command unknown')})"
