"""Tests of the benchmark package (benchmarks/) and a smoke run of its CLI, bench_rnn.py.

Times are not asserted (speed is measured by the benchmark, not by tests). What is checked:
the CLI runs without torch and writes its JSON table with every selected cell timed; the
reference column (npnet.cells.reference) agrees with the fast path; the options are validated;
the pieces (thread pinning, interleaved rounds, verdicts, profile) do what they say.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_rnn.py")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import bench_rnn, compare, contenders, floor, profiling, report, threads, timing  # noqa: E402
from benchmarks.spec import CONFIGS, Case, flops  # noqa: E402

SMOKE = ("--cells", "rnn,lstm,gru", "--configs", "D", "--dtypes", "float32,float64", "--repeats", "1",
         "--block", "2", "--warmup", "0", "--ref-repeats", "1", "--peak-n", "128", "--windows", "10",
         "--no-torch")


def run(*args):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def reference_follows_contract() -> bool:
    """npnet.cells.reference has the sequence loops of the contract in benchmarks/contenders.py."""
    from npnet.cells import reference
    return all(hasattr(reference, f"{c}_{d}") for c in ("rnn", "lstm", "gru") for d in ("forward", "backward"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One CLI run on config D, all cells and dtypes, without torch: (process, JSON)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    r = run(*SMOKE, "--json", str(out))
    assert r.returncode == 0, r.stderr
    return r, json.loads(out.read_text())


def test_every_case_is_timed_and_written(smoke):
    r, data = smoke
    assert data["partial"] is False and data["info"]["torch"] is None
    rows = data["rows"]
    assert [(row["cell"], row["dtype"]) for row in rows] == [
        (c, d) for c in ("rnn", "lstm", "gru") for d in ("float32", "float64")]
    for row in rows:
        assert row["npnet_fb_s"] > 0 and row["npnet_fwd_s"] > 0
        assert "torch_fb_s" not in row and "ratio_fb" not in row
    assert set(data["peaks"]) == {"float32", "float64"}
    assert "| LSTM | D (1,1000,16,64) | float64 |" in r.stdout
    assert "Activation cache" in r.stdout and "torch" not in r.stderr


def test_memory_table_reads_the_cache_seams(smoke):
    _, data = smoke
    by_cell = {(m["cell"], m["dtype"]): m for m in data["memory"]}
    assert len(by_cell) == 6
    for (cell, dtype), m in by_cell.items():
        B, T, D, H = CONFIGS["D"]
        G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
        assert m["floor_bytes"] == T * B * (G + 2) * H * np.dtype(dtype).itemsize
        assert 0 < m["windows"]["10"]["cache_bytes"] < m["cache_bytes"] <= m["peak_fb_bytes"]


@pytest.mark.skipif(not reference_follows_contract(),
                    reason="npnet.cells.reference does not have the contract's sequence loops yet")
def test_reference_column_agrees_with_the_fast_path(smoke):
    r, data = smoke
    for row in data["rows"]:
        tol = 1e-3 if row["dtype"] == "float32" else 1e-8
        assert row["ref_fb_s"] > 0, row
        assert row["ref_max_abs_diff"] < tol and row["ref_dx_max_abs_diff"] < tol, row
        assert not row["notes"], row["notes"]
    assert "reference column skipped" not in r.stderr


def test_a_missing_reference_skips_the_column_with_a_message(monkeypatch):
    monkeypatch.setattr(contenders, "REFERENCE_MODULE", "npnet.no_such_reference")
    functions, why = contenders.reference_functions("lstm")
    assert functions is None and "npnet.no_such_reference not importable" in why


@pytest.mark.parametrize("argv, message", [(["--configs", "Z"], "unknown config 'Z'"),
                                           (["--block", "0"], "--block"),
                                           (["--cells", "lstm,tcn"], "unknown cell 'tcn'")])
def test_bad_options_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_rnn.parse_args(argv + ["--no-torch"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_quick_shrinks_only_the_defaults():
    args = bench_rnn.parse_args(["--quick", "--configs", "b", "--threads", "1"])
    assert args.configs == ["B"] and args.dtypes == ["float32"] and args.repeats == 3
    assert args.no_reference and args.threads == 1 and args.peak_n == 1024


def test_threads_are_read_from_the_command_line_before_numpy():
    assert threads.requested_threads(["--cells", "rnn", "--threads", "1"]) == 1
    assert threads.requested_threads(["--threads=3", "--quick"]) == 3
    assert threads.requested_threads(["--train", "--train-args", "--threads", "7"]) == threads.DEFAULT_THREADS
    assert threads.requested_threads([]) == threads.DEFAULT_THREADS
    before = {v: os.environ.get(v) for v in threads.ENV_VARS}
    assert threads.pin_env(1) is False                  # NumPy is loaded here: nothing to pin
    assert {v: os.environ.get(v) for v in threads.ENV_VARS} == before


def test_pinning_before_numpy_loads_sets_the_blas_threads():
    """In a fresh process, --threads read by benchmarks.threads reaches OpenBLAS as it loads."""
    pytest.importorskip("threadpoolctl")                 # to read the thread count back
    code = ("import sys; from benchmarks import threads; "
            "assert threads.pin_env(threads.requested_threads(['--threads', '1'])); "
            "import numpy; from threadpoolctl import threadpool_info; "
            "print(sorted({d['num_threads'] for d in threadpool_info() if d['user_api'] == 'blas'}))")
    env = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    env["PYTHONPATH"] = ROOT
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1]"


def test_rounds_interleave_and_drop_the_first_call_of_each_block():
    calls = []

    def contender(name):
        return contenders.Contender(name, lambda: calls.append((name, "fwd")), lambda: calls.append((name, "fb")))
    opts = timing.TimingOptions(repeats=3, block=3, ref_repeats=2, warmup=1)
    samples = timing.time_rounds([contender("npnet"), contender("ref"), contender("torch")], opts)
    assert {k: len(v[1]) for k, v in samples.items()} == {"npnet": 6, "ref": 2, "torch": 6}
    warm, rounds = calls[:4], calls[4:]
    assert warm == [("npnet", "fwd"), ("npnet", "fb"), ("torch", "fwd"), ("torch", "fb")]
    names = [n for n, kind in rounds if kind == "fb"]
    assert names[:7] == ["npnet"] * 3 + ["ref"] + ["torch"] * 3
    assert names[14:] == ["npnet"] * 3 + ["torch"] * 3      # the reference sits out round 3
    row = timing.summarize(samples)
    assert row["ratio_fb"] == row["npnet_fb_s"] / row["torch_fb_s"]


def test_gemm_floor_times_the_gemms_and_the_exps():
    res = floor.gemm_floor(Case("lstm", "D", "float32"), repeats=1)
    assert set(res) == {"gemm_fwd_s", "gemm_fb_s", "exp_s"}
    assert res["gemm_fwd_s"] > 0 and res["gemm_fb_s"] > 0 and res["exp_s"] >= 0
    peak = floor.gemm_peak("float64", 64, repeats=2)
    assert peak["n"] == 64 and peak["best_gflops"] >= peak["median_gflops"] > 0


def test_verdicts_carry_the_numpy_lower_bound():
    """With --gemm-floor a target's verdict says whether GEMMs + exp alone already miss it."""
    B, T, D, H = CONFIGS["B"]
    f_fb = flops((B, T, D, H), 4)[1]
    peaks = {"float64": {"median_gflops": 100.0}}
    row = {"cell": "lstm", "config": "B", "dtype": "float64", "B": B, "T": T, "D": D, "H": H,
           "ratio_fb": 0.9, "torch_fb_s": 1.0, "gemm_fb_s": 0.65, "exp_s": 0.05,
           "gflops_fb": f_fb / 1.2 / 1e9}
    ratio, peak = report.verdicts([row], peaks)
    assert ratio["kind"] == "ratio f+b" and not ratio["met"]
    assert ratio["bound"] == 0.7 and ratio["reachable"] is False        # 0.70 > 0.6
    assert peak["kind"] == "% GEMM peak"
    assert peak["bound"] == round(100 * f_fb / 0.7 / 1e9 / 100.0, 1)
    assert peak["reachable"] == (peak["bound"] >= 75)
    assert "MISS LSTM B float64 ratio f+b: 0.9 (target <= 0.6; NumPy lower bound 0.7: unreachable here)" \
        in report.verdicts_text([ratio, peak])
    del row["gemm_fb_s"], row["exp_s"]
    assert all("bound" not in v for v in report.verdicts([row], peaks))


def test_profile_counts_one_hit_per_step_on_the_recurrent_loop():
    import npnet
    res = profiling.profile_one(Case("rnn", "D", "float64"), npnet.BasicRNNCell)
    assert res["fprop_ms"] > 0 and res["bprop_ms"] > 0 and res["cprofile"]
    watched = {os.path.basename(f) for f in profiling.source_files(npnet.BasicRNNCell(2, 2))}
    assert "rnn.py" in watched and {r["file"] for r in res["lines"]} <= watched
    loop = [r for r in res["lines"] if r["src"].startswith("for ") and abs(r["hits_per_step"] - 1.0) < 0.01]
    assert loop, res["lines"]                    # the time loop, wherever the cell keeps it
    assert "### Profile RNN tanh config D float64" in report.profile_text(res)


def test_before_after_compares_two_npnets_interleaved(monkeypatch):
    """compare.py --before: this checkout loaded a second time is the same code, so the same numbers."""
    for key in [k for k in sys.modules if k.split(".")[0] == "npnet_before"]:
        monkeypatch.delitem(sys.modules, key)
    before = compare.load_checkout(ROOT, "npnet_before")
    try:
        assert before.__name__ == "npnet_before" and before.LSTMCell is not __import__("npnet").LSTMCell
        opts = timing.TimingOptions(repeats=1, block=2, warmup=0)
        row = compare.compare_case(Case("gru", "D", "float32"), before, __import__("npnet"), opts)
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] == "npnet_before"]:
            del sys.modules[key]
    assert row["max_abs_diff"] == 0.0 and row["before_fb_s"] > 0 and row["npnet_fb_s"] > 0
    assert "| GRU | D (1,1000,16,64) | float32 |" in compare.table([row], 0.05)


def test_before_after_flags_a_slower_row(tmp_path):
    def bench_json(path, fwd, fb):
        row = {"cell": "lstm", "config": "B", "B": 64, "T": 100, "D": 128, "H": 256, "dtype": "float64",
               "npnet_fwd_s": fwd, "npnet_fb_s": fb}
        path.write_text(json.dumps({"rows": [row]}))
        return str(path)
    old = bench_json(tmp_path / "old.json", 0.010, 0.030)
    rows = compare.from_tables(old, bench_json(tmp_path / "ok.json", 0.0104, 0.0300))
    assert rows[0]["before_fb_s"] == 0.030 and compare.table(rows, 0.05).endswith("| - | ok |")
    rows = compare.from_tables(old, bench_json(tmp_path / "slow.json", 0.010, 0.0320))
    assert compare.table(rows, 0.05).endswith("| 1.067 | - | SLOWER |")


# -- bench_train.py: the whole-training-step benchmark --------------------------------------
TRAIN_SCRIPT = os.path.join(ROOT, "benchmarks", "bench_train.py")


def test_train_cli_times_every_workload_and_breaks_the_step_down(tmp_path):
    from benchmarks.train_workloads import PIECES, WORKLOADS
    out = tmp_path / "train.json"
    r = subprocess.run([sys.executable, TRAIN_SCRIPT, "--scale", "8", "--repeats", "1", "--block", "2",
                        "--warmup", "0", "--breakdown-steps", "2", "--no-torch", "--json", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, MPLBACKEND="Agg"), timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["info"]["torch"] is None
    assert [row["workload"] for row in data["rows"]] == list(WORKLOADS)
    for row in data["rows"]:
        assert row["npnet_s"] > 0 and "torch_s" not in row and "ratio" not in row
        assert np.isfinite(row["npnet_loss"])
        b = row["breakdown"]
        assert set(b) == set(PIECES) | {"total"} and b["cells fwd"] > 0 and b["cells bwd"] > 0
        assert b["loss"] > 0 and b["clip"] > 0 and b["optimiser"] > 0
        assert b["total"] == pytest.approx(sum(b[p] for p in PIECES))
    assert "| char-lm-emb | Embedding(65, 64)" in r.stdout and "Where npnet's step goes" in r.stdout


def test_train_breakdown_leaves_the_step_unchanged():
    """The timing wrappers do not change what a step computes, and are removed afterwards."""
    from benchmarks.train_workloads import WORKLOADS, breakdown, npnet_runner, scaled
    w = scaled(WORKLOADS["names"], 4)
    plain, step_plain = npnet_runner(w, "float32")
    timed, step_timed = npnet_runner(w, "float32")
    for _ in range(2):
        step_plain()
    breakdown(timed, step_timed, 2)
    for k, v in plain.model.params.items():
        np.testing.assert_array_equal(timed.model.params[k], v, err_msg=k)
    cell = timed.model.cells[0]
    assert "fprop" not in vars(cell) and "step" not in vars(timed.optimizer) and "fprop" not in vars(timed.loss)
    from npnet.training import runner as runner_mod
    from npnet.training.clip import clip_grad_norm
    assert runner_mod.clip_grad_norm is clip_grad_norm


def test_train_cli_warns_about_the_kernel_variables_and_checks_its_options():
    from benchmarks import bench_train
    assert not any("WARNING" in s for s in bench_train.kernel_lines({}))
    warn = [s for s in bench_train.kernel_lines({"OPENBLAS_CORETYPE": "Haswell"}) if "WARNING" in s]
    assert warn and "OPENBLAS_CORETYPE=Haswell" in warn[0] and "env -u OPENBLAS_CORETYPE" in warn[0]
    for bad in (["--workloads", "char-lm,nope"], ["--repeats", "0"], ["--breakdown-steps", "-1"]):
        with pytest.raises(SystemExit):
            bench_train.parse_args(bad)
    assert bench_train.parse_args(["--workloads", "copy"]).workload_list == ["copy"]


def test_every_config_has_a_target_in_the_tables():
    """Config E (the char-LM layer) is not in the default run but must render like the others."""
    for cfg in CONFIGS:
        for cell in ("rnn", "lstm", "gru"):
            for dtype in ("float32", "float64"):
                assert report.target_ratio(cell, dtype, cfg) > 0
    assert report.target_ratio("lstm", "float32", "E") == report.target_ratio("lstm", "float32", "B")
