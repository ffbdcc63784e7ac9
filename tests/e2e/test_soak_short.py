"""The short form of `make soak` / `make chaos`: mixed senders with duplicates while the front doors are
killed with SIGKILL mid-load; every acknowledged message ends exactly once in the lake, raw object
included, and nothing is stuck or dead-lettered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXTERNAL_ENDPOINT, ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(bool(EXTERNAL_ENDPOINT), reason="runs its own embedded stack")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the services through /proc")
def test_front_doors_killed_mid_load_lose_and_double_nothing(tmp_path: Path, corpus_dir: Path) -> None:
    report_file = tmp_path / "soak.json"
    options = "--messages 160 --chaos --chaos-every 2 --kills 4 --victims gateway,mllp --drain-timeout 120"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *options.split(), "--json", str(report_file)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert report_file.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_file.read_text())
    print(result.stdout)
    assert len(report["kills"]) >= 2, "the front doors were not killed during the load"
    assert report["acknowledged"] == 160
    assert (report["lost"], report["doubled"], report["stuck"], report["no_raw_object"]) == (0, 0, 0, 0)
    assert report["catalog_entries"] == 160 and report["statuses"] == {"parsed": 160}
    assert report["unacknowledged"] == 0 and report["rejected"] == []
    assert set(report["dead_letters"].values()) == {0}
    assert result.returncode == 0
