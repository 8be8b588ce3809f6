"""sine.py --compare: RNN vs LSTM at matched parameter counts, teacher-forced and free running (a tiny
run: the table, the figure, the parameter counts and the answer computed from the table)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import common  # noqa: E402

TINY = ["--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--seq-len", "40",
        "--train-len", "35", "--test-size", "10", "--eval-size", "4", "--jobs", "2"]


def run(*args, timeout=180):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "sine.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))


def test_compare_runs_every_cell_and_mode_at_matched_parameters(tmp_path):
    out = tmp_path / "cmp"
    proc = run("--compare", *TINY, "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["cell"], r["train_mode"]) for r in table] == [
        ("rnn", "teacher"), ("rnn", "free"), ("lstm", "teacher"), ("lstm", "free")]
    lstm = common.count_params("lstm", 1, 4, 1, 1)                      # 4 H^2 + 9 H + 1 = 101
    assert lstm == 4 * 16 + 9 * 4 + 1
    for r in table:
        assert int(r["params"]) == common.count_params(r["cell"], 1, int(r["hidden"]), 1, 1)
        assert float(r["params_vs_lstm"]) == pytest.approx(int(r["params"]) / lstm - 1)
        assert float(r["closed_loop_mse"]) > 0 and float(r["predict_zero_mse"]) > 0
        assert int(r["steps"]) == 3 and (out / f"{r['cell']}-{r['train_mode']}" / "summary.json").is_file()
    rnn_h = int(table[0]["hidden"])                  # H^2 + 3 H + 1 closest to the LSTM's count
    assert all(abs(h * h + 3 * h + 1 - lstm) >= abs(rnn_h ** 2 + 3 * rnn_h + 1 - lstm) for h in range(1, 40))
    s = json.loads((out / "summary.json").read_text())
    best = min(table, key=lambda r: float(r["closed_loop_mse"]))
    assert s["best"] == f"{best['cell']} {best['train_mode']}" and s["steps"] == 3
    assert f"lowest closed-loop MSE: {s['best']}" in proc.stdout
    assert f"rnn  H={rnn_h:3d}: {int(table[0]['params']):,} parameters" in proc.stdout
    assert (out / "table.md").read_text().count("\n") == 2 + 4
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_defaults_to_600_steps_and_a_single_run_to_1500():
    import sine
    assert sine.parser().parse_args([]).steps == 1500
    a = sine.parser().parse_args(["--compare"])
    sine.check(a)
    assert a.steps == sine.COMPARE_STEPS == 600
    a = sine.parser().parse_args(["--compare", "--steps", "50"])
    sine.check(a)
    assert a.steps == 50


@pytest.mark.parametrize("args", [["--cells", "rnn,lstn"], ["--modes", "teacher,none"], ["--jobs", "0"],
                                  ["--cells", ""]])
def test_compare_bad_arguments_are_usage_errors(args, tmp_path):
    proc = run("--compare", *args, "--out", str(tmp_path / "bad"), timeout=60)
    assert proc.returncode == 2 and "usage:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "bad").exists()
