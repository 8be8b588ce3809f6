"""Tests of npnet.losses: values against plain formulas, gradient checks, masks, dtypes, errors."""
import numpy as np
import pytest

import npnet
from npnet.layer import NotForwardedError
from npnet.losses import MSELoss, SoftmaxCrossEntropyLoss

SHAPES = [(3, 4, 5), (1, 1, 1), (2, 3), (7,)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    pred = rng.standard_normal(shape)
    reg_target = rng.standard_normal(shape)
    cls_target = rng.integers(0, shape[-1], shape[:-1])
    mask = np.asarray(rng.random(shape[:-1]) < 0.6)
    if mask.size:
        mask.flat[0] = True                  # at least one scored position
    return pred, reg_target, cls_target, mask


# -- values against naive formulas ------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_mse_value(shape):
    pred, target, _, mask = _data(shape)
    loss = MSELoss()
    assert np.isclose(loss.fprop(pred, target), np.mean((pred - target) ** 2), rtol=1e-13)
    want = np.mean(((pred - target) ** 2)[mask]) if pred.ndim > 1 else None
    if want is not None:
        assert np.isclose(loss.fprop(pred, target, mask), want, rtol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
def test_ce_value(shape):
    pred, _, target, mask = _data(shape)
    loss = SoftmaxCrossEntropyLoss()
    p = np.exp(pred) / np.exp(pred).sum(-1, keepdims=True)
    nll = -np.log(np.take_along_axis(p, target[..., None], -1)[..., 0])
    assert np.isclose(loss.fprop(pred, target), nll.mean(), rtol=1e-12)
    assert np.isclose(loss.fprop(pred, target, mask), nll[mask].mean(), rtol=1e-12)


def test_ce_uniform_logits_give_log_C():
    loss = SoftmaxCrossEntropyLoss()
    assert np.isclose(loss.fprop(np.zeros((4, 10)), np.arange(4)), np.log(10.0), rtol=1e-14)


# -- gradient checks ----------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_mse_gradcheck(shape, masked):
    pred, target, _, mask = _data(shape, seed=1)
    errs = npnet.gradcheck(MSELoss(), pred, target, mask if masked else None)
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_ce_gradcheck(shape, masked):
    pred, _, target, mask = _data(shape, seed=2)
    errs = npnet.gradcheck(SoftmaxCrossEntropyLoss(), pred, target, mask if masked else None)
    assert max(errs.values()) < 1e-6, errs


def test_masked_positions_get_zero_gradient_and_do_not_change_loss():
    pred, target, cls, mask = _data((3, 4, 5), seed=3)
    mask[:] = False
    mask[0, 1] = mask[2, 3] = True
    for loss, tgt in ((MSELoss(), target), (SoftmaxCrossEntropyLoss(), cls)):
        a = loss.fprop(pred, tgt, mask)
        d = loss.bprop()
        assert np.all(d[~mask] == 0) and np.any(d[mask] != 0)
        pred2 = pred.copy()
        pred2[~mask] += 100.0                                  # change only unscored positions
        assert loss.fprop(pred2, tgt, mask) == a


def test_ce_gradient_rows_sum_to_zero_and_match_formula():
    pred, _, target, _ = _data((2, 3, 4), seed=4)
    loss = SoftmaxCrossEntropyLoss()
    loss.fprop(pred, target)
    d = loss.bprop()
    p = np.exp(pred) / np.exp(pred).sum(-1, keepdims=True)
    onehot = np.eye(4)[target]
    np.testing.assert_allclose(d, (p - onehot) / 6, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d.sum(-1), 0.0, atol=1e-15)


# -- numerics and dtypes ----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_huge_logits_finite_without_warnings(dtype):
    # pytest turns warnings into errors, so any overflow warning fails the test.
    pred = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [1e4, 1e4, -1e4]], dtype)
    target = np.array([0, 0, 2])
    loss = SoftmaxCrossEntropyLoss(dtype=dtype)
    val = loss.fprop(pred, target)
    d = loss.bprop()
    assert np.isfinite(val) and np.all(np.isfinite(d))
    # row 0 is right with certainty (0), row 1 wrong by 2e4, row 2 wrong by 2e4 + log 2
    assert np.isclose(val, (0.0 + 2e4 + 2e4 + np.log(2)) / 3, rtol=1e-6)
    p = loss.probs(pred)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(-1), 1.0)


@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_float32_preserved(cls):
    pred, reg, cl, mask = _data((2, 3, 4), seed=5)
    loss = cls(dtype=np.float32)
    tgt = reg if cls is MSELoss else cl
    val = loss.fprop(pred, tgt, mask)                          # float64 input is cast
    assert val.dtype == np.float32 and np.ndim(val) == 0
    d = loss.bprop()
    assert d.dtype == np.float32 and d.shape == pred.shape
    ref = cls().fprop(pred, tgt, mask)
    assert np.isclose(val, ref, rtol=1e-5)


@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_inputs_not_modified_and_no_params(cls):
    pred, reg, cl, mask = _data((2, 3, 4), seed=6)
    tgt = reg if cls is MSELoss else cl
    copies = [pred.copy(), tgt.copy(), mask.copy()]
    loss = cls()
    loss.fprop(pred, tgt, mask)
    loss.bprop()
    for a, b in zip((pred, tgt, mask), copies):
        np.testing.assert_array_equal(a, b)
    assert loss.params == {} and loss.grads == {}
    assert loss.get_config() == {"dtype": "float64"}


def test_predict_and_probs():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    ce = SoftmaxCrossEntropyLoss()
    np.testing.assert_array_equal(ce.predict(logits), [1, 0])
    np.testing.assert_allclose(ce.probs(logits).sum(-1), 1.0)
    assert MSELoss.predict(logits) is logits


# -- errors -------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_bprop_needs_fprop_and_only_once(cls):
    loss = cls()
    with pytest.raises(NotForwardedError, match="without a matching fprop"):
        loss.bprop()
    pred, reg, cl, _ = _data((2, 3), seed=7)
    loss.fprop(pred, reg if cls is MSELoss else cl)
    loss.bprop()
    with pytest.raises(NotForwardedError):
        loss.bprop()


def test_mse_shape_mismatch():
    with pytest.raises(ValueError, match=r"target must have the shape of pred \(2, 3\)"):
        MSELoss().fprop(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_mask_wrong_shape_or_dtype(cls):
    pred, reg, cl, _ = _data((2, 3, 4), seed=8)
    tgt = reg if cls is MSELoss else cl
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        cls().fprop(pred, tgt, np.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"mask must be a bool array of shape \(2, 3\).*float64"):
        cls().fprop(pred, tgt, np.ones((2, 3)))
    with pytest.raises(ValueError, match="mask must be a bool array"):
        cls().fprop(pred, tgt, [[True] * 3] * 2)


@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_no_position_scored(cls):
    pred, reg, cl, _ = _data((2, 3, 4), seed=9)
    tgt = reg if cls is MSELoss else cl
    with pytest.raises(ValueError, match="no position is scored"):
        cls().fprop(pred, tgt, np.zeros((2, 3), bool))


def test_ce_target_errors():
    ce = SoftmaxCrossEntropyLoss()
    pred = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"integer class indices in \[0, 4\).*float64"):
        ce.fprop(pred, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="integer class indices"):
        ce.fprop(pred, np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match=r"target must have shape \(2, 3\)"):
        ce.fprop(pred, np.zeros((2, 3, 4), int))
    with pytest.raises(ValueError, match=r"\[0, 4\), got min 0, max 4"):
        ce.fprop(pred, np.array([[0, 1, 4], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[0, 4\), got min -1"):
        ce.fprop(pred, np.array([[0, 1, 2], [0, -1, 0]]))


@pytest.mark.parametrize("cls", [MSELoss, SoftmaxCrossEntropyLoss])
def test_nonfinite_pred_rejected(cls):
    pred = np.array([[0.0, np.nan]])
    tgt = np.zeros((1, 2)) if cls is MSELoss else np.array([0])
    with pytest.raises(ValueError, match="NaN or inf"):
        cls().fprop(pred, tgt)


def test_bad_dtype_rejected():
    with pytest.raises(ValueError, match="float32 or float64"):
        MSELoss(dtype=np.int32)


def test_cross_entropy_ignore_index_equals_mask(rng):
    pred = rng.standard_normal((3, 5, 4))
    target = rng.integers(0, 4, size=(3, 5))
    scored = rng.random((3, 5)) < 0.5
    scored[0, 0] = True
    a = npnet.SoftmaxCrossEntropyLoss()
    b = npnet.SoftmaxCrossEntropyLoss(ignore_index=-1)
    la = a.fprop(pred, target, scored)
    lb = b.fprop(pred, np.where(scored, target, -1))
    assert la == lb
    np.testing.assert_array_equal(a.bprop(), b.bprop())
    errors = npnet.gradcheck(npnet.SoftmaxCrossEntropyLoss(ignore_index=-1), pred, np.where(scored, target, -1))
    assert max(errors.values()) < 1e-6


def test_cross_entropy_ignore_index_nothing_scored_is_zero():
    loss = npnet.SoftmaxCrossEntropyLoss(ignore_index=-1)
    assert loss.fprop(np.ones((2, 3, 4)), np.full((2, 3), -1)) == 0.0
    d = loss.bprop()
    assert d.shape == (2, 3, 4) and not d.any()
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        loss.fprop(np.ones((2, 4)), np.array([-1, 7]))
