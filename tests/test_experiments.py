"""End-to-end runs of the experiment scripts with tiny settings, and their usage errors.

Each script runs in a subprocess (as a user would start it) into a temporary run folder;
the test checks the files it writes and the keys of summary.json, not the accuracy.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "experiments"
TINY = ["--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--quiet"]


def run_script(name, *args, timeout=120):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(EXP / f"{name}.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(ROOT))


def check_run_folder(out: Path, headline: str, pngs):
    for f in ("config.json", "metrics.csv", "summary.json", "checkpoint.npz", *pngs):
        assert (out / f).is_file(), f"{f} missing from {sorted(p.name for p in out.iterdir())}"
    summary = json.loads((out / "summary.json").read_text())
    for key in (headline, "baseline", "wall_s", "headline"):
        assert key in summary, f"summary.json lacks {key}: {summary}"
    assert summary["headline"] == headline
    assert np.isfinite(summary[headline]) and summary["wall_s"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 0 and "cell" in config and "lr" in config
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert rows and "loss" in rows[0] and all(np.isfinite(float(r["loss"])) for r in rows if r["loss"])
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return summary


def check_usage_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "usage:" in proc.stderr and "error:" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- memory -------------------------------------------------------------------------
def test_memory_end_to_end(tmp_path):
    out = tmp_path / "mem"
    proc = run_script("memory", "--seq-len", "7", "--remember", "2", "--symbols", "3",
                      "--test-size", "20", "--eval-size", "8", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = check_run_folder(out, "test_accuracy", ["learning_curve.png", "example.png"])
    assert s["baseline"] == pytest.approx(1 / 3) and s["baseline_name"] == "chance"
    assert s["steps"] == 3 and 0 <= s["test_accuracy"] <= 1
    line = proc.stdout.strip().splitlines()[-1]                       # the one-line summary
    assert "test_accuracy" in line and "chance" in line and " s " in line


def test_memory_match_params_and_gru(tmp_path):
    out = tmp_path / "gru"
    proc = run_script("memory", "--seq-len", "5", "--remember", "1", "--cell", "gru", "--match-params",
                      "--test-size", "4", "--eval-size", "4", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["cell"] == "gru" and s["hidden"] == 5         # ~ the parameters of an LSTM with 4 units


def test_memory_epochs_and_truncated_bptt(tmp_path):
    out = tmp_path / "ep"
    args = [a for a in TINY if a not in ("--steps", "3")]
    proc = run_script("memory", "--seq-len", "9", "--remember", "2", "--epochs", "2", "--epoch-size", "2",
                      "--bptt", "4", "--no-early-stop", "--test-size", "4", "--eval-size", "4",
                      "--out", str(out), *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    c = json.loads((out / "config.json").read_text())
    assert s["steps"] == 4 and c["bptt"] == 4 and c["epochs"] == 2


@pytest.mark.parametrize("args", [
    ["--seq-len", "10", "--remember", "5"],                # the gap does not fit: L < 2K + 1
    ["--seq-len", "0"],
    ["--remember", "-1"],
    ["--hidden", "0"],
    ["--cell", "transformer"],
    ["--lr", "-0.1"],
    ["--steps", "5", "--epochs", "2"],
    ["--symbols", "1"],
])
def test_memory_bad_arguments_are_usage_errors(args, tmp_path):
    check_usage_error(run_script("memory", *args, "--out", str(tmp_path / "bad")))
    assert not (tmp_path / "bad").exists()                  # nothing written for a bad command


# -- counting -----------------------------------------------------------------------
@pytest.mark.parametrize("mode, png", [("classification", "confusion.png"), ("regression", "scatter.png")])
def test_counting_end_to_end(mode, png, tmp_path):
    out = tmp_path / mode
    proc = run_script("counting", "--mode", mode, "--seq-len", "6", "--test-size", "40", "--eval-size", "8",
                      "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = check_run_folder(out, "test_accuracy", ["learning_curve.png", png])
    assert s["baseline_name"] == "majority" and 0 < s["baseline"] < 1 and s["mode"] == mode
    if mode == "regression":                          # the 3-way answer from the sign, recomputed
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
        import common
        import npnet
        from npnet.data import tasks
        x, y, _ = tasks.counting_batch(40, 6, mode, rng=common.seed_rng(0, "test"), dtype=np.float32)
        pred = npnet.load_checkpoint(out / "checkpoint.npz").model.predict(x)
        expected = np.mean(np.sign(np.rint(pred.ravel())) == np.sign(y.ravel()))
        assert s["sign_accuracy"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("args", [["--seq-len", "0"], ["--mode", "ranking"], ["--batch-size", "-4"],
                                  ["--cell", "lstmx"], ["--clip", "-1"]])
def test_counting_bad_arguments_are_usage_errors(args, tmp_path):
    check_usage_error(run_script("counting", *args, "--out", str(tmp_path / "bad")))


# -- first element -------------------------------------------------------------------
def test_first_element_end_to_end(tmp_path):
    out = tmp_path / "fe"
    proc = run_script("first_element", "--seq-len", "4", "--test-size", "30", "--eval-size", "8",
                      "--cell", "irnn", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = check_run_folder(out, "test_accuracy", ["learning_curve.png", "scatter.png"])
    assert s["baseline_name"] == "answer 0" and s["cell"] == "irnn"


def test_first_element_sweep(tmp_path):
    """The sweep's files and rows (more in tests/test_first_element_sweep.py)."""
    out = tmp_path / "sweep"
    proc = run_script("first_element", "--sweep", "--lengths", "2,3", "--cells", "rnn,gru", "--inits", "default",
                      "--reps", "2", "--jobs", "2", "--test-size", "10", "--eval-size", "4", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in ("config.json", "sweep.csv", "table.csv", "table.md", "summary.json", "accuracy_vs_length.png"):
        assert (out / f).is_file()
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert all(r["status"] == "ok" for r in rows)
    assert {(r["cell"], r["seq_len"], r["seed"]) for r in rows} >= {   # T=3 only after a success at 2
        (c, "2", s) for c in ("rnn", "gru") for s in ("0", "1")}
    s = json.loads((out / "summary.json").read_text())
    assert set(s["max_solvable_length"]) == {"rnn", "gru"} and "wall_s" in s and "baseline" in s


@pytest.mark.parametrize("args", [["--sweep", "--cells", "rnn,lstn"], ["--sweep", "--lengths", "5,0"],
                                  ["--sweep", "--lengths", "a,b"], ["--seq-len", "-2"], ["--init", "uniform"],
                                  ["--sweep", "--inits", "default,u0.2"], ["--sweep", "--budget", "0"],
                                  ["--sweep", "--budget", "nan"], ["--sweep", "--max-len", "0"],
                                  ["--sweep", "--lengths", "20,80", "--max-len", "40"], ["--test-batches", "0"],
                                  ["--sweep", "--jobs", "0"]])
def test_first_element_bad_arguments_are_usage_errors(args, tmp_path):
    check_usage_error(run_script("first_element", *args, "--out", str(tmp_path / "bad")))


# -- the shared pieces ----------------------------------------------------------------
def test_count_params_matches_the_model():
    sys.path.insert(0, str(EXP))
    try:
        import common
    finally:
        sys.path.remove(str(EXP))
    import npnet
    for cell in ("lstm", "gru", "rnn", "irnn"):
        m = npnet.SequenceModel(5, 7, num_layers=2, cell=cell, output_size=3, rng=0)
        assert common.count_params(cell, 5, 7, 2, 3) == m.num_params
    h = common.matched_hidden("rnn", 10, 64, 1, 9)
    assert abs(common.count_params("rnn", 10, h, 1, 9) - common.count_params("lstm", 10, 64, 1, 9)) < 2 * h + 20


def import_experiment(name):
    """Import a script as a module (restoring the environment common.py adjusts)."""
    env = dict(os.environ)
    sys.path.insert(0, str(EXP))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(EXP))
        os.environ.clear()
        os.environ.update(env)


def test_sine_feedback_gradients_match_finite_differences():
    sine = import_experiment("sine")
    import npnet
    model = npnet.SequenceModel(1, 3, output_size=1, rng=0)
    trainer = sine.FeedbackRunner(model, npnet.MSELoss(), None, clip=None, prime=2, mode="free", total_steps=1,
                                  rng=np.random.default_rng(0))
    x, y, _ = npnet.tasks.sine_batch(2, seq_len=6, period=(4, 8), rng=1)
    fed = trainer.draw_feedback(6, 2)
    assert not fed[:2].any() and fed[2:].all()
    mixed = fed & (np.random.default_rng(3).random(fed.shape) < 0.5)     # scheduled sampling
    assert mixed.any() and not mixed.all()
    eps = 1e-6
    for pattern in (mixed, fed):
        trainer.gradients(x, y, pattern)
        analytic = {k: g.copy() for k, g in model.grads.items()}
        for name, p in model.params.items():
            num = np.zeros_like(p)
            for i in np.ndindex(p.shape):
                old = p[i]
                p[i] = old + eps
                lp = trainer.gradients(x, y, pattern)
                p[i] = old - eps
                lm = trainer.gradients(x, y, pattern)
                p[i] = old
                num[i] = (lp - lm) / (2 * eps)
            scale = max(np.abs(num).max(), np.abs(analytic[name]).max(), 1e-12)
            assert np.abs(num - analytic[name]).max() / scale < 1e-6, name
    # the feedback path matters: teacher forcing gives other gradients
    trainer.gradients(x, y, np.zeros_like(fed))
    assert not np.allclose(model.grads["read_out.W"], analytic["read_out.W"])


def test_sine_end_to_end(tmp_path):
    for mode in ("teacher", "free"):
        out = tmp_path / mode
        proc = run_script("sine", "--train-mode", mode, "--seq-len", "12", "--prime", "5", "--test-size", "10",
                          "--eval-size", "4", "--out", str(out), *TINY)
        assert proc.returncode == 0, proc.stderr[-3000:]
        s = check_run_folder(out, "closed_loop_mse", ["learning_curve.png", "closed_loop.png"])
        assert s["baseline_name"] == "predict-zero" and s["train_mode"] == mode and "repeat_last_mse" in s


@pytest.mark.parametrize("args", [["--prime", "100"], ["--period", "50", "10"], ["--train-mode", "none"],
                                  ["--period", "0", "10"], ["--bptt", "10"], ["--train-len", "20"]])
def test_sine_bad_arguments_are_usage_errors(args, tmp_path):
    check_usage_error(run_script("sine", *args, "--out", str(tmp_path / "bad")))


def test_scored_cross_entropy_scores_only_marked_steps():
    common = import_experiment("common")
    import npnet
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 5, 4))
    y = rng.integers(0, 4, size=(3, 5))
    m = np.zeros((3, 5), bool)
    m[:, 3:] = True
    ref = npnet.SoftmaxCrossEntropyLoss()
    want = ref.fprop(z, y, m)
    dwant = ref.bprop()
    loss = common.ScoredCrossEntropy()
    yt = common.scored_targets(y, m)
    assert (yt[~m] == common.UNSCORED).all()
    assert loss.fprop(z, yt) == pytest.approx(want)
    np.testing.assert_allclose(loss.bprop(), dwant)
    assert common.scored_accuracy(z, yt) == pytest.approx((z.argmax(-1) == y)[m].mean())
    assert loss.fprop(z[:, :3], yt[:, :3]) == 0.0            # a window with nothing scored
    np.testing.assert_array_equal(loss.bprop(), 0.0)


def test_lr_decay_is_a_per_step_lambda_schedule(tmp_path):
    """--lr-decay F: the lr of optimiser step t (0-based) is lr * F ** (t / total), bit for bit."""
    common = import_experiment("common")
    import npnet
    model = npnet.SequenceModel(3, 4, output_size=2, return_sequences=False, rng=0)
    learner = npnet.Learner(model, "ce", "sgd", lr=0.5, progress=False)
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((2, 3, 3)), rng.integers(0, 2, 2)) for _ in range(6)]
    learner.fit(data, steps=6, callbacks=[common.lr_schedule(learner.optimizer, 0.1, 6)])
    assert [r["lr"] for r in learner.history] == [0.5 * 0.1 ** (t / 6) for t in range(6)]
    assert common.lr_schedule(learner.optimizer, 1.0, 6) is None         # constant: no scheduler


def test_target_reached_stops_the_learner():
    common = import_experiment("common")
    import npnet
    model = npnet.SequenceModel(3, 4, output_size=2, return_sequences=False, rng=0)
    learner = npnet.Learner(model, "ce", "sgd", lr=0.1, metric="accuracy", progress=False)
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((4, 3, 3)), rng.integers(0, 2, 4)) for _ in range(10)]
    stop = common.TargetReached(0.0)                                     # any accuracy reaches 0
    learner.fit(data, steps=10, eval_batches=data[:1], eval_every=3, callbacks=[stop])
    assert stop.reached and learner.step == 3
    low = common.TargetReached(-1.0, higher_is_better=False)             # an accuracy is never <= -1
    learner.fit(data, steps=4, eval_batches=data[:1], eval_every=2, callbacks=[low])
    assert not low.reached and learner.step == 7


def test_write_table_writes_dict_and_list_rows(tmp_path):
    common = import_experiment("common")
    common.write_table(tmp_path / "a.csv", [{"x": 1, "y": 2.5, "z": "no"}, {"x": 3}], fields=["x", "y"])
    assert (tmp_path / "a.csv").read_text().splitlines() == ["x,y", "1,2.5", "3,"]
    common.write_table(tmp_path / "b.csv", [[1, 2], [3, 4]], fields=["a", "b"])
    assert (tmp_path / "b.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]


def test_scripts_are_thin():
    """Every script and common/ module at most 300 lines; one training step (the runner's) and no
    optimiser update outside npnet/training/. (digit_sums.py is being rewritten on branch layers.)"""
    files = [p for p in sorted(EXP.rglob("*.py")) if p.name != "digit_sums.py"]
    assert len(files) >= 10
    for p in files:
        text = p.read_text()
        assert len(text.splitlines()) <= 300, p
        assert "def train_step" not in text and "opt.step(" not in text and "optimizer.step(" not in text, p
