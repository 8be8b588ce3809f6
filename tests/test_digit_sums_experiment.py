"""experiments/digit_sums.py: targets, the image split, the conv read-in + LSTM model built from library
layers (gradients, bit-exact with the pre-library model), end-to-end runs on a tiny synthetic IDX set
(a few seconds), plus usage errors (exit 2)."""
import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import npnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import digit_sums as ds  # noqa: E402


# -- a tiny synthetic MNIST in IDX format -----------------------------------------------------
def _write_idx(path: Path, arr: np.ndarray, magic: int, gz: bool) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def fake_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit d drawn as a bright horizontal bar at row 2 + 2 d, plus noise: learnable, cheap."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, d in enumerate(labels):
        images[i, 2 + 2 * d:4 + 2 * d, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture
def mnist_dir(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    images, labels = fake_digits(200)
    _write_idx(d / "t10k-images-idx3-ubyte", images, 2051, gz=True)
    _write_idx(d / "t10k-labels-idx1-ubyte", labels, 2049, gz=False)
    return d


TINY = ["--steps", "4", "--eval-every", "2", "--digit-steps", "2", "--digit-batch", "16",
        "--batch-size", "4", "--test-seqs", "12", "--eval-seqs", "6", "--conv-channels", "2,4",
        "--features", "8", "--hidden", "8", "--quiet"]


# -- targets ----------------------------------------------------------------------------------
def test_alternating_sums_by_hand():
    np.testing.assert_array_equal(ds.alternating_sums([3, 5, 2, 7]), [3, -2, 0, -7])
    np.testing.assert_array_equal(ds.alternating_sums([[9, 0, 9], [0, 9, 0]]), [[9, 9, 18], [0, -9, -9]])
    np.testing.assert_array_equal(ds.alternating_sums([4]), [4])


def test_alternating_sums_match_a_plain_loop(rng):
    digits = rng.integers(0, 10, size=(50, 7))
    got = ds.alternating_sums(digits)
    for b in range(50):
        total = 0
        for t in range(7):
            total = total + digits[b, t] if t % 2 == 0 else total - digits[b, t]   # restart per sequence
            assert got[b, t] == total


@pytest.mark.parametrize("L", [1, 2, 3, 4, 5])
def test_total_range_is_exact(L):
    obj = ds.Objective("classify", L, np.float64)
    lo, hi = obj.lo, obj.hi
    grids = np.stack(np.meshgrid(*[np.arange(10)] * L, indexing="ij"), -1).reshape(-1, L)
    sums = ds.alternating_sums(grids)
    assert (sums.min(), sums.max()) == (lo, hi)
    assert hi - lo + 1 == 9 * L + 1
    assert obj.output_size == 9 * L + 1
    if L == 4:
        assert (lo, hi) == (-18, 18)


@pytest.mark.parametrize("kind", ["classify", "regress"])
def test_objective_targets_decode_back(kind, rng):
    L = 4
    obj = ds.Objective(kind, L, np.float64)
    totals = ds.alternating_sums(rng.integers(0, 10, size=(20, L)))
    target = obj.target(totals)
    if kind == "classify":
        assert obj.output_size == 37 and target.min() >= 0 and target.max() < 37
        out = np.eye(37)[target]                                # perfect logits
    else:
        assert obj.output_size == 1
        out = target + 0.04                                     # within rounding of the truth
    np.testing.assert_array_equal(obj.decode(out), totals)
    assert obj.accuracy(out, target) == 1.0                     # the Learner's metric
    wrong = out.copy()
    wrong[0, 0] = np.roll(wrong[0, 0], 1) if kind == "classify" else wrong[0, 0] + 1.0
    assert obj.accuracy(wrong, target) == pytest.approx(1 - 1 / totals.size)


# -- the split --------------------------------------------------------------------------------
def split_images(labels, fraction, seed):
    return ds.stratified_split(labels, fraction, rng=seed)                # what main() calls


def test_image_split_is_disjoint_seeded_and_complete():
    _, labels = fake_digits(500)
    tr, te = split_images(labels, 0.2, seed=3)
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(500))
    assert te.size == 100
    tr2, te2 = split_images(labels, 0.2, seed=3)
    np.testing.assert_array_equal(te, te2)
    _, te3 = split_images(labels, 0.2, seed=4)
    assert not np.array_equal(te, te3)


def test_sequences_use_only_their_split(rng):
    _, labels = fake_digits(300)
    tr, te = split_images(labels, 0.25, seed=0)
    seq_tr = ds.sample_sequences(tr, 200, 5, rng)
    seq_te = ds.sample_sequences(te, 200, 5, rng)
    assert seq_tr.shape == (200, 5)
    assert np.isin(seq_tr, tr).all() and not np.isin(seq_tr, te).any()
    assert np.isin(seq_te, te).all() and not np.isin(seq_te, tr).any()


# -- the model --------------------------------------------------------------------------------
def _model(dtype, channels=(2,), features=3, hidden=3, output=5, rng=0):
    g = np.random.default_rng(rng)
    return npnet.SequenceModel(features, hidden, cell="lstm", output_size=output,
                               read_in=ds.conv_read_in(channels, features, dtype, g), dtype=dtype, rng=g)


def test_model_gradcheck_float64(rng):
    model = _model(np.float64)
    x = rng.random((2, 3, 1, 28, 28))
    errs = npnet.gradcheck(model, x, check_input=False)                  # 28x28 inputs: params only
    assert set(errs) == {f"param {k}" for k in model.params}
    assert max(errs.values()) < 1e-6, errs


def test_model_is_float32_and_predict_matches_step(rng):
    model = _model(np.float32, channels=(2, 3), features=4, hidden=5, output=7, rng=1)
    x = ds.to_float((rng.random((3, 4, 28, 28)) * 255).astype(np.uint8), np.float32)   # (B, T, 1, 28, 28)
    out, _ = model.fprop(x)
    model.clear_cache()
    assert out.shape == (3, 4, 7) and out.dtype == np.float32
    state, ys = None, []
    for t in range(4):
        y, state = model.step(x[:, t], state)
        ys.append(y)
    np.testing.assert_allclose(np.stack(ys, axis=1), out, rtol=1e-5, atol=1e-6)
    with pytest.raises(npnet.ShapeError, match="Conv2D expects"):
        model.fprop(rng.random((3, 4, 28, 28)))                           # no channel axis


def test_parameter_order_is_the_old_models(rng):
    """conv0, conv1, dense, cells, read-out: the order the global gradient norm sums in (clipping), as the
    script's former hand-chained DigitSumModel had it, so the default run's numbers stay bit-identical."""
    model = _model(np.float32, channels=(16, 32), features=64, hidden=64, output=37)
    assert list(model.params) == ["read_in.0.W", "read_in.0.b", "read_in.3.W", "read_in.3.b", "read_in.7.W",
                                  "read_in.7.b", "cells.0.W_x", "cells.0.W_h", "cells.0.b", "read_out.W", "read_out.b"]
    assert model.num_params == 91_493                                    # as reported before the change


# -- end to end -------------------------------------------------------------------------------
def test_end_to_end_run_folder(mnist_dir, tmp_path):
    out = tmp_path / "run"
    summary = ds.main(TINY + ["--mnist-dir", str(mnist_dir), "--out", str(out)])
    for name in ("config.json", "metrics.csv", "summary.json", "checkpoint.npz",
                 "learning_curves.png", "step_accuracy.png", "examples.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    for key in ("step_accuracy", "test_accuracy", "baseline", "wall_s", "step_accuracy_by_position",
                "digit_accuracy", "implied_step_accuracy"):
        assert key in s, key
    assert len(s["step_accuracy_by_position"]) == 4
    assert s["step_accuracy"] == pytest.approx(np.mean(s["step_accuracy_by_position"]))
    p = s["digit_accuracy"]
    assert s["baseline"] == pytest.approx(np.mean([p, p ** 2, p ** 3, p ** 4]))
    assert s["steps"] == 4 and summary["steps"] == 4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["n_train_images"] + cfg["n_test_images"] == 200 and cfg["seq_len"] == 4
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))   # the Learner's CSVLogger
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [bool(r["eval_metric"]) for r in rows] == [False, True, False, True]   # --eval-every 2
    ck = npnet.load_checkpoint(out / "checkpoint.npz")
    assert isinstance(ck.model.read_in, npnet.Sequential) and ck.step == 4
    assert [type(l).__name__ for l in ck.model.read_in.layers] == ["Conv2D", "MaxPool2D", "ReLU"] * 2 + [
        "Flatten", "LinearLayer", "ReLU"]


def test_reports_lengths_and_objectives(mnist_dir, tmp_path):
    out = tmp_path / "lengths"
    s = ds.main(TINY + ["--mnist-dir", str(mnist_dir), "--out", str(out), "--report", "lengths",
                        "--lengths", "2,3", "--seq-len", "3", "--digit-steps", "0", "--steps", "2"])
    assert [r["seq_len"] for r in s["runs"]] == [2, 3] and s["seq_len"] == 3
    assert (out / "lengths.png").is_file() and (out / "seq_len_2" / "metrics.csv").is_file()
    assert s["baseline"] == pytest.approx(s["probe_implied_step_accuracy"])
    out = tmp_path / "objectives"
    s = ds.main(TINY + ["--mnist-dir", str(mnist_dir), "--out", str(out), "--report", "objectives",
                        "--steps", "2", "--digit-steps", "0"])
    assert [r["objective"] for r in s["runs"]] == ["classify", "regress"]
    assert s["runs"][1]["classes"] is None and s["objective"] == "classify"


def test_report_grid_lengths_by_batch_sizes(mnist_dir, tmp_path, capsys):
    out = tmp_path / "grid"
    s = ds.main(TINY + ["--mnist-dir", str(mnist_dir), "--out", str(out), "--report", "grid", "--grid-lengths", "2,3",
                        "--batch-sizes", "2,4", "--grid-images", "48", "--digit-steps", "0", "--jobs", "2"])
    with open(out / "table.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    assert [(int(c["seq_len"]), int(c["batch_size"])) for c in cells] == [(2, 2), (2, 4), (3, 2), (3, 4)]
    for c in cells:                                  # the same images for every cell: steps = 48 // (B L)
        L, B = int(c["seq_len"]), int(c["batch_size"])
        assert int(c["steps"]) == 48 // (B * L) and int(c["images"]) == int(c["steps"]) * B * L
        assert 0 <= float(c["test_accuracy"]) <= float(c["step_accuracy"]) <= 1
        assert (out / f"L{L}-B{B}" / "metrics.csv").is_file()
    printed = capsys.readouterr().out
    for L in (2, 3):                                 # the answer, computed again from table.csv
        best = max((c for c in cells if int(c["seq_len"]) == L), key=lambda c: float(c["step_accuracy"]))
        assert s["best_batch_size"][L] == int(best["batch_size"])
        assert f"L={L}: best B={best['batch_size']}" in printed
    assert json.loads((out / "summary.json").read_text())["grid_images"] == 48
    assert (out / "table.md").read_text().startswith("| L \\ B | 2 | 4 |")
    assert (out / "grid.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("bad", [
    ["--report", "grid", "--batch-sizes", "0,4"], ["--report", "grid", "--grid-lengths", "a"],
    ["--report", "grid", "--grid-images", "0"], ["--report", "grid", "--jobs", "0"],
    ["--seq-len", "0"], ["--bptt", "2"], ["--objective", "sort"], ["--lengths", "0,2"],
    ["--test-fraction", "1.5"], ["--test-fraction", "0"], ["--lr", "-1"], ["--report", "all"],
    ["--conv-channels", "2,2,2,2"], ["--dtype", "float16"],
])
def test_bad_arguments_exit_2(bad, mnist_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        ds.main(["--mnist-dir", str(mnist_dir), "--out", "unused"] + bad)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_missing_mnist_dir_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        ds.main(["--mnist-dir", str(tmp_path / "nope")])
    assert exc.value.code == 2


# -- augmentation and schedule ----------------------------------------------------------------
def test_shifted_translates_within_the_range(rng):
    images = np.zeros((5, 28, 28), np.uint8)
    images[np.arange(5), 14, 14] = 200                                   # one dot at the centre
    idx = np.array([[0, 1, 2], [3, 4, 0]])
    np.testing.assert_array_equal(ds.shifted(images, idx, 0, rng), images[idx])
    out = ds.shifted(images, np.repeat(idx, 30, axis=0), 2, rng)           # (60, 3, 28, 28)
    assert out.shape == (60, 3, 28, 28) and out.dtype == np.uint8
    assert (out.reshape(180, -1).max(axis=1) == 200).all()                 # the dot survives, once
    assert ((out > 0).reshape(180, -1).sum(axis=1) == 1).all()
    r, c = np.nonzero(out.reshape(180, 28, 28) > 0)[1:]
    assert r.min() >= 12 and r.max() <= 16 and c.min() >= 12 and c.max() <= 16
    assert len(set(zip(r, c))) > 15                                        # offsets really vary


def test_cosine_schedule_ends_at_five_percent(mnist_dir, tmp_path):
    ds.main(TINY + ["--mnist-dir", str(mnist_dir), "--out", str(tmp_path), "--lr-schedule", "cosine",
                    "--lr", "0.01", "--digit-steps", "0"])
    lr = [float(r["lr"]) for r in csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines())]
    want = [0.0005 + 0.0095 * (1 + np.cos(np.pi * t / 4)) / 2 for t in range(4)]     # the lr each step used
    np.testing.assert_allclose(lr, want, rtol=1e-12)
