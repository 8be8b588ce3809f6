"""A run interrupted mid-fit (a crash right after a checkpoint) and resumed ends bit-identical to
the uninterrupted run, for every callback and every learning-rate scheduler: same weights
(array_equal), same history, same callback/scheduler state."""
import csv
import sys
import types

import numpy as np
import pytest

import npnet
from npnet.data import Stream, take
from npnet.layer import NpnetError
from npnet.optim import lr_scheduler as sch

N, K, EVERY = 12, 5, 2            # total steps, crash after step K, evaluate every 2 steps


def running_sum(rng, B=6, T=8):
    while True:
        x = rng.standard_normal((B, T, 1))
        lengths = rng.integers(3, T + 1, size=B)
        yield x, np.cumsum(x, axis=1) / 3, np.arange(T)[None] < lengths[:, None]


class Crash(Exception):
    pass


class SaveThenCrash(npnet.Callback):
    """Put last in the list: checkpoint after every other callback saw the record, then die."""

    def __init__(self, step, path):
        self.step, self.path = step, path

    def on_log(self, learner, record):
        if record["step"] == self.step:
            learner.save(self.path)
            raise Crash


def _new_learner():
    model = npnet.SequenceModel(input_size=1, hidden_size=6, num_layers=2, cell="lstm", output_size=1,
                                dropout=0.2, rng=0)
    return npnet.Learner(model, "mse", "adam", lr=2e-2, progress=False)


def _fit(learner, steps, callbacks):
    ev = take(Stream(running_sum, 99), 2)
    learner.fit(Stream(running_sum, 3), steps=steps, eval_batches=ev, eval_every=EVERY, callbacks=callbacks)


def _step_clock(learner):
    """A deterministic clock: one simulated second per optimiser step of ``learner``."""
    return lambda: float(learner.step)


class FakeWriter:
    calls = []

    def __init__(self, logdir):
        pass

    def add_scalar(self, tag, value, step):
        FakeWriter.calls.append((tag, value, step))

    def flush(self):
        pass


# name -> make(learner, folder) -> the callbacks (new objects for every run)
CASES = {
    "EarlyStopping-stops": lambda L, d: [npnet.EarlyStopping(patience=2, min_delta=10.0)],
    "EarlyStopping-loss": lambda L, d: [npnet.EarlyStopping(monitor="loss", patience=4)],
    "TimeLimit": lambda L, d: [npnet.TimeLimit(9, clock=_step_clock(L))],
    "CSVLogger": lambda L, d: [npnet.CSVLogger(d / "log.csv")],
    "TensorBoardLogger": lambda L, d: [npnet.TensorBoardLogger(d / "tb")],
    "StepLR": lambda L, d: [sch.StepLR(L.optimizer, step_size=3, gamma=0.5)],
    "ExponentialLR": lambda L, d: [sch.ExponentialLR(L.optimizer, gamma=0.9)],
    "CosineAnnealingLR": lambda L, d: [sch.CosineAnnealingLR(L.optimizer, T_max=N, eta_min=1e-3)],
    "LambdaLR": lambda L, d: [sch.LambdaLR(L.optimizer, lambda t: 1.0 / (1 + t))],
    "LinearLR": lambda L, d: [sch.LinearLR(L.optimizer, start_factor=0.1, total_iters=8)],
    "ReduceLROnPlateau": lambda L, d: [sch.ReduceLROnPlateau(L.optimizer, factor=0.5, patience=0,
                                                             threshold=0.2)],
    "warmup+cosine+early+function": lambda L, d: [
        sch.LinearLR(L.optimizer, start_factor=0.2, total_iters=4), sch.CosineAnnealingLR(L.optimizer, T_max=N),
        npnet.EarlyStopping(monitor="loss", patience=4), lambda lrn, rec: False],
}


def _without_seconds(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _state(callbacks):
    return [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in callbacks]


def _assert_same_state(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_and_resumed_run_is_bit_identical(name, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=FakeWriter))
    FakeWriter.calls = []
    make = CASES[name]
    (tmp_path / "whole").mkdir()
    (tmp_path / "split").mkdir()

    whole = _new_learner()
    whole_cbs = make(whole, tmp_path / "whole")
    _fit(whole, N, whole_cbs)
    whole_calls, FakeWriter.calls = FakeWriter.calls, []

    first = _new_learner()
    with pytest.raises(Crash):
        _fit(first, N, make(first, tmp_path / "split") + [SaveThenCrash(K, tmp_path / "ck.npz")])
    del first
    resumed = npnet.Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    resumed_cbs = make(resumed, tmp_path / "split")
    _fit(resumed, N - K, resumed_cbs)

    assert resumed.step == whole.step
    for k, p in whole.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[k], p, err_msg=k)
    assert _without_seconds(resumed.history) == _without_seconds(whole.history)
    assert resumed.optimizer.lr == whole.optimizer.lr
    _assert_same_state(_state(resumed_cbs), _state(whole_cbs))
    assert FakeWriter.calls == whole_calls                   # crashed run + resumed run = whole run
    if name == "CSVLogger":
        rows = [list(csv.DictReader((tmp_path / d / "log.csv").read_text().splitlines())) for d in ("whole", "split")]
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows[1]] == \
               [{k: v for k, v in r.items() if k != "seconds"} for r in rows[0]]
        assert len(rows[0]) == whole.step
    if name in ("EarlyStopping-stops", "TimeLimit"):
        assert whole.step < N                                # the callback stopped both runs early


def test_the_comparison_can_fail(tmp_path):
    """Resuming a scheduled run WITHOUT its scheduler's saved state gives other weights."""
    whole = _new_learner()
    _fit(whole, N, [sch.StepLR(whole.optimizer, step_size=3, gamma=0.5)])
    first = _new_learner()
    with pytest.raises(Crash):
        _fit(first, N, [sch.StepLR(first.optimizer, step_size=3, gamma=0.5), SaveThenCrash(K, tmp_path / "ck.npz")])
    resumed = npnet.Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    resumed._resume_callbacks = None                          # forget the scheduler's state
    _fit(resumed, N - K, [sch.StepLR(resumed.optimizer, step_size=3, gamma=0.5)])
    assert not all(np.array_equal(resumed.model.params[k], p) for k, p in whole.model.params.items())


def test_resume_needs_the_same_callbacks(tmp_path):
    first = _new_learner()
    with pytest.raises(Crash):
        _fit(first, N, [npnet.EarlyStopping(), SaveThenCrash(K, tmp_path / "ck.npz")])
    resumed = npnet.Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    with pytest.raises(NpnetError, match=r"\['EarlyStopping'\], but fit got \['StepLR'\]"):
        _fit(resumed, 1, [sch.StepLR(resumed.optimizer, step_size=2)])


def test_a_wrong_list_can_be_corrected_and_a_plain_run_can_gain_a_schedule(tmp_path):
    first, first_es = _new_learner(), npnet.EarlyStopping()
    with pytest.raises(Crash):
        _fit(first, N, [first_es, SaveThenCrash(K, tmp_path / "ck.npz")])
    resumed = npnet.Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    with pytest.raises(NpnetError, match="fit got"):
        _fit(resumed, 1, [])
    es = npnet.EarlyStopping()
    _fit(resumed, 0, [es])                                     # the saved state is still there
    assert es.best_step in (2, 4)
    _assert_same_state(es.state_dict(), first_es.state_dict())
    plain = _new_learner()
    _fit(plain, 2, [])
    plain.save(tmp_path / "plain.npz")
    again = npnet.Learner.resume(tmp_path / "plain.npz", "mse", progress=False)
    sched = sch.StepLR(again.optimizer, step_size=1, gamma=0.5)     # no saved state: starts fresh
    _fit(again, 2, [sched])
    assert [r["lr"] for r in again.history[2:]] == [2e-2, 1e-2]
