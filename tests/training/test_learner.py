"""Learner: bit-exact resume (data and dropout RNG, optimiser, stateful carry), fit by steps and
epochs, evaluation, prediction, CSV, optional TensorBoard, plots, callbacks, errors."""
import csv
import os
import sys
import types

import numpy as np
import pytest

import npnet
from npnet.data import Stream, minibatches, take
from npnet.layer import NpnetError
from npnet.training.learner import Learner, accuracy


def running_sum(rng, B=8, T=10):
    """Infinite toy stream: y_t = (x_1 + ... + x_t) / 3 with random lengths."""
    while True:
        x = rng.standard_normal((B, T, 1))
        lengths = rng.integers(3, T + 1, size=B)
        yield x, np.cumsum(x, axis=1) / 3, np.arange(T)[None] < lengths[:, None]


def _model(**kw):
    base = dict(input_size=1, hidden_size=6, num_layers=2, cell="lstm", output_size=1, dropout=0.2, rng=0)
    base.update(kw)
    return npnet.SequenceModel(**base)


def _same_params(a, b):
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


@pytest.mark.parametrize("k", [1, 7, 12])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, k):
    N = 12
    whole = Learner(_model(), "mse", "adam", lr=1e-2, bptt=4, progress=False)
    whole.fit(Stream(running_sum, 5), steps=N)

    first = Learner(_model(), "mse", "adam", lr=1e-2, bptt=4, progress=False)
    first.fit(Stream(running_sum, 5), steps=k)
    first.save(tmp_path / "ck.npz")
    del first
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    assert second.step == k and second.runner.bptt == 4
    second.fit(Stream(running_sum, 5), steps=N - k)

    _same_params(whole.model, second.model)
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in second.history]
    assert whole.runner.grad_norms == second.runner.grad_norms
    sw, ss = whole.optimizer.state_dict(), second.optimizer.state_dict()
    for key in sw:
        np.testing.assert_array_equal(sw[key], ss[key])


def test_resume_without_the_rng_states_would_differ(tmp_path):
    """The test above can fail: resuming with a fresh data stream position gives other params."""
    whole = Learner(_model(), "mse", "adam", lr=1e-2, progress=False)
    whole.fit(Stream(running_sum, 5), steps=6)
    first = Learner(_model(), "mse", "adam", lr=1e-2, progress=False)
    first.fit(Stream(running_sum, 5), steps=3)
    first.save(tmp_path / "ck.npz")
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    second._resume = None                                      # forget the data position
    second.fit(Stream(running_sum, 5), steps=3)
    assert not np.array_equal(whole.model.params["cells.0.W_h"], second.model.params["cells.0.W_h"])


@pytest.mark.parametrize("k", [3, 5, 7])
def test_resume_mid_epoch_and_at_epoch_boundaries_stateful(tmp_path, k):
    """A finite, reshuffled epoch of 5 batches; stateful carry reset at every pass."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6, 2))
    Y = rng.integers(0, 3, size=(20, 6))

    def make():
        return Stream(minibatches, 11, X, Y, batch_size=4)

    kw = dict(stateful=True, progress=False, metric="accuracy")
    whole = Learner(_model(input_size=2, output_size=3, cell="gru"), "ce", "sgd", lr=0.1, **kw)
    whole.fit(make(), steps=10)
    assert whole.epoch == 1                                     # 10 steps = 2 passes (end of 2nd unseen)
    first = Learner(_model(input_size=2, output_size=3, cell="gru"), "ce", "sgd", lr=0.1, **kw)
    first.fit(make(), steps=k)
    first.save(tmp_path / "ck.npz")
    second = Learner.resume(tmp_path / "ck.npz", "ce", metric="accuracy", progress=False)
    assert second.runner.stateful
    second.fit(make(), steps=10 - k)
    _same_params(whole.model, second.model)
    assert [r["metric"] for r in whole.history] == [r["metric"] for r in second.history]


def test_fit_by_epochs_over_a_list_with_eval_each_pass():
    data = take(Stream(running_sum, 1), 4)
    ev = take(Stream(running_sum, 2), 2)
    L = Learner(_model(dropout=0.0), "mse", "adam", lr=2e-2, metric="mse", progress=False)
    L.fit(data, epochs=3, eval_batches=ev)
    assert L.step == 12 and L.epoch == 3
    evals = [r for r in L.history if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    res = L.evaluate(ev)
    assert set(res) == {"loss", "metric"}
    assert res["loss"] == pytest.approx(evals[-1]["eval_loss"], rel=1e-12)
    assert res["metric"] == pytest.approx(res["loss"], rel=1e-9)       # metric mse == MSE loss (V=1)


def test_one_shot_generator_is_a_single_pass():
    gen = iter(take(Stream(running_sum, 1), 3))
    L = Learner(_model(), "mse", "adam", progress=False)
    L.fit(gen, steps=10)
    assert L.step == 3 and L.epoch == 1


def test_training_learns_and_eval_every(tmp_path):
    ev = take(Stream(running_sum, 9), 2)
    L = Learner(_model(dropout=0.0, hidden_size=12), "mse", "adam", lr=2e-2, progress=False, out_dir=tmp_path)
    before = L.evaluate(ev)["loss"]
    L.fit(Stream(running_sum, 3), steps=60, eval_batches=ev, eval_every=20)
    assert [r["step"] for r in L.history if "eval_loss" in r] == [20, 40, 60]
    assert L.history[-1]["eval_loss"] < 0.5 * before


def test_predict_is_eval_mode_and_leaves_no_cache(rng):
    L = Learner(_model(dropout=0.5), "mse", "adam", progress=False)
    x = rng.standard_normal((3, 5, 1))
    p1, p2 = L.predict(x), L.predict(x)
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (3, 5, 1) and L.model.training
    assert L.model._cache is None and L.model.cells[0]._cache is None


def test_csv_history_and_plot(tmp_path):
    ev = take(Stream(running_sum, 2), 1)
    L = Learner(_model(), "mse", "adam", progress=False, out_dir=tmp_path, log_every=2,
                metric=lambda p, y, m: 1.0)
    L.fit(Stream(running_sum, 1), steps=6, eval_batches=ev, eval_every=3)
    assert [r["step"] for r in L.history] == [2, 3, 4, 6]          # every 2nd step plus the evaluations
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[1]["eval_loss"] != "" and rows[0]["eval_loss"] == ""
    assert float(rows[-1]["loss"]) == L.history[-1]["loss"]
    L.save(tmp_path / "ck.npz")
    L2 = Learner.resume(tmp_path / "ck.npz", "mse", progress=False, out_dir=tmp_path)
    L2.fit(Stream(running_sum, 1), steps=2)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 3, 4, 6, 7, 8]     # appended, one header
    L2.plot(tmp_path / "curves.png")
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "tensorboard").exists() or "tensorboardX" in sys.modules


def test_tensorboard_events_when_tensorboardx_is_installed(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, logdir):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            calls.append("flush")

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=FakeWriter))
    L = Learner(_model(), "mse", "adam", progress=False, out_dir=tmp_path)
    L.fit(Stream(running_sum, 1), steps=2)
    assert calls[0] == ("init", os.path.join(tmp_path, "tensorboard"))
    assert ("train/loss", L.history[1]["loss"], 2) in calls and calls[-1] == "flush"


def test_progress_bar_and_quiet(capsys):
    L = Learner(_model(), "mse", "adam", progress=True)
    L.fit(Stream(running_sum, 1), steps=2)
    assert "step" in capsys.readouterr().err
    Q = Learner(_model(), "mse", "adam", progress=False)
    Q.fit(Stream(running_sum, 1), steps=2)
    assert capsys.readouterr().err == ""


def test_callbacks_can_stop_training():
    seen = []

    def stop_at_3(learner, rec):
        seen.append(rec["step"])
        return rec["step"] >= 3

    L = Learner(_model(), "mse", "adam", progress=False)
    L.fit(Stream(running_sum, 1), steps=10, callbacks=[stop_at_3])
    assert L.step == 3 and seen == [1, 2, 3]


def test_accuracy_metric_with_mask():
    pred = np.array([[[0.1, 0.9], [0.8, 0.2], [0.0, 1.0]]])
    y = np.array([[1, 1, 0]])
    assert accuracy(pred, y) == pytest.approx(1 / 3)
    assert accuracy(pred, y, np.array([[True, False, False]])) == 1.0


def test_errors(tmp_path):
    m = _model()
    with pytest.raises(NpnetError, match="loss must be"):
        Learner(m, "hinge")
    with pytest.raises(NpnetError, match="metric must be"):
        Learner(m, "mse", metric="f1")
    with pytest.raises(NpnetError, match="only when optimizer is given by name"):
        Learner(m, "mse", npnet.optim.SGD(m.params, lr=0.1), lr=0.5)
    L = Learner(m, "mse", progress=False)
    with pytest.raises(NpnetError, match="not both"):
        L.fit([], steps=1, epochs=1)
    with pytest.raises(NpnetError, match="no batch"):
        L.fit([], steps=3)
    with pytest.raises(NpnetError, match=r"tuple \(x, y\)"):
        L.fit([np.zeros((1, 2, 1))], steps=1)
    npnet.save_checkpoint(tmp_path / "plain.npz", m)
    with pytest.raises(NpnetError, match="not a Learner checkpoint"):
        Learner.resume(tmp_path / "plain.npz", "mse")


def test_resume_between_epochs(tmp_path):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((12, 5, 1)), rng.standard_normal((12, 5, 1))

    def make():
        return Stream(minibatches, 4, X, Y, batch_size=4)

    whole = Learner(_model(), "mse", "adam", stateful=True, progress=False)
    whole.fit(make(), epochs=2)
    first = Learner(_model(), "mse", "adam", stateful=True, progress=False)
    first.fit(make(), epochs=1)
    assert first.epoch == 1 and first.step == 3
    first.save(tmp_path / "ck.npz")
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    second.fit(make(), epochs=1)
    assert second.epoch == 2 and second.step == 6
    _same_params(whole.model, second.model)


def test_a_callback_can_checkpoint_mid_fit(tmp_path):
    def save_at_4(learner, rec):
        if rec["step"] == 4:
            learner.save(tmp_path / "mid.npz")

    whole = Learner(_model(), "mse", "adam", progress=False)
    whole.fit(Stream(running_sum, 3), steps=8, callbacks=[save_at_4])
    resumed = Learner.resume(tmp_path / "mid.npz", "mse", progress=False)
    resumed.fit(Stream(running_sum, 3), steps=4)
    _same_params(whole.model, resumed.model)


def test_resume_float32_stateful_truncated(tmp_path):
    """The carried state goes through the JSON header: float32 values must survive exactly."""
    def make():
        return Stream(running_sum, 6)

    kw = dict(stateful=True, bptt=3, progress=False)
    whole = Learner(_model(dtype=np.float32), "mse", "rmsprop", lr=1e-2, **kw)
    whole.fit(make(), steps=6)
    first = Learner(_model(dtype=np.float32), "mse", "rmsprop", lr=1e-2, **kw)
    first.fit(make(), steps=4)
    first.save(tmp_path / "ck.npz")
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    assert second.runner.state[0][0].dtype == np.float32
    np.testing.assert_array_equal(second.runner.state[1][1], first.runner.state[1][1])
    second.fit(make(), steps=2)
    _same_params(whole.model, second.model)
    assert all(p.dtype == np.float32 for p in second.model.params.values())


def test_progress_bar_total_and_eval_postfix(capsys):
    data = take(Stream(running_sum, 1), 3)                        # a list: len() known
    ev = take(Stream(running_sum, 2), 1)
    L = Learner(_model(), "mse", "adam", progress=True)
    L.fit(data, epochs=2, eval_batches=ev)
    err = capsys.readouterr().err
    assert "0/6" in err                                           # 2 epochs x 3 batches
    assert f"eval_loss={L.history[-1]['eval_loss']:.4g}" in err   # shown beside the training loss
    L.fit(Stream(running_sum, 1), steps=4)
    assert "0/4" in capsys.readouterr().err
    L.fit(iter(take(Stream(running_sum, 1), 2)))                 # a one-shot iterator: no len()
    err = capsys.readouterr().err
    assert "0step [" in err and "0/" not in err                   # no total


class DoubledLoss(npnet.SequenceRunner):
    """A custom training mode through the override point: the gradient of 2 * loss."""

    def compute_gradients(self, x, y, mask=None):
        value = super().compute_gradients(x, y, mask)
        for g in self.model.grads.values():
            g *= 2
        return 2 * value


def test_runner_class_trains_through_the_one_train_step(tmp_path):
    """SGD on 2 * loss with lr equals SGD on loss with 2 lr, bit for bit (doubling is exact)."""
    custom = Learner(_model(dropout=0.0), "mse", "sgd", lr=0.05, clip=None, progress=False,
                     runner_class=DoubledLoss)
    plain = Learner(_model(dropout=0.0), "mse", "sgd", lr=0.1, clip=None, progress=False)
    custom.fit(Stream(running_sum, 4), steps=3)
    plain.fit(Stream(running_sum, 4), steps=3)
    assert type(custom.runner) is DoubledLoss and custom.runner.steps == 3
    _same_params(custom.model, plain.model)
    assert [r["loss"] for r in custom.history] == [2 * r["loss"] for r in plain.history]
    custom.save(tmp_path / "ck.npz")
    again = Learner.resume(tmp_path / "ck.npz", "mse", progress=False, runner_class=DoubledLoss)
    assert type(again.runner) is DoubledLoss and again.runner.steps == 3
    with pytest.raises(NpnetError, match="runner_class"):
        Learner(_model(), "mse", runner_class=object)
