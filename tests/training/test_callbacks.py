"""Callbacks: the hooks and their order, EarlyStopping's rule and restore_best, TimeLimit,
CSVLogger, TensorBoardLogger's missing-dependency error, and the Learner's use of them."""
import csv
import sys
import types

import numpy as np
import pytest

import npnet
from npnet.data import Stream, take
from npnet.layer import NpnetError
from npnet.training.callbacks import CSV_FIELDS


def running_sum(rng, B=8, T=10):
    while True:
        x = rng.standard_normal((B, T, 1))
        yield x, np.cumsum(x, axis=1) / 3


def _learner(**kw):
    model = npnet.SequenceModel(input_size=1, hidden_size=6, num_layers=1, cell="gru", output_size=1, rng=0)
    return npnet.Learner(model, "mse", "adam", lr=1e-2, progress=False, **kw)


class Recorder(npnet.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, learner):
        self.calls.append("begin")

    def on_log(self, learner, record):
        self.calls.append(record["step"])

    def on_train_end(self, learner):
        self.calls.append("end")


def test_hooks_are_called_in_order_and_stop_training_stops():
    rec = Recorder()

    class StopAt3(npnet.Callback):
        def on_log(self, learner, record):
            if record["step"] == 3:
                learner.stop_training = True

    L = _learner()
    L.fit(Stream(running_sum, 1), steps=10, callbacks=[rec, StopAt3()])
    assert rec.calls == ["begin", 1, 2, 3, "end"] and L.step == 3
    L.fit(Stream(running_sum, 1), steps=2, callbacks=[rec])          # a new fit starts again
    assert rec.calls[-4:] == ["begin", 4, 5, "end"] and L.step == 5


def test_bad_callback_is_refused():
    with pytest.raises(NpnetError, match="callbacks must be"):
        _learner().fit(Stream(running_sum, 1), steps=1, callbacks=[3])


def _fake_learner(value=0.0):
    params = {"w": np.full(3, value)}
    return types.SimpleNamespace(model=types.SimpleNamespace(params=params), stop_training=False,
                                 history=[{}])


@pytest.mark.parametrize("mode, values, patience, min_delta, stop_at, best_at", [
    ("min", [3.0, 2.0, 2.5, 2.4, 2.6], 2, 0.0, 4, 2),        # 2.5, 2.4 do not beat 2.0
    ("min", [3.0, 2.0, 1.95, 1.9, 1.0], 2, 0.1, 4, 2),       # 1.95, 1.9 beat 2.0 by < 0.1
    ("min", [3.0, 2.0, 1.5, 1.0], 0, 0.0, None, 4),          # always improving: never stops
    ("min", [3.0, 3.0], 0, 0.0, 2, 1),                       # patience 0: the first non-improvement
    ("max", [0.1, 0.5, 0.4, 0.6, 0.55, 0.5, 0.45], 3, 0.0, 7, 4),
])
def test_early_stopping_rule(mode, values, patience, min_delta, stop_at, best_at):
    es = npnet.EarlyStopping(monitor="eval_metric", mode=mode, patience=patience, min_delta=min_delta)
    lrn = _fake_learner()
    es.on_train_begin(lrn)
    stopped = None
    for step, v in enumerate(values, start=1):
        lrn.model.params["w"][:] = step                          # the weights at this record
        es.on_log(lrn, {"step": step, "loss": 9.0})              # no monitored key: ignored
        es.on_log(lrn, {"step": step, "eval_metric": v})
        if lrn.stop_training and stopped is None:
            stopped = step
            break
    assert stopped == stop_at and es.stopped_step == stop_at and es.best_step == best_at
    assert es.best == values[best_at - 1]
    es.on_train_end(lrn)                                         # restore_best: the weights of best_at
    np.testing.assert_array_equal(lrn.model.params["w"], np.full(3, float(best_at)))


def test_early_stopping_without_restore_keeps_the_last_weights():
    es = npnet.EarlyStopping(patience=0, restore_best=False)
    lrn = _fake_learner()
    for step, v in enumerate([1.0, 2.0], start=1):
        lrn.model.params["w"][:] = step
        es.on_log(lrn, {"step": step, "eval_loss": v})
    es.on_train_end(lrn)
    assert lrn.stop_training and es.best_params is None
    np.testing.assert_array_equal(lrn.model.params["w"], np.full(3, 2.0))


def test_early_stopping_errors():
    with pytest.raises(NpnetError, match="mode"):
        npnet.EarlyStopping(mode="auto")
    with pytest.raises(NpnetError, match="patience"):
        npnet.EarlyStopping(patience=-1)
    with pytest.raises(NpnetError, match="min_delta"):
        npnet.EarlyStopping(min_delta=-0.1)
    with pytest.raises(NpnetError, match="no record of this fit had it"):
        _learner().fit(Stream(running_sum, 1), steps=2, callbacks=[npnet.EarlyStopping()])


def test_early_stopping_in_a_learner_restores_the_best_evaluated_weights():
    ev = take(Stream(running_sum, 9), 2)
    es = npnet.EarlyStopping(patience=1, min_delta=10.0)          # nothing beats the first by 10
    L = _learner()
    L.fit(Stream(running_sum, 1), steps=50, eval_batches=ev, eval_every=3, callbacks=[es])
    assert L.step == 6 and es.best_step == 3 and es.stopped_step == 6
    assert L.evaluate(ev)["loss"] == L.history[2]["eval_loss"]    # the step-3 weights are back


class FakeClock:
    def __init__(self, tick):
        self.t, self.tick = 0.0, tick

    def __call__(self):
        self.t += self.tick
        return self.t


def test_time_limit_stops_and_counts_across_fits():
    tl = npnet.TimeLimit(10.0, clock=FakeClock(1.0))   # every clock read advances 1 s
    L = _learner()
    L.fit(Stream(running_sum, 1), steps=100, callbacks=[tl])
    # begin reads t=1; the record of step k reads t=k+1: elapsed k >= 10 at step 10
    assert L.step == 10
    assert tl.state_dict() == {"elapsed": 11.0}                   # the end-of-fit read counts too
    L.fit(Stream(running_sum, 1), steps=100, callbacks=[tl])
    assert L.step == 11                                           # already over the limit: one step
    with pytest.raises(NpnetError, match="seconds"):
        npnet.TimeLimit(0)


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    L = _learner()
    L.fit(Stream(running_sum, 1), steps=3, callbacks=[npnet.CSVLogger(path)])
    L.fit(Stream(running_sum, 1), steps=2, callbacks=[npnet.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [float(r["loss"]) for r in rows] == [r["loss"] for r in L.history]
    with pytest.raises(NpnetError, match="does not exist"):
        npnet.CSVLogger(tmp_path / "nowhere" / "log.csv")


def test_tensorboard_logger_needs_tensorboardx(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)        # import fails
    with pytest.raises(NpnetError, match="pip install tensorboardX"):
        npnet.TensorBoardLogger(tmp_path)
    L = _learner(out_dir=tmp_path)                                # out_dir: CSV only, silently
    L.fit(Stream(running_sum, 1), steps=1)
    assert (tmp_path / "metrics.csv").is_file() and not (tmp_path / "tensorboard").exists()


def test_tensorboard_logger_writes_scalars(monkeypatch, tmp_path):
    calls = []

    class FakeWriter:
        def __init__(self, logdir):
            calls.append(("init", logdir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            calls.append("flush")

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=FakeWriter))
    ev = take(Stream(running_sum, 9), 1)
    L = _learner()
    L.fit(Stream(running_sum, 1), steps=2, eval_batches=ev, eval_every=2,
          callbacks=[npnet.TensorBoardLogger(str(tmp_path))])
    assert calls[0] == ("init", str(tmp_path)) and calls[-1] == "flush"
    assert ("eval/eval_loss", L.history[1]["eval_loss"], 2) in calls
    assert ("train/lr", 1e-2, 1) in calls
