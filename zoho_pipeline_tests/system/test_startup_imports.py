"""Issue 12's fixed cost: what every process that loads the definitions imports (a no-op `zoho-pipeline sync`, the
code server, a sensor tick's process). pandas serves only the daily ledger check and cost ~0.8 s of each start, so
it is imported when that check runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY_FOR_A_FEW = ("pandas", "numpy")  # imported by the code that needs them, not at start-up


def test_loading_the_definitions_imports_no_pandas():
    probe = "import sys, zoho_pipeline.definitions; print(' '.join(m for m in %r if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe % (HEAVY_FOR_A_FEW,)], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == []
