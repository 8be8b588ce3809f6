"""counting.py and first_element.py with --bptt (truncated BPTT of a last-step model) run end to end."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--quiet"]


@pytest.mark.parametrize("script, extra", [("counting", ["--test-size", "40", "--mode", "classification"]),
                                           ("counting", ["--test-size", "40", "--mode", "regression"]),
                                           ("first_element", ["--test-size", "30"])])
def test_last_step_script_runs_with_truncated_bptt(script, extra, tmp_path):
    out = tmp_path / script
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--bptt", "5",
                           "--seq-len", "12", "--eval-size", "8", *extra, "--out", str(out), *TINY],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["bptt"] == 5
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["test_accuracy"]) and summary["wall_s"] > 0
