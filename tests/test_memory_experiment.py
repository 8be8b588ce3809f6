"""--cell relu (a ReLU RNN with the default random recurrent init, beside the tanh RNN and the IRNN),
the memory task's test loss on the last K outputs, and memory.py --compare-cells at tiny settings."""
import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import common  # noqa: E402
import memory_tools  # noqa: E402
from npnet import tasks  # noqa: E402
from npnet.training.checkpoint import load_checkpoint  # noqa: E402

TINY = ["--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--quiet",
        "--remember", "2", "--seq-len", "7", "--symbols", "3", "--eval-size", "8", "--test-size", "20"]


def _model(cell, hidden=6, seed=0):
    args = argparse.Namespace(cell=cell, hidden=hidden, layers=1, match_params=False, dtype="float64", seed=seed)
    return common.build_model(args, 3, 2)


def test_relu_is_a_relu_rnn_with_the_random_recurrent_init_of_the_tanh_rnn():
    rnn, relu, irnn = _model("rnn"), _model("relu"), _model("irnn")
    assert [m.cells[0].nonlinearity for m in (rnn, relu, irnn)] == ["tanh", "relu", "relu"]
    np.testing.assert_array_equal(relu.params["cells.0.W_h"], rnn.params["cells.0.W_h"])   # same draw
    np.testing.assert_array_equal(irnn.params["cells.0.W_h"], np.eye(6))
    assert not np.allclose(relu.params["cells.0.W_h"], np.eye(6))
    assert relu.num_params == common.count_params("relu", 3, 6, 1, 2)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    h, _ = relu.cells[0].fprop(x)
    assert (h >= 0).all() and (h == 0).any()                      # ReLU: non-negative, some units off
    assert "relu" in common.CELLS and "rnn" in common.CELLS


def test_test_numbers_of_perfect_and_uniform_outputs():
    test = tasks.memory_batch(6, 2, seq_len=7, symbols=3, rng=0)
    perfect = 50.0 * np.eye(4)[test.y]                            # (N, L, S+1) logits
    r = memory_tools.test_numbers(perfect, test, 2)
    assert r["test_accuracy"] == 1.0 and r["sequence_accuracy"] == 1.0 and r["test_loss"] < 1e-15
    uniform = np.zeros((6, 7, 4))
    r = memory_tools.test_numbers(uniform, test, 2)
    assert r["test_loss"] == pytest.approx(np.log(4), rel=1e-12)
    assert r["test_loss_all_steps"] == pytest.approx(np.log(4), rel=1e-12)


def _run(*args, timeout=180):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "memory.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))


def test_memory_relu_run_reports_the_test_loss(tmp_path):
    out = tmp_path / "relu"
    proc = _run("--cell", "relu", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["cell"] == "relu" and np.isfinite(s["test_loss"]) and s["test_loss"] > 0
    assert f"test_loss {s['test_loss']:.4f}" in proc.stdout
    model = load_checkpoint(out / "checkpoint.npz").model
    assert model.cells[0].nonlinearity == "relu"


def test_compare_cells_writes_table_and_figure_at_matched_sizes(tmp_path):
    out = tmp_path / "cmp"
    proc = _run("--compare-cells", "--lrs", "0.01,0.03", "--jobs", "1", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert len(rows) == 5 * 2 * 2 and all(r["status"] == "ok" for r in rows)
    assert {int(r["seq_len"]) for r in rows} == {5, 7}                 # gap-free 2K+1 and --seq-len
    params = {r["cell"]: int(r["params"]) for r in rows if r["diverged"] == "0"}
    assert set(params) == set(memory_tools.COMPARE_CELLS)
    assert max(params.values()) / min(params.values()) < 1.15         # matched sizes (tiny H: coarse)
    table = (out / "compare.md").read_text().splitlines()
    assert len(table) == 2 + 5 and "ReLU RNN" in (out / "compare.md").read_text()
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["runs"] == 20


def test_compare_configs_carry_the_settings_so_a_resume_with_other_steps_reruns():
    from npnet.training.sweep import run_key
    import memory
    a = memory.parser().parse_args(["--compare-cells", "--steps", "100"])
    b = memory.parser().parse_args(["--compare-cells", "--steps", "200"])
    ka = {run_key(c) for c in memory_tools.compare_configs(a)[0]}
    kb = {run_key(c) for c in memory_tools.compare_configs(b)[0]}
    assert len(ka) == 5 * 4 * 2 and not ka & kb
