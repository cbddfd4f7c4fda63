"""`benchmarks/run.py --quick` still runs end to end (so `make bench` cannot rot). No target is asserted here:
targets live in the benchmark's printed table, never in timed tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_quick_mode_runs_every_section(tmp_path):
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for section in (
        "calls",
        "rate",
        "overhead",
        "findwork",
        "memory",
        "backfill",
        "lifecycle",
        "recurring",
        "fixedcost",
    ):
        assert section in data and "error" not in data[section], (section, data.get(section))
    metrics = {row["metric"] for row in data["table"]}
    assert any("calls per new row" in m for m in metrics)
    assert {"no-op `zoho-pipeline sync` wall", "sensor tick, nothing to do"} <= metrics
    assert "targets met" in proc.stdout
