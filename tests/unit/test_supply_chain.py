"""Supply chain: pinned, hash-checked dependencies everywhere, and an audit that never passes falsely."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ;.*)? \\$", re.M)


def name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]).lower()


def pins(lock: str) -> dict[str, str]:
    return {name(n): v for n, v in PIN.findall((LOCKS / lock).read_text())}


def audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit", LOCKS / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for lock in ("runtime.lock", "emulator.lock", "dev.lock"):
        entries = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text())
        packages = [entry for entry in entries if not entry.startswith("#")]
        assert packages, lock
        for entry in packages:
            assert re.match(r"[\w.-]+==\S+", entry) and "--hash=sha256:" in entry, (lock, entry[:80])


def test_the_locks_cover_pyproject_and_agree_with_each_other() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, emulator, dev = pins("runtime.lock"), pins("emulator.lock"), pins("dev.lock")
    assert {name(r) for r in project["dependencies"]} <= set(runtime)
    assert {name(r) for r in project["optional-dependencies"]["emulator"]} <= set(emulator)
    assert {name(r) for r in project["optional-dependencies"]["dev"]} <= set(dev)
    assert {"pip-audit", "uv"} <= set(dev)
    for other in (emulator, dev):
        assert {n: other[n] for n in runtime} == runtime  # one version of each package everywhere


def test_the_image_installs_from_the_runtime_lock_with_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert "pip install --require-hashes -r requirements/runtime.lock" in installs
    assert all("--require-hashes" in line or "--no-deps" in line for line in installs), installs
    assert dockerfile.index("runtime.lock") < dockerfile.index("COPY hub")  # its own cached layer


def test_make_installs_from_the_locks_and_audits_in_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements/emulator.lock" in makefile  # make up
    assert "--require-hashes -r requirements/dev.lock" in makefile  # make test
    assert re.search(r"^test:.*\baudit\b", makefile, re.M)
    assert re.search(r"^lock:", makefile, re.M) and "--generate-hashes" in makefile


def test_containers_log_json() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("gateway", "mllp", "er7-staging", "lake-writer"):
        assert compose["services"][service]["environment"]["HL7LAKE_LOG_FORMAT"] == "json", service


def dep(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "version": "1.0", **fields}


def test_audit_verdicts_are_never_a_false_pass() -> None:
    verdict = audit_module().verdict
    clean = [dep("a", vulns=[]), dep("b", vulns=[])]
    assert verdict(clean) == (0, ["pip-audit: 2 packages audited, no known vulnerabilities"])

    code, lines = verdict([dep("a", vulns=[]), {"name": "b", "skip_reason": "Dependency not found on PyPI"}])
    assert code == 0 and "NOT audited" in lines[0] and "1 of 2" in lines[0]

    code, lines = verdict(None, "requests.exceptions.ConnectionError: Max retries exceeded\n")
    assert code == 0 and "unreachable — NOT audited" in lines[0] and "ConnectionError" in lines[0]

    found = [dep("a", vulns=[{"id": "PYSEC-1", "fix_versions": ["1.1"]}]), dep("b", vulns=[])]
    code, lines = verdict(found)
    assert code == 1 and "a 1.0 PYSEC-1 (fixed in: 1.1)" in lines[0] and "FAILED" in lines[-1]
