"""first_element.py --sweep: the rounds of doubling lengths, the budget, the results table, and the
maximum solvable length computed from that table (first_element_tools.py); the exercise's init."""
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
import first_element_tools as fet  # noqa: E402

TINY = ["--hidden", "4", "--steps", "3", "--batch-size", "4", "--eval-every", "2", "--test-size", "10",
        "--test-batches", "3", "--eval-size", "4", "--jobs", "2"]


def run_sweep(tmp_path, *args):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "first_element.py"), "--sweep", *TINY, *args,
                           "--out", str(out)], capture_output=True, text=True, timeout=180, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def read(path):
    return list(csv.DictReader(Path(path).read_text().splitlines()))


def expected_answer(table, solved_key="majority_solved"):
    """The definition, computed again from table.csv: the largest length whose repetitions succeed in a
    majority, and the next longer tested length."""
    out = {}
    for v in {r["variant"] for r in table}:
        rows = sorted((r for r in table if r["variant"] == v), key=lambda r: int(r["seq_len"]))
        good = [int(r["seq_len"]) for r in rows if 2 * int(r["solved_reps"]) > int(r["reps"])]
        best = max(good) if good else None
        longer = [int(r["seq_len"]) for r in rows if best is None or int(r["seq_len"]) > best]
        out[v] = (best, min(longer) if longer else None)
    return out


def test_lengths_double_while_a_run_succeeds_and_the_answer_comes_from_the_table(tmp_path):
    # --solved 0.01: nearly every run succeeds, so the rounds double the longest length towards --max-len
    out, stdout = run_sweep(tmp_path, "--lengths", "2,3", "--reps", "2", "--solved", "0.01", "--max-len", "12",
                            "--test-size", "30")
    runs = read(out / "sweep.csv")
    assert {r["init"] for r in runs} == {"default", "uniform0.2"} and all(r["status"] == "ok" for r in runs)
    for r in runs:                                 # the run's accuracy pools its batches: inside worst..best
        acc = json.loads(r["batch_accuracy"])                     # stored at 5 significant digits
        assert len(acc) == 3 and float(r["batch_acc_min"]) == pytest.approx(min(acc), rel=1e-4)
        assert float(r["batch_acc_max"]) == pytest.approx(max(acc), rel=1e-4)
        assert min(acc) - 1e-4 <= float(r["test_accuracy"]) <= max(acc) + 1e-4
        assert 0 <= float(r["wilson_lo"]) <= float(r["test_accuracy"]) <= float(r["wilson_hi"]) <= 1
    table = read(out / "table.csv")
    assert len(table) == len({(r["init"], r["seq_len"]) for r in runs})
    assert (out / "table.md").read_text().count("\n") == 2 + len(table)
    for v in ("rnn", "rnn uniform0.2"):            # a chain 2, 3, 6, 12: each doubling after a success
        rows = sorted((r for r in table if r["variant"] == v), key=lambda r: int(r["seq_len"]))
        lengths = [int(r["seq_len"]) for r in rows]
        assert lengths == [2, 3, 6, 12][:len(lengths)] and len(lengths) >= 2
        assert all(int(r["solved_reps"]) > 0 for r in rows[:-1])
        assert int(rows[-1]["solved_reps"]) == 0 or lengths[-1] == 12
        assert all(int(r["reps"]) == 2 for r in rows)
    s = json.loads((out / "summary.json").read_text())
    want = expected_answer(table)
    assert s["max_solvable_length"] == {v: b for v, (b, _) in want.items()}
    assert s["limit_below"] == {v: n for v, (_, n) in want.items()}
    assert 12 in [int(r["seq_len"]) for r in table]       # at least one variant reached --max-len here
    for v, (best, nxt) in want.items():
        if best is not None:
            assert f"{v}: {best} (the limit is >= {best} and " + (f"< {nxt})" if nxt else "not bounded") in stdout
    assert (out / "accuracy_vs_length.png").read_bytes()[:4] == b"\x89PNG"


def test_a_failing_variant_stops_and_the_limit_is_bracketed(tmp_path):
    # 3 steps of a 4-unit RNN never reach 0.9: the variant ends at its first length
    out, stdout = run_sweep(tmp_path, "--lengths", "2,4", "--reps", "1", "--inits", "default", "--cells", "rnn")
    assert sorted(int(r["seq_len"]) for r in read(out / "sweep.csv")) == [2]
    table = read(out / "table.csv")
    s = json.loads((out / "summary.json").read_text())
    assert all(r["solved_reps"] == "0" for r in table)
    assert s["max_solvable_length"] == {"rnn": None} and s["limit_below"] == {"rnn": 2}
    assert s["max_len_all_reps"] == {"rnn": None}
    assert s["stop_reason"].startswith("every variant fails") and "rnn: no tested length solved" in stdout


def test_the_budget_cuts_the_runs_and_a_larger_budget_finishes_them(tmp_path):
    args = ["--lengths", "2", "--reps", "2", "--inits", "default", "--solved", "0.01", "--max-len", "2",
            "--steps", "400", "--no-early-stop"]
    out, stdout = run_sweep(tmp_path, *args, "--budget", "0.001")
    runs = read(out / "sweep.csv")
    assert len(runs) == 2 and all(r["status"] == "failed" and "cut by --budget" in r["error"] for r in runs)
    s = json.loads((out / "summary.json").read_text())
    assert s["stop_reason"].startswith("--budget 0.001 s ended during the round at T=2: 2 of 2 runs cut")
    assert s["cut_by_budget"] == 2 and s["failed"] == 0 and s["max_solvable_length"] == {}
    assert read(out / "table.csv") == []                      # a cut length is not in the table
    out, stdout = run_sweep(tmp_path, *args, "--budget", "600")   # the same --out: the cut runs again
    runs = read(out / "sweep.csv")
    assert len(runs) == 2 and all(r["status"] == "ok" and int(r["steps"]) == 400 for r in runs)
    assert json.loads((out / "summary.json").read_text())["stop_reason"] == "--max-len 2 reached"


def table_row(variant, L, k, n):
    return {"variant": variant, "seq_len": L, "solved_reps": k, "reps": n, "majority_solved": 2 * k > n,
            "all_solved": k == n}


def test_max_solvable_majority_all_and_the_next_length():
    table = [table_row("a", 5, 3, 3), table_row("a", 10, 2, 3), table_row("a", 20, 1, 3), table_row("a", 40, 0, 3),
             table_row("b", 5, 1, 3)]
    maj, every = fet.max_solvable(table), fet.max_solvable(table, "all_solved")
    assert maj["a"] == {"max_len": 10, "next_len": 20, "tested": [5, 10, 20, 40]}
    assert every["a"]["max_len"] == 5 and every["a"]["next_len"] == 10
    assert maj["b"]["max_len"] is None and maj["b"]["next_len"] == 5
    assert fet.alive(table, "a") is False and fet.alive(table, "b") is True
    assert "10 (the limit is >= 10 and < 20)" in fet.answer_text("a", maj["a"])


def test_aggregate_counts_successes_against_the_threshold():
    rows = [{"status": "ok", "cell": "rnn", "init": "default", "seq_len": "8", "seed": str(s), "test_accuracy": a,
             "steps": "10", "wall_s": "1.0"} for s, a in enumerate(["0.95", "0.90", "0.2"])]
    (r,) = fet.aggregate(rows, 0.9)
    assert (r["reps"], r["solved_reps"], r["majority_solved"], r["all_solved"]) == (3, 2, True, False)
    assert r["mean_accuracy"] == pytest.approx((0.95 + 0.9 + 0.2) / 3) and r["min_accuracy"] == 0.2
    rows.append({"status": "failed", "cell": "rnn", "init": "default", "seq_len": "8", "seed": "9"})
    assert fet.aggregate(rows, 0.9) == []              # a length with a failed or cut run is left out


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (3, 7), (1, 1)])
def test_wilson_interval_stays_in_0_1_and_contains_the_rate(k, n):
    lo, hi = fet.wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0 and hi - lo > 0


def test_exercise_init_is_uniform_0_2_with_zero_biases():
    import first_element as fe
    import npnet
    model = npnet.SequenceModel(1, 16, cell="rnn", output_size=1, return_sequences=False, rng=0)
    fe.exercise_init(model, np.random.default_rng(1))
    for name, p in model.params.items():
        if p.ndim == 1:
            assert not p.any(), name
        else:
            assert np.abs(p).max() <= 0.2 and np.abs(p).max() > 0.1, name
