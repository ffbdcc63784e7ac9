"""The architecture's rules, enforced: import contracts (import-linter) and who may write what."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Calls that write S3 objects or DynamoDB items, and the only modules allowed to make them.
WRITE_CALLS = {
    "put_object",
    "delete_object",
    "copy_object",
    "upload_file",
    "upload_fileobj",
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
}
ALLOWED = {
    "lake/objects.py": {"put_object"},  # the lake bucket
    # the catalog table (update_item: a converter's one key, lake.catalog.DynamoCatalog.record_converted)
    "lake/catalog.py": {"put_item", "batch_write_item", "update_item"},
    "hub/payloads.py": {"put_object"},  # the artifact bucket (claim check), never the lake
    "gateway/dedup.py": {"put_item", "batch_write_item"},  # the dedup table, never the catalog
}


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def _write_calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in WRITE_CALLS:
                names.add(func.attr)
            # getattr(client, "put_item") style dispatch
            if isinstance(func, ast.Name) and func.id == "getattr":
                continue
        if isinstance(node, ast.Constant) and node.value in WRITE_CALLS:
            names.add(str(node.value))
    return names


def test_only_the_lake_writes_the_lake() -> None:
    offenders = {}
    for package in ("hub", "gateway", "workers", "lake", "hl7lake"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            calls = _write_calls(path) - ALLOWED.get(rel, set())
            if rel == "hl7lake/provision.py":
                continue  # creates resources, writes no data
            if calls:
                offenders[rel] = sorted(calls)
    assert offenders == {}


def test_the_write_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("s3.put_object(Bucket='lake', Key='k', Body=b'')\nddb._call('put_item')\n")
    assert _write_calls(sample) == {"put_object", "put_item"}


PRODUCTION = ("hub", "gateway", "workers", "lake", "hl7lake")


def _fake_classes(path: Path) -> list[str]:
    """In-memory fakes defined in one module (that production never imports tests/ is a contract of
    import-linter)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.startswith("Memory")]


def test_fakes_live_with_the_tests_never_in_production() -> None:
    offenders = {}
    for package in PRODUCTION:
        for path in (ROOT / package).rglob("*.py"):
            if found := _fake_classes(path):
                offenders[path.relative_to(ROOT).as_posix()] = found
    assert offenders == {}


def test_the_fakes_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("class MemoryThing: ...\n\n\nclass S3Thing: ...\n")
    assert _fake_classes(sample) == ["MemoryThing"]
