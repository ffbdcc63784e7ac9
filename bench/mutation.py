"""`make mutation`: one-line changes to the core rules, each tried alone against the fast unit tests.

A fixed, hand-written list (deterministic, no extra dependency): each mutation replaces one exact piece
of source text in a temporary copy of the project, runs the unit tests that guard that rule, and
counts the mutant as caught when they fail. Prints every surviving mutant and the score; exits 1 when
any survives. A mutation whose source text is no longer found is reported as stale (the code moved:
update the list), never counted as caught.

    .venv/bin/python bench/mutation.py            # all mutations
    .venv/bin/python bench/mutation.py -k catalog # those whose id contains "catalog"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNIT = "tests/unit"
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", ".run", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__", "*.egg-info"
)
TIMEOUT = 180  # seconds per mutant: a hang counts as caught only when the tests time out themselves

# The unit test files that guard each rule (files missing from the tree are left out, so new test
# files are picked up by name as they land).
CATALOG = ["test_catalog_contract.py", "test_adapter_contracts.py", "test_pipeline_units.py"]
DEDUP = ["test_dedup_protocol.py", "test_adapter_contracts.py", "test_gateway_api.py"]
LAYOUT = ["test_layout_keys.py", "test_pipeline_units.py", "test_adapter_contracts.py"]
ABAC = ["test_read_abac.py", "test_gateway_api.py"]
AUTH = ["test_clock_skew.py", "test_auth.py", "test_token_headers.py", "test_token_cache.py"]


@dataclass(frozen=True)
class Mutation:
    id: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str


M = Mutation
MUTATIONS: list[Mutation] = [
    # lake/catalog.py and its fake tests/fakes/lake.py: the out-of-order rules, on DynamoDB and in memory
    M(
        "catalog-dynamo-received-overwrites",
        "lake/catalog.py",
        'f"attribute_not_exists(#id) OR (#s = :received{_NO_CONVERSION})"',
        "None",
        tuple(CATALOG),
        "DynamoCatalog: a late `received` overwrites parsed/failed",
    ),
    M(
        "catalog-dynamo-failed-over-parsed",
        "lake/catalog.py",
        '"attribute_not_exists(#id) OR #s = :received OR #s = :failed",',
        "None,",
        tuple(CATALOG),
        "DynamoCatalog: `failed` overrides `parsed`",
    ),
    M(
        "catalog-memory-received-overwrites",
        "tests/fakes/lake.py",
        "over=(None, RECEIVED), converted=False)",
        "over=None, converted=False)",
        tuple(CATALOG),
        "MemoryCatalog: a late `received` overwrites parsed/failed",
    ),
    M(
        "catalog-memory-failed-over-parsed",
        "tests/fakes/lake.py",
        "over=(None, RECEIVED, FAILED))",
        'over=(None, RECEIVED, FAILED, "parsed"))',
        tuple(CATALOG),
        "MemoryCatalog: `failed` overrides `parsed`",
    ),
    M(
        "catalog-dynamo-batch-over-completed",
        "lake/catalog.py",
        'self._put(item, "attribute_not_exists(#id) OR #s = :processing")',
        "self._put(item)",
        tuple(CATALOG),
        "DynamoCatalog: a late `processing` batch record overwrites `completed`",
    ),
    # gateway/dedup.py: claims
    M(
        "dedup-no-stale-takeover",
        "gateway/dedup.py",
        'held["inProgressUntil"] < now:',
        'held["inProgressUntil"] < now and False:',
        tuple(DEDUP),
        "a crashed front door's claim is never taken over (fake and DynamoDB)",
    ),
    M(
        "dedup-takeover-too-early",
        "gateway/dedup.py",
        'held["inProgressUntil"] < now:',
        'held["inProgressUntil"] < now + 3600:',
        tuple(DEDUP),
        "a claim still in progress is taken over (two front doors process one message)",
    ),
    M(
        "dedup-memory-expired-never-reclaimed",
        "tests/fakes/dedup.py",
        'if record is None or record["expiresAt"] < now:',
        "if record is None:",
        tuple(DEDUP),
        "MemoryDedupStore: an expired record still answers duplicate",
    ),
    # lake/layout.py: S3 keys
    M(
        "layout-no-length-cap",
        "lake/layout.py",
        'return cleaned[:64] or "unknown"',
        'return cleaned or "unknown"',
        tuple(LAYOUT),
        "a partition value longer than 64 characters kept whole",
    ),
    M(
        "layout-id-not-sanitized",
        "lake/layout.py",
        'f"{sanitize(message_id)}.{suffix or _SUFFIX[area]}"',
        'f"{message_id}.{suffix or _SUFFIX[area]}"',
        tuple(LAYOUT),
        "the message id written into the key as sent",
    ),
    M(
        "layout-dots-kept",
        "lake/layout.py",
        'cleaned = _UNSAFE.sub("_", part).strip("._")',
        'cleaned = _UNSAFE.sub("_", part)',
        tuple(LAYOUT),
        "'..' and leading dots kept in a partition value",
    ),
    M(
        "layout-date-not-cut",
        "lake/layout.py",
        "date = received_at[:10]",
        "date = received_at",
        tuple(LAYOUT),
        "the date partition holds the whole timestamp",
    ),
    # gateway/routers/messages.py: ABAC on the read API
    M(
        "abac-get-read-or-write",
        "gateway/routers/messages.py",
        'item.get("source") not in principal.read:',
        'item.get("source") not in (*principal.read, *principal.write):',
        tuple(ABAC),
        "a sender may read a message from a source it may only write",
    ),
    M(
        "abac-list-read-or-write",
        "gateway/routers/messages.py",
        "services.reader.page(principal.read,",
        "services.reader.page((*principal.read, *principal.write),",
        tuple(ABAC),
        "the list shows messages of sources the token may only write",
    ),
    # token clock skew
    M(
        "skew-default-a-day",
        "gateway/config.py",
        "clock_skew_seconds: int = 30",
        "clock_skew_seconds: int = 86400",
        tuple(AUTH),
        "tokens expired a day ago still accepted",
    ),
    M(
        "skew-verifier-default-a-day",
        "gateway/auth.py",
        "leeway: int = 30,",
        "leeway: int = 86400,",
        tuple(AUTH),
        "the verifier's own default leeway a day",
    ),
]
# Mutants known to change nothing observable, with the reason (they do not count against the score).
EQUIVALENT: dict[str, str] = {}


def test_files(copy: Path, names: tuple[str, ...]) -> list[str]:
    return [f"{UNIT}/{name}" for name in dict.fromkeys(names) if (copy / UNIT / name).is_file()]


def run_tests(copy: Path, files: list[str], first_failure: bool) -> tuple[bool, float, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HL7LAKE_TEST_AWS_ENDPOINT", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "-m", "not e2e"]
    command += ["-x"] * first_failure + files
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started, "timed out"
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    return done.returncode == 0, time.monotonic() - started, last


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", default="", help="only mutations whose id contains this")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.k in m.id]
    with tempfile.TemporaryDirectory(prefix="hl7lake-mutation-") as tmp:
        copy = Path(tmp) / ROOT.name
        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
        shared = ROOT.parent / "shared"
        if shared.is_dir():  # the corpora live beside the project
            (Path(tmp) / "shared").symlink_to(shared)
        probe = subprocess.run(
            [sys.executable, "-c", "import lake.catalog as m; print(m.__file__)"],
            cwd=copy,
            env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True,
            text=True,
        )
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy's modules are not the ones imported: {probe.stdout or probe.stderr}")
            return 2
        every = test_files(copy, tuple(n for m in chosen for n in m.tests))
        ok, seconds, last = run_tests(copy, every, first_failure=False)
        print(f"baseline: {len(every)} test files, {last} ({seconds:.1f}s)")
        if not ok:
            print("the unmutated tree fails its tests: no mutation score without a green baseline")
            return 2
        caught, survived, stale, equivalent = [], [], [], []
        for mutation in chosen:
            target = copy / mutation.path
            original = target.read_text()
            if original.count(mutation.old) != 1:
                stale.append(mutation)
                print(f"STALE     {mutation.id}: source text not found once in {mutation.path}")
                continue
            target.write_text(original.replace(mutation.old, mutation.new))
            try:
                files = test_files(copy, mutation.tests)
                ok, seconds, last = run_tests(copy, files, first_failure=True)
            finally:
                target.write_text(original)
            if ok and mutation.id in EQUIVALENT:
                equivalent.append(mutation)
                verdict = "EQUIVALENT"
            elif ok:
                survived.append(mutation)
                verdict = "SURVIVED"
            else:
                caught.append(mutation)
                verdict = "caught"
            print(f"{verdict:<9} {mutation.id} ({len(files)} files, {seconds:.1f}s): {last}")
    print()
    for mutation in survived:
        print(f"surviving: {mutation.id} [{mutation.path}] {mutation.why}")
        print(f"    {mutation.old!r} -> {mutation.new!r}")
    for mutation in equivalent:
        print(f"equivalent: {mutation.id}: {EQUIVALENT[mutation.id]}")
    for mutation in stale:
        print(f"stale (update bench/mutation.py): {mutation.id} [{mutation.path}]")
    scored = len(caught) + len(survived)
    score = 100.0 * len(caught) / scored if scored else 0.0
    print(
        f"mutation score: {len(caught)}/{scored} caught ({score:.0f}%), {len(survived)} surviving, "
        f"{len(equivalent)} equivalent, {len(stale)} stale"
    )
    return 1 if survived or stale else 0


if __name__ == "__main__":
    sys.exit(main())
