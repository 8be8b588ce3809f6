"""SequenceModel.predict: evaluation mode, batched (the result does not depend on batch_size),
no cache left behind, the train/eval mode restored (also after an error), and clear errors."""
import numpy as np
import pytest

import npnet


def _model(**kw):
    base = dict(input_size=3, hidden_size=5, num_layers=2, cell="lstm", output_size=4, dropout=0.4, rng=0)
    base.update(kw)
    return npnet.SequenceModel(**base)


def _no_cache(model):
    layers = [c for _, c in model.recurrent_cells()] + [model.read_out] + \
             ([model.read_in] if model.read_in is not None else [])
    return not model.has_cache and not any(layer.has_cache for layer in layers)


def _eval_fprop(model, x, mask=None):
    """Independent: eval mode, one fprop, back to training mode."""
    model.eval()
    out, _ = model.fprop(x, None, mask)
    model.clear_cache()
    model.train()
    return out


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 10, 64])
def test_predict_equals_eval_fprop_whatever_the_batch_size(return_sequences, batch_size, rng):
    model = _model(return_sequences=return_sequences, bidirectional=not return_sequences)
    x = rng.standard_normal((10, 6, 3))
    mask = np.arange(6)[None] < rng.integers(1, 7, size=10)[:, None]
    want = _eval_fprop(model, x, mask)
    got = model.predict(x, mask, batch_size=batch_size)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert model.training and _no_cache(model)
    # dropout is off: a training-mode fprop differs, predict does not
    train_out, _ = model.fprop(x, None, mask)
    model.clear_cache()
    assert not np.allclose(train_out, want)


def test_predict_keeps_eval_mode_and_refuses_an_empty_row(rng):
    model = _model(return_sequences=False).eval()
    model.predict(rng.standard_normal((2, 4, 3)))
    assert model.training is False
    model.train()
    mask = np.ones((4, 5), bool)
    mask[3] = False                                 # a row without real steps: refused
    with pytest.raises(npnet.ShapeError, match="rows \\[3\\]"):    # the row of x, not of its batch
        model.predict(rng.standard_normal((4, 5, 3)), mask, batch_size=2)
    assert model.training is True and _no_cache(model)


def test_predict_with_embedding_read_in(rng):
    model = npnet.SequenceModel(4, 6, cell="gru", output_size=9, read_in=npnet.Embedding(9, 4, rng=0), rng=1)
    x = rng.integers(0, 9, size=(5, 7))
    np.testing.assert_allclose(model.predict(x, batch_size=2), _eval_fprop(model, x), rtol=1e-13, atol=1e-15)
    x[3, 2] = 9                                     # out of range, met in the second batch of rows
    with pytest.raises(npnet.ShapeError, match=r"\[0, 9\)"):
        model.predict(x, batch_size=2)
    assert model.training is True and _no_cache(model)     # restored after the error


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "4"])
def test_bad_batch_size(batch_size, rng):
    with pytest.raises(npnet.NpnetError, match="batch_size"):
        _model().predict(rng.standard_normal((2, 3, 3)), batch_size=batch_size)


def test_mask_for_other_rows_is_refused_not_sliced(rng):
    model = _model()
    x = rng.standard_normal((4, 3, 3))
    with pytest.raises(npnet.ShapeError, match=r"\(4, 3\)"):
        model.predict(x, np.ones((5, 3), bool), batch_size=2)
    with pytest.raises(npnet.ShapeError):
        model.predict(rng.standard_normal((4, 3, 2)))
    assert model.training and _no_cache(model)
