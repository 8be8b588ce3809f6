"""Bit-exact resume with every kind of dropout: interrupted at step k, saved, resumed, the run ends
with exactly the weights of the run that was never interrupted (the masks come from the model's
Generator, whose state Learner.save keeps). And the test can fail: a resume that loses that
state ends elsewhere."""
import numpy as np
import pytest

import npnet
from npnet.data import Stream
from npnet.training.learner import Learner

N = 8
KINDS = {
    "input": dict(input_dropout=0.3),
    "output": dict(output_dropout=0.3),
    "recurrent": dict(recurrent_dropout=0.3),
    "between_layers": dict(dropout=0.3),
    "all": dict(input_dropout=0.2, output_dropout=0.2, recurrent_dropout=0.2, dropout=0.2),
}


def running_sum(rng, B=4, T=8):
    """Infinite toy stream: y_t = (x_1 + ... + x_t) / 3 with random lengths."""
    while True:
        x = rng.standard_normal((B, T, 2))
        lengths = rng.integers(3, T + 1, size=B)
        yield x, np.cumsum(x, axis=1)[:, :, :1] / 3, np.arange(T)[None] < lengths[:, None]


def model(cell, kind):
    return npnet.SequenceModel(2, 5, num_layers=2, cell=cell, read_in=4, output_size=1, rng=0, **KINDS[kind])


def learner(m):
    return Learner(m, "mse", "adam", lr=1e-2, bptt=4, progress=False)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("kind", KINDS)
def test_resume_with_dropout_is_bit_exact(tmp_path, cell, kind):
    k = 3
    whole = learner(model(cell, kind))
    whole.fit(Stream(running_sum, 5), steps=N)

    first = learner(model(cell, kind))
    first.fit(Stream(running_sum, 5), steps=k)
    first.save(tmp_path / "ck.npz")
    del first
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    m = second.model
    assert (m.input_dropout, m.output_dropout, m.dropout) == tuple(
        KINDS[kind].get(n, 0.0) for n in ("input_dropout", "output_dropout", "dropout"))
    assert {c.recurrent_dropout for _, c in m.recurrent_cells()} == {KINDS[kind].get("recurrent_dropout", 0.0)}
    second.fit(Stream(running_sum, 5), steps=N - k)

    assert whole.model.params.keys() == second.model.params.keys()
    for name in whole.model.params:
        assert np.array_equal(whole.model.params[name], second.model.params[name]), name
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in second.history]


@pytest.mark.parametrize("kind", ["input", "output", "recurrent"])
def test_a_resume_that_loses_the_generator_state_differs(tmp_path, kind):
    whole = learner(model("lstm", kind))
    whole.fit(Stream(running_sum, 5), steps=6)
    first = learner(model("lstm", kind))
    first.fit(Stream(running_sum, 5), steps=3)
    first.save(tmp_path / "ck.npz")
    second = Learner.resume(tmp_path / "ck.npz", "mse", progress=False)
    second.model.rng.bit_generator.state = np.random.default_rng(123).bit_generator.state
    second.fit(Stream(running_sum, 5), steps=3)
    assert not np.array_equal(whole.model.params["cells.0.W_h"], second.model.params["cells.0.W_h"])
