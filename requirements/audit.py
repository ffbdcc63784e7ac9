"""`make audit`: pip-audit against a lock file, with a verdict that never passes falsely.

pip-audit says "No known vulnerabilities found" and exits 0 even when it could look up none of the
packages (a vulnerability service that is unreachable, or a mirror without its data). Here:
- a known vulnerability fails the build (exit 1), naming the package and the fixed versions;
- a package that could not be looked up, or no answer at all, prints "NOT audited" (exit 0: being
  offline does not fail `make test`, but it is never reported as a pass);
- only when every package was looked up does it report them audited.

Usage: python requirements/audit.py requirements/runtime.lock
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Vulnerability ids accepted on purpose: none today. Add `"ID",  # why, and until when` to ignore one.
IGNORED: tuple[str, ...] = ()
UNREACHABLE = "pip-audit: vulnerability database unreachable — NOT audited"


def run_pip_audit(lock: str) -> tuple[list[dict[str, Any]] | None, str]:
    """pip-audit's per-package report (None when it produced none) and its stderr."""
    pip_audit = Path(sys.executable).with_name("pip-audit")
    ignores = [arg for vuln in IGNORED for arg in ("--ignore-vuln", vuln)]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [str(pip_audit), "-r", lock, "--require-hashes", "--disable-pip", "--progress-spinner"]
        command += ["off", "--format", "json", "--output", str(report), *ignores]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            return None, "timed out after 300 s"
        if not report.exists() or not report.stat().st_size:
            return None, done.stderr
        return list(json.loads(report.read_text())["dependencies"]), done.stderr


def verdict(dependencies: list[dict[str, Any]] | None, stderr: str = "") -> tuple[int, list[str]]:
    """The exit code and the lines to print."""
    if dependencies is None:
        detail = stderr.strip().splitlines()[-1:] or ["no report"]
        return 0, [f"{UNREACHABLE} ({detail[0][:200]})"]
    vulnerable = [
        f"pip-audit: {dep['name']} {dep['version']} {vuln['id']} "
        f"(fixed in: {', '.join(vuln.get('fix_versions') or []) or 'no release yet'})"
        for dep in dependencies
        for vuln in dep.get("vulns") or []
    ]
    if vulnerable:
        return 1, [*vulnerable, f"pip-audit: {len(vulnerable)} known vulnerabilities: FAILED"]
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    if skipped:
        example = f"{skipped[0]['name']}: {skipped[0]['skip_reason']}"
        return 0, [f"{UNREACHABLE} ({len(skipped)} of {len(dependencies)} packages not looked up; {example})"]
    return 0, [f"pip-audit: {len(dependencies)} packages audited, no known vulnerabilities"]


def main(argv: list[str]) -> int:
    lock = argv[1] if len(argv) > 1 else "requirements/runtime.lock"
    code, lines = verdict(*run_pip_audit(lock))
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
