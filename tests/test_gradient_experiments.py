"""experiments/exploding.py and experiments/vanishing.py run end to end with --quick and write their
run folder (sweep CSV, summary.json with the key numbers, PNGs); bad arguments are usage errors."""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXP = REPO / "experiments"


def run(script, *args, timeout=120):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(EXP / script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exploding_quick(tmp_path):
    out = tmp_path / "exp"
    p = run("exploding.py", "--quick", "--quiet", "--out", out)
    assert p.returncode == 0, p.stderr
    for name in ("config.json", "sweep.csv", "metrics.csv", "summary.json",
                 "mean_abs_vs_seq_len.png", "grad_norm_training.png"):
        assert (out / name).is_file(), name
    assert is_png(out / "mean_abs_vs_seq_len.png") and is_png(out / "grad_norm_training.png")
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)          # 2 act x 2 init x 2 H x 1 V
    s = json.loads((out / "summary.json").read_text())
    for key in ("headline", "baseline", "wall_s", "growth_factor", "growth_factor_clipped", "growth_total"):
        assert key in s, key
    assert set(s["growth_factor"]) == {f"{a}-{i}-H{h}-V5" for a in ("tanh", "relu")
                                       for i in ("random", "identity") for h in (8, 16)}
    assert all(v is None or (math.isfinite(v) and v > 0) for v in s["growth_factor"].values())
    # clipping bounds what the optimiser receives: the clipped mean |grad| never exceeds the raw one
    for r in rows:
        raw, clipped = json.loads(r["raw_mean_abs"]), json.loads(r["applied_mean_abs"])
        assert all(c <= a * (1 + 1e-12) for a, c in zip(raw, clipped))
    assert s[s["headline"]] == max(v for v in s["growth_factor"].values() if v is not None)
    assert "exploding:" in p.stdout and str(out) in p.stdout


def test_exploding_resumes(tmp_path):
    """Rerunning into the same folder resumes: nothing is recomputed, the CSV keeps its rows."""
    out = tmp_path / "exp"
    args = ("--quick", "--quiet", "--hidden", 4, "--vocab", 3, "--seq-lens", "2,4", "--steps", 2, "--out", out)
    p = run("exploding.py", *args)
    assert p.returncode == 0, p.stderr
    before = (out / "sweep.csv").read_text()
    assert before.count("\n") == 1 + 4                      # header + 2 act x 2 init
    (out / "summary.json").unlink()
    p2 = run("exploding.py", *args)
    assert p2.returncode == 0, p2.stderr
    assert (out / "sweep.csv").read_text() == before
    s = json.loads((out / "summary.json").read_text())        # rebuilt from the CSV
    assert set(s["growth_factor"]) == {f"{a}-{i}-H4-V3" for a in ("tanh", "relu") for i in ("random", "identity")}


def test_vanishing_quick(tmp_path):
    out = tmp_path / "van"
    p = run("vanishing.py", "--quick", "--quiet", "--out", out)
    assert p.returncode == 0, p.stderr
    for name in ("config.json", "sweep.csv", "metrics.csv", "summary.json", "grad_vs_distance.png",
                 "grad_heatmap_training.png", "dx1_vs_seq_len.png", "jacobian_products.png"):
        assert (out / name).is_file(), name
        if name.endswith(".png"):
            assert is_png(out / name)
    cells = ("rnn", "irnn", "lstm", "gru")
    for c in cells:
        assert (out / f"checkpoint_{c}.npz").is_file()
    s = json.loads((out / "summary.json").read_text())
    for key in ("headline", "baseline", "wall_s", "grad_ratio_first_last", "dx1_norm",
                "jacobian_product_log10", "test_mse"):
        assert key in s, key
    assert set(s["grad_ratio_first_last"]) == set(cells)
    for c in cells:
        r = s["grad_ratio_first_last"][c]
        assert set(r) == {"untrained", "trained"}
        assert all(v is not None and v > 0 for v in r.values())
    # the heat map has one row per recorded step and one column per time step
    with (out / "sweep.csv").open() as f:
        rows = {r["cell"]: r for r in csv.DictReader(f)}
    heat = json.loads(rows["lstm"]["heat"])
    assert len(heat) == len(json.loads(rows["lstm"]["heat_steps"])) and len(heat[0]) == s["seq_len"]
    # the ratio in the summary is the one the per-step norms give (the CSV keeps 5 digits)
    dh = json.loads(rows["gru"]["dh_untrained"])
    assert math.isclose(s["grad_ratio_first_last"]["gru"]["untrained"], dh[0] / dh[-1], rel_tol=1e-4)
    assert "vanishing:" in p.stdout


@pytest.mark.parametrize("script,args", [
    ("exploding.py", ["--vocab", "0"]),
    ("exploding.py", ["--cell", "lstm"]),
    ("exploding.py", ["--seq-lens", "a,b"]),
    ("vanishing.py", ["--cell", "transformer"]),
    ("vanishing.py", ["--seq-len", "0"]),
    ("vanishing.py", ["--bptt", "5"]),
])
def test_bad_arguments_exit_2(tmp_path, script, args):
    p = run(script, *args, "--out", tmp_path / "bad", timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "usage:" in p.stderr
    assert not (tmp_path / "bad").exists()
