"""Issue 12, low item: CLI runs started at once on a fresh DAGSTER_HOME never crash creating Dagster's storage
("table runs already exists", "more than one head")."""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPT = """
import sys, time
from zoho_pipeline.cli.sync import instance_for_cli
start = float(sys.argv[1])
while time.time() < start:
    time.sleep(0.001)
instance, _ = instance_for_cli()
instance.get_runs(limit=1)
print("ok")
"""


def test_four_cli_processes_on_a_fresh_dagster_home_all_start(tmp_path):
    home = tmp_path / "dagster_home"  # does not exist yet: the first run makes it
    start = time.time() + 8  # after every process has imported Dagster: they open the instance together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(start)],
            env={"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    failures = [err.strip().splitlines()[-1] for (out, err), p in zip(results, procs, strict=True) if p.returncode]
    assert failures == []
    assert all(out.strip() == "ok" for out, _ in results)
