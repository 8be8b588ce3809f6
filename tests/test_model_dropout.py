"""SequenceModel's dropouts: input_dropout (one mask per sequence after the read-in), output_dropout
(per element before the read-out), recurrent_dropout (in the cells) and the inter-layer dropout.

Each mask equals the documented draw from the model's rng, the model with all of them passes a
gradient check with its masks fixed, eval() switches every one off, a seed reproduces them.
"""
import json

import numpy as np
import pytest

import npnet
from npnet import SequenceModel
from npnet.layer import NpnetError

TOL = 1e-6
ALL = dict(input_dropout=0.3, output_dropout=0.4, recurrent_dropout=0.5, dropout=0.2)


def twin_of(rng):
    """A Generator in the same state as ``rng``: it draws what ``rng`` will draw next."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def draw(twin, p, shape):
    """The documented mask: [r < 1 - p] / (1 - p), r uniform from the model's Generator."""
    return (twin.random(shape) < 1.0 - p).astype(np.float64) / (1.0 - p)


def test_input_dropout_is_one_mask_per_sequence_after_the_read_in():
    B, T, D, R, H = 4, 6, 3, 5, 7
    m = SequenceModel(D, H, cell="lstm", read_in=R, output_size=2, input_dropout=0.5, rng=1)
    x = np.random.default_rng(0).standard_normal((B, T, D))
    v = draw(twin_of(m.rng), 0.5, (B, 1, R))                   # the same at every step
    y, _ = m.fprop(x)
    m.clear_cache()
    h0 = m.read_in.forward(x) * v
    out, _ = m.cells[0].fprop(h0)
    m.cells[0].clear_cache()
    np.testing.assert_array_equal(y, m.read_out.forward(out))


@pytest.mark.parametrize("return_sequences", [True, False])
def test_output_dropout_is_per_element_before_the_read_out(return_sequences):
    B, T, D, H = 3, 5, 2, 6
    m = SequenceModel(D, H, cell="rnn", output_size=2, output_dropout=0.5,
                      return_sequences=return_sequences, rng=2)
    x = np.random.default_rng(0).standard_normal((B, T, D))
    w = draw(twin_of(m.rng), 0.5, (B, T, H) if return_sequences else (B, H))
    y, _ = m.fprop(x)
    m.clear_cache()
    out, _ = m.cells[0].fprop(x)
    m.cells[0].clear_cache()
    top = out if return_sequences else out[:, -1]
    np.testing.assert_array_equal(y, m.read_out.forward(top * w))


def test_recurrent_dropout_shorthand_reaches_every_cell_and_draws_from_the_models_rng():
    m = SequenceModel(2, 4, num_layers=2, cell="lstm", bidirectional=True, recurrent_dropout=0.3, rng=3)
    assert [c.recurrent_dropout for _, c in m.recurrent_cells()] == [0.3] * 4
    assert all(c.rng is m.rng for _, c in m.recurrent_cells())    # one Generator, saved in checkpoints
    same = SequenceModel(2, 4, num_layers=2, cell="lstm", bidirectional=True,
                         cell_kwargs={"recurrent_dropout": 0.3}, rng=3)
    x = np.random.default_rng(0).standard_normal((2, 5, 2))
    np.testing.assert_array_equal(m.fprop(x)[0], same.fprop(x)[0])
    with pytest.raises(NpnetError, match="recurrent_dropout"):
        SequenceModel(2, 4, recurrent_dropout=0.3, cell_kwargs={"recurrent_dropout": 0.2})


class Frozen:
    """The model with its rng rewound before every fprop: the same masks at every call, checkable."""

    def __init__(self, model):
        self.m, self.st = model, model.rng.bit_generator.state
        self.params, self.grads, self.dtype = model.params, model.grads, model.dtype

    def init_state(self, B):
        return self.m.init_state(B)

    def zero_grad(self):
        self.m.zero_grad()

    def fprop(self, *a):
        self.m.rng.bit_generator.state = self.st
        return self.m.fprop(*a)

    def bprop(self, *a):
        return self.m.bprop(*a)


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("bidirectional, return_sequences", [(False, True), (True, False)])
def test_gradcheck_with_every_dropout_on(cell, bidirectional, return_sequences):
    rng = np.random.default_rng(4)
    m = SequenceModel(2, 3, num_layers=2, cell=cell, read_in=4, output_size=2, bidirectional=bidirectional,
                      return_sequences=return_sequences, rng=5, **ALL)
    x = rng.choice([-1.0, 1.0], (3, 4, 2)) * rng.uniform(0.5, 1.5, (3, 4, 2))
    state = [c.pack_state(tuple(0.5 * rng.standard_normal((3, 3)) for _ in c.state_names))
             for _, c in m.recurrent_cells()]
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], bool)
    errors = npnet.gradcheck(Frozen(m), x, state, mask)
    assert max(errors.values()) < TOL, errors


def test_gradcheck_sees_a_backward_that_forgets_the_input_mask(monkeypatch):
    """The check above can fail: drop the input mask from bprop and the gradients are wrong."""
    m = SequenceModel(2, 3, cell="rnn", output_size=2, input_dropout=0.5, rng=6)
    fprop = m.fprop

    def forgetful(*a):
        out = fprop(*a)
        m._cache["drop_in"] = None
        return out
    monkeypatch.setattr(m, "fprop", forgetful)
    errors = npnet.gradcheck(Frozen(m), np.random.default_rng(0).standard_normal((3, 4, 2)))
    assert errors["input x"] > 1e-3, errors


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_eval_switches_every_dropout_off_and_draws_nothing(cell):
    kw = dict(input_size=2, hidden_size=5, num_layers=2, cell=cell, read_in=3, output_size=2)
    m, plain = SequenceModel(**kw, **ALL, rng=7), SequenceModel(**kw, rng=7)   # same weights
    x = np.random.default_rng(0).standard_normal((3, 6, 2))
    y_train, _ = m.fprop(x)
    before = m.rng.bit_generator.state
    y_eval, _ = m.eval().fprop(x)
    assert m.rng.bit_generator.state == before
    assert not any(c.training for _, c in m.recurrent_cells())
    y_plain, _ = plain.fprop(x)
    np.testing.assert_array_equal(y_eval, y_plain)
    assert not np.allclose(y_train, y_plain)
    np.testing.assert_array_equal(m.predict(x), y_plain)
    m.train()
    assert all(c.training for _, c in m.recurrent_cells())


@pytest.mark.parametrize("kind", list(ALL))
def test_each_dropout_is_reproducible_under_a_seed_and_changes_the_output(kind):
    kw = dict(input_size=2, hidden_size=5, num_layers=2, cell="lstm", output_size=2)
    a, b, plain = SequenceModel(**kw, rng=8, **{kind: 0.5}), SequenceModel(**kw, rng=8, **{kind: 0.5}), \
        SequenceModel(**kw, rng=8)
    x = np.random.default_rng(0).standard_normal((3, 6, 2))
    ya = a.fprop(x)[0]
    np.testing.assert_array_equal(ya, b.fprop(x)[0])
    assert not np.allclose(ya, plain.fprop(x)[0])


def test_config_round_trip_and_old_configs_unchanged():
    m = SequenceModel(2, 4, cell="gru", output_size=1, input_dropout=0.1, output_dropout=0.2, rng=9)
    cfg = json.loads(json.dumps(m.get_config()))
    assert cfg["input_dropout"] == 0.1 and cfg["output_dropout"] == 0.2 and "recurrent_dropout" not in cfg
    m2 = SequenceModel.from_config(cfg)
    assert (m2.input_dropout, m2.output_dropout) == (0.1, 0.2)
    plain = SequenceModel(2, 4, cell="gru", output_size=1, rng=9).get_config()
    assert not {"input_dropout", "output_dropout", "recurrent_dropout"} & set(plain)


@pytest.mark.parametrize("name", ["input_dropout", "output_dropout", "recurrent_dropout"])
@pytest.mark.parametrize("bad", [1.0, -0.5, float("inf"), "0.2"])
def test_bad_rates_are_refused_by_name(name, bad):
    with pytest.raises(NpnetError, match=name):
        SequenceModel(2, 4, **{name: bad})


def test_a_checkpoint_trained_with_dropout_loads_into_a_model_without(tmp_path):
    """The dropout rates are training-only settings (checkpoint.LOOSE_CONFIG_KEYS), like ``dropout``."""
    kw = dict(input_size=2, hidden_size=4, num_layers=2, cell="lstm", output_size=1)
    trained = SequenceModel(**kw, **ALL, rng=10)
    npnet.save_checkpoint(tmp_path / "ck.npz", trained)
    plain = SequenceModel(**kw, rng=11)
    npnet.checkpoint.load_into(tmp_path / "ck.npz", plain)
    for k in trained.params:
        assert np.array_equal(plain.params[k], trained.params[k]), k
    again = npnet.load_checkpoint(tmp_path / "ck.npz").model
    assert (again.input_dropout, again.output_dropout, again.recurrent_dropout) == (0.3, 0.4, 0.5)
