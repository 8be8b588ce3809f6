"""Issue 14: divergence always ends in NonFiniteError naming the step -- never in a RuntimeWarning
from NumPy (pytest turns warnings into errors, so a leaked one fails here) nor in an inner layer's
"dout contains NaN or inf" ShapeError. SGD with lr=1000 and no clipping blows up a 2-layer tanh
RNN, a 2-layer LSTM and an IRNN within a few dozen steps; each case below failed on the code
before the fix (a RuntimeWarning from a matmul or from the RNN's dot, or that ShapeError)."""
import re
import warnings

import numpy as np
import pytest

import npnet
from npnet.layer import ShapeError
from npnet.training.clip import NonFiniteError
from npnet.training.learner import Learner
from npnet.training.runner import SequenceRunner

# (cell, layers, dtype, H, T, D, V, seed): sizes as in the trial, picked to diverge fast
CASES = {
    "rnn-2-float32": ("rnn", 2, np.float32, 16, 20, 4, 3, 1),
    "rnn-2-float64": ("rnn", 2, np.float64, 8, 12, 3, 2, 2),
    "lstm-2-float32": ("lstm", 2, np.float32, 8, 12, 3, 2, 1),
    "lstm-2-float64": ("lstm", 2, np.float64, 16, 20, 4, 3, 0),
    "irnn-1-float32": ("irnn", 1, np.float32, 4, 6, 2, 2, 1),
    "irnn-1-float64": ("irnn", 1, np.float64, 8, 12, 3, 2, 0),
}


def _diverging_learner(cell, layers, dtype, H, T, D, V, seed):
    model = npnet.SequenceModel(D, H, num_layers=layers, cell=cell, output_size=V, rng=seed, dtype=dtype)
    learner = Learner(model, "mse", "sgd", lr=1000, clip=None, progress=False)
    rng = np.random.default_rng(seed)
    data = [(rng.standard_normal((8, T, D)), rng.standard_normal((8, T, V))) for _ in range(5)]
    return learner, data


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_sgd_lr_1000_without_clipping_raises_nonfinite_error_naming_the_step(case):
    learner, data = _diverging_learner(*case)
    with pytest.raises(NonFiniteError) as info:
        learner.fit(data, steps=200)
    step = int(re.search(r"step (\d+)", str(info.value)).group(1))
    assert step == learner.step + 1 == learner.runner.steps + 1          # the step that failed
    assert 1 <= step < 200


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_with_warnings_silenced_it_is_still_nonfinite_error(case):
    """Outside pytest NumPy only prints its warnings; the same runs then ended in an inner
    layer's 'ShapeError: dout contains NaN or inf' (or x), blaming the input for a divergence."""
    learner, data = _diverging_learner(*case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NonFiniteError, match=r"at step \d+"):
            learner.fit(data, steps=200)


def test_data_with_nan_stays_a_shape_error():
    """NaN in the batch itself is bad data, not divergence: still the ShapeError of the input check."""
    learner, data = _diverging_learner(*CASES["irnn-1-float64"])
    x, y = data[0]
    x = x.copy()
    x[0, 0, 0] = np.nan
    with pytest.raises(ShapeError, match="x contains NaN or inf") as info:
        learner.fit([(x, y)], steps=1)
    assert not isinstance(info.value, NonFiniteError)


def test_an_update_that_overflows_the_dtype_is_named():
    """Finite gradients times a huge lr overflow float32 parameters: named after the update."""
    model = npnet.LinearLayer(2, 1, dtype=np.float32, rng=0)
    model.return_sequences = True

    class Lin:                                                 # a per-step model around the layer
        params, grads, dtype, return_sequences = model.params, model.grads, model.dtype, True

        def zero_grad(self):
            model.zero_grad()

        def fprop(self, x, state=None, mask=None):
            return model.fprop(x), None

        def bprop(self, dout, dstate=None):
            return model.bprop(dout), None

    runner = SequenceRunner(Lin(), npnet.MSELoss(np.float32), npnet.optim.SGD(model.params, lr=1e38), clip=None)
    x = np.ones((1, 1, 2), np.float32)
    with pytest.raises(NonFiniteError, match=r"parameter '(W|b)' is not finite after the update of step 1"):
        runner.train_step(x, np.full((1, 1, 1), 1e3, np.float32))


def test_a_stable_run_is_untouched_by_the_checks():
    """The same models with a sane lr train without an error (the checks do not misfire)."""
    for case in CASES.values():
        learner, data = _diverging_learner(*case)
        learner.optimizer.lr = 1e-3
        learner.fit(data, steps=3)
        assert learner.step == 3 and all(np.isfinite(r["loss"]) for r in learner.history)
