"""Tests for experiments/names.py: a tiny end-to-end run on generated data, prediction from the
saved checkpoint, usage errors, the split, and that a padded, masked batch of names of
different lengths gives exactly the gradients of the names taken one by one.
"""
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npnet

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "names.py"
sys.path.insert(0, str(SCRIPT.parent))                                   # for the script's `import common`


def _load_script():
    spec = importlib.util.spec_from_file_location("names_experiment", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


names = _load_script()
import common  # noqa: E402
import names_tools  # noqa: E402  (beside the script, on sys.path above)


def _tiny_names_dir(root: Path, per_language: int = 15) -> Path:
    """Three 'languages' with a visible pattern each (prefix Mc, suffix ov, suffix ez), 2-9 letters."""
    rng = np.random.default_rng(7)
    letters = "abcdefghiklmnoprstuvw"
    folder = root / "names"
    folder.mkdir()
    patterns = {"Aland": ("Mc", ""), "Borovia": ("", "ov"), "Castilla": ("", "ez")}
    for lang, (pre, suf) in patterns.items():
        lines = []
        for _ in range(per_language):
            core = "".join(rng.choice(list(letters), size=int(rng.integers(1, 6))))
            lines.append((pre + core + suf).capitalize() if not pre else pre + core.capitalize())
        if lang == "Castilla":
            lines.append("Núñez")                   # normalised to Nunez
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


TINY = ["--hidden", "8", "--epochs", "3", "--batch-size", "4", "--val-fraction", "0.25",
        "--lr", "0.1", "--patience", "5", "--time-limit", "0"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    data_dir = _tiny_names_dir(root)
    out = root / "run"
    code = names.main(["--data-dir", str(data_dir), "--out", str(out), *TINY])
    assert code == 0
    return data_dir, out


def test_end_to_end_writes_the_run_folder(tiny_run):
    data_dir, out = tiny_run
    for f in ("config.json", "metrics.csv", "summary.json", "checkpoint.npz", "learning_curves.png",
              "confusion.png", "confusion.csv"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    for png in ("learning_curves.png", "confusion.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    for k in ("test_accuracy", "baseline", "wall_s", "best_epoch", "val_accuracy"):
        assert k in summary, k
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["wall_s"] > 0
    # 16 Castilla names and 15 of each other: 3 + 3 + 3 test names; majority (train) class Castilla
    assert summary["n_test"] == 9 and summary["baseline"] == pytest.approx(3 / 9)
    assert summary["baseline_class"] == "Castilla"
    assert summary["n_train"] + summary["n_val"] + summary["n_test"] == 46
    config = json.loads((out / "config.json").read_text())
    assert config["cell"] == "lstm" and config["hidden"] == 8
    assert config["languages"] == ["Aland", "Borovia", "Castilla"]
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)


def test_reports_the_best_validation_model(tiny_run):
    """The checkpoint is the best-validation epoch and test_accuracy is that model's."""
    _, out = tiny_run
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val_accuracy"]) for r in rows]
    best = int(np.argmax(val))                                          # first epoch reaching the max
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == best + 1
    assert summary["val_accuracy"] == pytest.approx(val[best])
    assert summary["test_accuracy"] == pytest.approx(float(rows[best]["test_accuracy"]))
    ck = npnet.load_checkpoint(out / "checkpoint.npz")
    assert ck.extra["epoch"] == best + 1
    assert ck.extra["languages"] == ["Aland", "Borovia", "Castilla"]


@pytest.mark.parametrize("where", ["file", "folder"])
def test_predict_prints_top_three_languages(tiny_run, capsys, where):
    _, out = tiny_run
    ck = out / "checkpoint.npz" if where == "file" else out
    capsys.readouterr()
    assert names.main(["--predict", "McAllister", "Núñez", "--checkpoint", str(ck)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("McAllister: ") and lines[1].startswith("Núñez: ")
    for line in lines:
        parts = line.split(": ", 1)[1].split(", ")
        assert len(parts) == 3
        langs = [p.rsplit(" ", 1)[0] for p in parts]
        probs = [float(p.rsplit(" ", 1)[1]) for p in parts]
        assert sorted(langs) == ["Aland", "Borovia", "Castilla"]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=2e-3)


def test_predict_function_matches_model_probabilities(tiny_run):
    _, out = tiny_run
    top = names_tools.predict(out, ["Mcabc"], k=3)[0]
    ck = npnet.load_checkpoint(out / "checkpoint.npz")
    x = npnet.datasets.encode_names(["Mcabc"], dtype=ck.model.dtype)[0][None]
    logits, _ = ck.model.eval().fprop(x)
    p = npnet.SoftmaxCrossEntropyLoss(dtype=ck.model.dtype).probs(logits)[0]
    assert [l for l, _ in top] == [ck.extra["languages"][i] for i in np.argsort(-p)]
    assert [q for _, q in top] == pytest.approx(np.sort(p)[::-1].tolist())


@pytest.mark.parametrize("argv", [
    ["--hidden", "0"], ["--cell", "transformer"], ["--batch-size", "0"], ["--epochs", "0"],
    ["--val-fraction", "1.5"], ["--input-dropout", "1.0"], ["--lr", "-1"], ["--bptt", "5"],
    ["--predict", "Smith"], ["--optimizer", "lbfgs"], ["--lr-decay", "0"], ["--hidden", "many"],
    ["--data-dir", "/nonexistent/names/folder"], ["--dropout", "0.3"], ["--epoch-size", "10"],
    ["--steps", "10", "--epochs", "2"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        names.main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        names.main(["--predict", "Smith", "--checkpoint", str(tmp_path / "nothing.npz")])
    assert exc.value.code == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_script_exit_code_and_help(capsys):
    bad = subprocess.run([sys.executable, str(SCRIPT), "--layers", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--layers" in bad.stderr and ">= 1" in bad.stderr
    with pytest.raises(SystemExit) as exc:
        names.main(["--help"])
    assert exc.value.code == 0 and "NPNET_DATA" in capsys.readouterr().out


def test_split_is_stratified_and_val_comes_from_train(tmp_path):
    data = names.prepare_data(_tiny_names_dir(tmp_path, per_language=20), seed=3, val_fraction=0.25,
                              dedup=False, dtype=np.float64)
    train, val, test = (set(data[k].tolist()) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(len(data["labels"])))
    assert np.bincount(data["labels"][data["test"]]).tolist() == [4, 4, 4]     # 20% of 20 (21) per class
    # the test part is the library's 80/20 split with the same seed: validation never touches it
    _, test_ref = npnet.datasets.stratified_split(data["labels"], 0.2, rng=3)
    assert np.array_equal(np.sort(data["test"]), test_ref)
    again = names.prepare_data(tmp_path / "names", seed=3, val_fraction=0.25, dedup=False, dtype=np.float64)
    assert np.array_equal(again["val"], data["val"])


def test_training_batches_partition_the_training_names_and_group_by_length():
    lengths = np.random.default_rng(1).integers(2, 9, size=200)
    data = {"seqs": [np.ones((T, 3)) for T in lengths], "labels": np.arange(200), "lengths": lengths,
            "train": np.arange(0, 200, 2)}
    batches = list(names.train_batches(np.random.default_rng(0), data, 8, 0.0))
    assert sorted(np.concatenate([y for _, y, _ in batches]).tolist()) == data["train"].tolist()
    for x, y, mask in batches:
        assert (mask.sum(axis=1) == lengths[y]).all() and x.shape[:2] == mask.shape
    spread = [int(np.ptp(lengths[y])) for _, y, _ in batches]
    assert sum(spread) <= np.ptp(lengths[data["train"]])               # contiguous runs of the sorted lengths
    again = list(names.train_batches(np.random.default_rng(0), data, 8, 0.0))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, again))


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 1), ("rnn", 2)])
def test_padded_batch_gradients_equal_names_one_by_one(cell, layers):
    """Mean loss over a padded, masked batch == mean of the per-name losses, gradient for gradient."""
    seqs = npnet.datasets.encode_names(["Ng", "Schmidt", "O'Neal", "Abe", "Vasquez-Ortega"], dtype=np.float64)
    labels = np.array([1, 2, 0, 1, 2])
    cfg = dict(names.DEFAULTS, cell=cell, layers=layers, hidden=5, read_in=4, dtype=np.dtype(np.float64), seed=3)
    model = names.build_model(cfg, 3)
    loss = npnet.SoftmaxCrossEntropyLoss()
    runner = npnet.SequenceRunner(model, loss, npnet.optim.SGD(model.params, lr=0.1), clip=None)
    idx = np.arange(5)
    x, y, mask = names.make_batch(seqs, labels, idx)
    assert x.shape == (5, 14, 56) and mask.sum(axis=1).tolist() == [2, 7, 6, 3, 14]
    batch_loss = runner.compute_gradients(x, y, mask)
    batch = {k: g.copy() for k, g in model.grads.items()}
    one_loss, one = 0.0, {k: np.zeros_like(g) for k, g in model.grads.items()}
    for i in idx:
        one_loss += runner.compute_gradients(seqs[i][None], labels[i:i + 1]) / len(idx)
        for k, g in model.grads.items():
            one[k] += g / len(idx)
    assert batch_loss == pytest.approx(one_loss, rel=1e-12)
    for k in batch:
        np.testing.assert_allclose(batch[k], one[k], rtol=1e-9, atol=1e-13, err_msg=k)
    # and the mask matters: without it the padded steps change the gradients
    runner.compute_gradients(x, y, None)
    assert not np.allclose(model.grads["read_out.W"], one["read_out.W"])


def test_confusion_matrix_counts():
    C = common.confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert C.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_data_from_npnet_data_without_data_dir(tmp_path, monkeypatch):
    _tiny_names_dir(tmp_path)                                           # tmp_path/names
    monkeypatch.setenv("NPNET_DATA", str(tmp_path))
    data = names.prepare_data(None, seed=0, val_fraction=0.25, dedup=False, dtype=np.float32)
    assert len(data["labels"]) == 46 and data["languages"] == ("Aland", "Borovia", "Castilla")


def test_steps_cap_and_target_stop(tmp_path):
    data_dir = _tiny_names_dir(tmp_path)
    assert names.main(["--data-dir", str(data_dir), "--out", str(tmp_path / "a"), "--quiet",
                       "--hidden", "4", "--steps", "5", "--batch-size", "4"]) == 0
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["steps"] == 5 and s["stop_reason"] == "steps 5" and s["epochs_run"] == 1
    assert names.main(["--data-dir", str(data_dir), "--out", str(tmp_path / "b"), "--quiet",
                       "--hidden", "4", "--epochs", "5", "--target", "1e-9"]) == 0   # reached by any hit
    s = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert s["epochs_run"] == 1 and s["stopped_early"] and s["stop_reason"].startswith("target")


def test_report_commands_on_tiny_data(tmp_path, capsys):
    data_dir = _tiny_names_dir(tmp_path)
    tiny = ["--data-dir", str(data_dir), "--epochs", "1", "--quiet"]
    assert names.main([*tiny, "--report", "table", "--out", str(tmp_path / "t")]) == 0
    table = (tmp_path / "t" / "table.md").read_text().strip().splitlines()
    assert len(table) == 2 + len(names_tools.TABLE_CONFIGS) and "failed" not in "".join(table)
    assert "| GRU | 1 | 128 |" in table[-1]
    assert (tmp_path / "t" / "lstm-L2-H64" / "summary.json").is_file()
    assert names.main([*tiny, "--report", "batch-sizes", "--out", str(tmp_path / "b"), "--hidden", "4",
                       "--epochs", "2", "--subset", "0", "--jobs", "2"]) == 0
    out = tmp_path / "b"
    assert (out / "batch_sizes.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "batch_sizes.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    with open(out / "table.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert [(r["lr_mode"], int(r["batch_size"])) for r in runs] == [
        (m, B) for m in ("shared", "scaled") for B in (1, 10, 30)]
    assert all(int(r["epochs"]) == 2 for r in runs)                   # the same epochs for every batch size
    lr = {(r["lr_mode"], int(r["batch_size"])): float(r["lr"]) for r in runs}
    assert {lr[("shared", B)] for B in (1, 10, 30)} == {0.1}           # --lr, the default
    assert [lr[("scaled", B)] for B in (1, 10, 30)] == pytest.approx([0.1 * B / 32 for B in (1, 10, 30)])
    assert len(epochs) == 12 and all(r["train_loss"] and r["test_loss"] and r["test_accuracy"] for r in epochs)
    n_train = json.loads((out / "shared-B1" / "summary.json").read_text())["n_train"]
    assert [int(r["step"]) for r in epochs[:2]] == [n_train, 2 * n_train]   # B=1: one step per training name
    for r in runs:                                   # the table's last epoch is the per-epoch file's
        last = [e for e in epochs if (e["lr_mode"], e["batch_size"]) == (r["lr_mode"], r["batch_size"])][-1]
        assert float(last["test_accuracy"]) == pytest.approx(float(r["test_accuracy"]))
    assert (out / "table.md").read_text().count("\n") == 2 + 6
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for m in ("shared", "scaled"):
        best = max((r for r in runs if r["lr_mode"] == m), key=lambda r: float(r["test_accuracy"]))
        assert summary["best_batch_size"][m] == int(best["batch_size"])
        assert f"best B={best['batch_size']}" in printed.split(f"{m} lr:")[1].splitlines()[0]


def test_batch_size_report_trains_on_a_stratified_subset(tmp_path):
    data_dir = _tiny_names_dir(tmp_path, per_language=30)
    assert names.main(["--data-dir", str(data_dir), "--quiet", "--report", "batch-sizes", "--out", str(tmp_path / "b"),
                       "--hidden", "4", "--epochs", "1", "--subset", "30", "--jobs", "1"]) == 0
    s = json.loads((tmp_path / "b" / "scaled-B10" / "summary.json").read_text())
    full = names.prepare_data(data_dir, 0, 0.1, False, np.float32)
    assert s["n_train"] == pytest.approx(30, abs=3) and s["n_train"] < len(full["train"])
    assert s["n_test"] == len(full["test"]) and s["n_val"] == len(full["val"])  # only training names are cut
    assert s["steps"] == -(-s["n_train"] // 10)


@pytest.mark.parametrize("bad", [["--subset", "-1"], ["--jobs", "0"], ["--report", "batch"]])
def test_batch_size_report_bad_arguments_exit_2(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        names.main(["--data-dir", str(_tiny_names_dir(tmp_path)), "--report", "batch-sizes", *bad,
                    "--out", str(tmp_path / "run")])
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_wall_time_covers_the_whole_run(tiny_run):
    _, out = tiny_run
    s = json.loads((out / "summary.json").read_text())
    with open(out / "metrics.csv", newline="") as f:
        epoch_seconds = sum(float(r["seconds"]) for r in csv.DictReader(f))
    assert s["wall_s"] >= s["train_s"] >= epoch_seconds > 0


def test_divergence_stops_and_keeps_the_best_epoch(tmp_path, monkeypatch):
    """A NonFiniteError from the runner ends training cleanly; the best epoch so far is reported."""
    real = npnet.SequenceRunner.train_step
    calls = {"n": 0}

    def flaky(self, x, y, mask=None):
        calls["n"] += 1
        if calls["n"] > 12:                                     # 28 training names: 7 steps per epoch
            raise npnet.clip.NonFiniteError("loss is nan at step 13")
        return real(self, x, y, mask)

    monkeypatch.setattr(npnet.SequenceRunner, "train_step", flaky)
    out = tmp_path / "run"
    assert names.main(["--data-dir", str(_tiny_names_dir(tmp_path)), "--out", str(out), "--quiet",
                       "--hidden", "4", "--batch-size", "4", "--epochs", "5"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["stop_reason"].startswith("non-finite") and s["steps"] == 12
    assert s["best_epoch"] in (1, 2) and (out / "checkpoint.npz").is_file()


def test_missing_data_is_a_clean_error(tmp_path, capsys):
    """A --data-dir without Language.txt files is a usage error (exit 2, docs/experiments.md)."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exc:
        names.main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "holds no names data" in err and "Language.txt" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()                              # nothing written
