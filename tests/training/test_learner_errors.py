"""Issue 14, "errors that never surprise", for the Learner and the runner: targets of the wrong
shape, endless data without a step count, fractional step counts, plots before a fit or into a
missing folder, and truncated BPTT on a bidirectional model. Each error is raised at once, by
npnet, with a message naming what was expected."""
import itertools

import numpy as np
import pytest

import npnet
from npnet.data import Stream, take, tasks
from npnet.layer import NpnetError, ShapeError
from npnet.training.learner import Learner

B, T, D, V = 4, 6, 3, 2


def _learner(**kw):
    model = npnet.SequenceModel(D, 5, output_size=V, rng=0, bidirectional=kw.pop("bidirectional", False))
    return Learner(model, "ce", "sgd", lr=0.1, progress=False, **kw)


def _batch(y_shape=(B, T), seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, D)), rng.integers(0, V, y_shape)


def _params(learner):
    return {k: v.copy() for k, v in learner.model.params.items()}


def _unchanged(learner, before):
    for k, v in learner.model.params.items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# ---------------------------------------------------------------- targets of the wrong shape
@pytest.mark.parametrize("bptt", [None, 4])
@pytest.mark.parametrize("y_shape", [(B,), (B, T - 1), (B, T + 1), (T, B)])
def test_fit_refuses_targets_of_the_wrong_shape_naming_the_expected_one(bptt, y_shape):
    """y (B,) for a per-step model used to fail with an IndexError inside the runner; a y longer
    than T was silently cut to T. Now a ShapeError names (B, T), as evaluate's does."""
    learner = _learner(bptt=bptt)
    before = _params(learner)
    with pytest.raises(ShapeError, match=rf"y must have shape \({B}, {T}\).*got \({', '.join(map(str, y_shape))},?\)"):
        learner.fit([_batch(y_shape)], steps=1)
    assert learner.step == 0
    _unchanged(learner, before)
    with pytest.raises(ShapeError, match=rf"\({B}, {T}\)"):          # evaluate agrees
        learner.evaluate([_batch(y_shape)])


def test_fit_accepts_both_target_forms_of_a_per_step_model():
    """The check does not refuse what the losses accept: (B, T) classes and (B, T, V) values."""
    ce = _learner(bptt=4)
    ce.fit([_batch()], steps=1)
    model = npnet.SequenceModel(D, 5, output_size=V, rng=0)
    mse = Learner(model, "mse", "sgd", lr=0.1, progress=False, bptt=4)
    x, _ = _batch()
    mse.fit([(x, np.zeros((B, T, V)))], steps=1)
    assert ce.step == mse.step == 1


# ---------------------------------------------------------------- endless data
def _no_training(learner, record):
    raise AssertionError(f"fit trained on an endless stream without steps (step {learner.step})")


def _memory(rng=0, num_batches=None):
    return tasks.memory_task(B, remember=2, symbols=4, rng=rng, num_batches=num_batches)


ENDLESS = {
    "task generator": lambda: _memory(),
    "Stream of a task": lambda: Stream(lambda rng: _memory(rng)),
    "itertools.cycle": lambda: itertools.cycle(take(_memory(), 2)),
    "itertools.repeat": lambda: itertools.repeat(next(_memory())),
}


@pytest.mark.parametrize("epochs", [None, 1, 3])
@pytest.mark.parametrize("make", list(ENDLESS.values()), ids=list(ENDLESS))
def test_fit_refuses_an_endless_stream_without_steps_at_once(make, epochs):
    """Without steps, fit ran one 'epoch' of a stream that never ends: for ever. (The callback
    makes today's code fail instead of hang.)"""
    model = npnet.SequenceModel(6, 5, output_size=6, rng=0)
    learner = Learner(model, "ce", progress=False)
    with pytest.raises(NpnetError, match=r"endless stream.*steps="):
        learner.fit(make(), epochs=epochs, callbacks=[_no_training])
    assert learner.step == 0 and learner.history == []


@pytest.mark.parametrize("make", list(ENDLESS.values()), ids=list(ENDLESS))
def test_endless_streams_train_with_steps(make):
    model = npnet.SequenceModel(6, 5, output_size=6, rng=0)
    learner = Learner(model, "ce", progress=False)
    learner.fit(make(), steps=3)
    assert learner.step == 3


def test_a_finite_task_stream_still_trains_by_epochs():
    model = npnet.SequenceModel(6, 5, output_size=6, rng=0)
    learner = Learner(model, "ce", progress=False)
    learner.fit(Stream(lambda rng: _memory(rng, num_batches=2)), epochs=2)
    assert (learner.step, learner.epoch) == (4, 2)


# ---------------------------------------------------------------- step counts
@pytest.mark.parametrize("kw,match", [
    ({"steps": 2.5}, r"steps must be an int >= 0, got 2\.5"),
    ({"steps": "3"}, r"steps must be an int >= 0, got '3'"),
    ({"steps": -1}, r"steps must be an int >= 0, got -1"),
    ({"epochs": 1.5}, r"epochs must be an int >= 0, got 1\.5"),
    ({"steps": 2, "eval_every": 0.5}, r"eval_every .*must be an int >= 1, got 0\.5"),
])
def test_fit_refuses_fractional_or_textual_counts(kw, match):
    """fit(steps=2.5) used to train int(2.5) = 2 steps without a word."""
    learner = _learner()
    with pytest.raises(NpnetError, match=match):
        learner.fit([_batch()] * 3, eval_batches=[_batch()], **kw)
    assert learner.step == 0


# ---------------------------------------------------------------- plots
def test_plot_before_any_fit_is_a_clear_error(tmp_path):
    with pytest.raises(NpnetError, match=r"nothing to plot.*fit\(\) first"):
        _learner().plot(tmp_path / "curve.png")
    assert not (tmp_path / "curve.png").exists()


def test_plot_creates_a_missing_folder(tmp_path):
    learner = _learner()
    learner.fit([_batch()], steps=2)
    path = tmp_path / "not" / "yet" / "curve.png"
    learner.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    learner.plot(str(tmp_path / "again.png"))                  # a bare file name in an existing folder
    assert (tmp_path / "again.png").stat().st_size > 0


# ---------------------------------------------------------------- bidirectional + truncation
def test_truncated_bptt_shorter_than_the_sequence_refuses_a_bidirectional_model():
    """The reverse cell would read one window, so training would see other outputs than
    evaluation (which runs the whole sequence): refused before any step, naming bptt and T."""
    learner = _learner(bidirectional=True, bptt=2)
    before = _params(learner)
    with pytest.raises(NpnetError, match=rf"bptt=2 < T={T} cannot train a bidirectional model"):
        learner.fit([_batch()], steps=1)
    assert learner.step == 0
    _unchanged(learner, before)


@pytest.mark.parametrize("bptt", [T, T + 3])
def test_a_window_covering_the_sequence_trains_a_bidirectional_model_as_full_bptt(bptt):
    full, windowed = _learner(bidirectional=True), _learner(bidirectional=True, bptt=bptt)
    full.fit([_batch()], steps=2)
    windowed.fit([_batch()], steps=2)
    for k, v in full.model.params.items():
        np.testing.assert_array_equal(v, windowed.model.params[k], err_msg=k)
