"""Smoke test of benchmarks/bench_rnn.py: it runs without torch and writes its JSON table.

Times are not asserted (speed is measured by the benchmark, not by tests); what is checked is
that every selected cell was timed, that the reference column agreed with the fast path, and
that the options are validated.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_rnn.py")


def run(*args):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_runs_without_torch_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    r = run("--cells", "rnn,lstm,gru", "--configs", "D", "--dtypes", "float32,float64",
            "--repeats", "1", "--block", "2", "--warmup", "0", "--no-peak", "--no-memory",
            "--no-torch", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert {(row["cell"], row["dtype"]) for row in rows} == {
        (c, d) for c in ("rnn", "lstm", "gru") for d in ("float32", "float64")}
    for row in rows:
        assert row["npnet_fb_s"] > 0 and row["npnet_fwd_s"] > 0
        assert "torch_fb_s" not in row
        assert row["ref_max_abs_diff"] < (1e-3 if row["dtype"] == "float32" else 1e-8), row
        assert not row["notes"], row["notes"]
    assert "| LSTM | D (1,1000,16,64) | float64 |" in r.stdout


def test_bad_options_are_refused():
    r = run("--configs", "Z", "--no-torch")
    assert r.returncode == 2 and "unknown config 'Z'" in r.stderr
    r = run("--block", "0", "--no-torch")
    assert r.returncode == 2 and "--block" in r.stderr


def test_verdicts_carry_the_numpy_lower_bound():
    """With --gemm-floor a target's verdict says whether GEMMs + exp alone already miss it."""
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import bench_rnn
    finally:
        sys.path.pop(0)
    B, T, D, H = bench_rnn.CONFIGS["B"]
    f_fb = bench_rnn.flops((B, T, D, H), 4)[1]
    peaks = {"float64": {"median_gflops": 100.0}}
    row = {"cell": "lstm", "config": "B", "dtype": "float64", "B": B, "T": T, "D": D, "H": H,
           "ratio_fb": 0.9, "torch_fb_s": 1.0, "gemm_fb_s": 0.65, "exp_s": 0.05,
           "gflops_fb": f_fb / 1.2 / 1e9}
    ratio, peak = bench_rnn.verdicts([row], peaks)
    assert ratio["kind"] == "ratio f+b" and not ratio["met"]
    assert ratio["bound"] == 0.7 and ratio["reachable"] is False        # 0.70 > 0.6
    assert peak["kind"] == "% GEMM peak"
    assert peak["bound"] == round(100 * f_fb / 0.7 / 1e9 / 100.0, 1)
    assert peak["reachable"] == (peak["bound"] >= 75)
    del row["gemm_fb_s"], row["exp_s"]
    assert all("bound" not in v for v in bench_rnn.verdicts([row], peaks))
