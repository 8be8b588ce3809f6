"""Tests of npnet.conv: gradients by central differences, forward values against a plain
loop reference and scipy.signal.correlate, dtype preservation, shape errors, speed sanity."""
import time

import numpy as np
import pytest
from scipy import signal

import npnet
from npnet.conv import Conv2D, Flatten, MaxPool2D
from npnet.layer import NotForwardedError, ShapeError

TOL = 1e-6


def naive_conv(x, W, b, stride, padding):
    """Slow reference: y[n,o,i,j] = b[o] + sum_{c,u,v} W[o,c,u,v] xp[n,c,s i+u,s j+v], pixel by pixel."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    co, _, kh, kw = W.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, co, ho, wo))
    for a in range(n):
        for o in range(co):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[a, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[a, o, i, j] = np.sum(patch * W[o]) + (b[o] if b is not None else 0.0)
    return y


def naive_maxpool(x, k, s):
    n, c, h, w = x.shape
    ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    y = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = x[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].max(axis=(2, 3))
    return y


CONV_CASES = [
    # (N, C_in, H, W, C_out, kernel, stride, padding, bias)
    (2, 3, 5, 6, 4, 3, 1, 0, True),
    (2, 3, 5, 6, 4, 3, 1, 1, True),
    (2, 2, 7, 6, 3, 3, 2, 0, True),
    (2, 2, 7, 8, 3, 3, 2, 1, True),
    (1, 1, 4, 9, 2, (2, 3), (1, 2), (1, 0), False),   # batch 1, non-square kernel, stride, padding
    (1, 2, 3, 3, 1, 3, 1, 0, True),                  # output 1x1
    (3, 1, 6, 5, 2, 1, 1, 0, True),                  # 1x1 kernel
    (2, 2, 6, 7, 2, 4, 3, 2, True),                  # stride < kernel, uncovered trailing rows
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradcheck(case):
    n, c, h, w, co, k, s, p, bias = case
    layer = Conv2D(c, co, k, stride=s, padding=p, bias=bias, rng=0)
    if bias:
        layer.params["b"][:] = np.random.default_rng(5).standard_normal(co)
    x = np.random.default_rng(1).standard_normal((n, c, h, w))
    errors = npnet.gradcheck(layer, x)
    assert set(errors) == ({"param W", "param b", "input x"} if bias else {"param W", "input x"})
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_naive_loops(case):
    n, c, h, w, co, k, s, p, bias = case
    layer = Conv2D(c, co, k, stride=s, padding=p, bias=bias, rng=2)
    if bias:
        layer.params["b"][:] = np.random.default_rng(6).standard_normal(co)
    x = np.random.default_rng(3).standard_normal((n, c, h, w))
    y = layer.fprop(x)
    ref = naive_conv(x, layer.params["W"], layer.params.get("b"), layer.stride, layer.padding)
    assert y.shape == ref.shape == layer.output_shape(x.shape)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_conv_single_channel_matches_scipy_correlate():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 1, 9, 7))
    layer = Conv2D(1, 1, (3, 2), bias=False, rng=0)
    np.testing.assert_allclose(layer.fprop(x)[0, 0],
                               signal.correlate(x[0, 0], layer.params["W"][0, 0], mode="valid"),
                               rtol=1e-12, atol=1e-12)
    # padding 1 == scipy's "same" for a 3x3 kernel
    layer = Conv2D(1, 1, 3, padding=1, bias=False, rng=1)
    np.testing.assert_allclose(layer.fprop(x)[0, 0],
                               signal.correlate(x[0, 0], layer.params["W"][0, 0], mode="same"),
                               rtol=1e-12, atol=1e-12)


def test_conv_input_gradient_is_full_convolution():
    """dx of a single-channel valid correlation equals scipy's full convolution of dy with W."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 1, 6, 5))
    layer = Conv2D(1, 1, 3, bias=False, rng=0)
    dy = rng.standard_normal(layer.fprop(x).shape)
    dx = layer.bprop(dy)
    np.testing.assert_allclose(dx[0, 0], signal.convolve(dy[0, 0], layer.params["W"][0, 0], mode="full"),
                               rtol=1e-12, atol=1e-12)


def test_conv_leading_axes_equal_flattened_batch():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 2, 5, 5))          # (B, T, C, H, W)
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    y = layer.fprop(x)
    assert y.shape == (2, 3, 3, 5, 5)
    dy = rng.standard_normal(y.shape)
    dx = layer.bprop(dy)
    gW = layer.grads["W"].copy()
    layer.zero_grad()
    y2 = layer.fprop(x.reshape(6, 2, 5, 5))
    dx2 = layer.bprop(dy.reshape(6, 3, 5, 5))
    np.testing.assert_array_equal(y.reshape(6, 3, 5, 5), y2)
    np.testing.assert_array_equal(dx.reshape(6, 2, 5, 5), dx2)
    np.testing.assert_allclose(gW, layer.grads["W"], rtol=1e-14)
    assert max(npnet.gradcheck(layer, x[:, :2]).values()) < TOL


def test_conv_bprop_adds_and_leaves_inputs_alone():
    rng = np.random.default_rng(9)
    layer = Conv2D(2, 2, 3, stride=2, padding=1, rng=0)
    x = rng.standard_normal((2, 2, 5, 5))
    x0 = x.copy()
    dy = rng.standard_normal(layer.fprop(x).shape)
    dy0 = dy.copy()
    layer.bprop(dy)
    g1 = {k: v.copy() for k, v in layer.grads.items()}
    layer.fprop(x)
    layer.bprop(dy)
    for k in g1:
        np.testing.assert_allclose(layer.grads[k], 2 * g1[k], rtol=1e-13)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    with pytest.raises(NotForwardedError):
        layer.bprop(dy)


def test_conv_float32_preserved():
    layer = Conv2D(1, 4, 3, padding=1, dtype=np.float32, rng=0)
    assert layer.params["W"].dtype == layer.params["b"].dtype == np.float32
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))  # float64 in, cast to float32
    y = layer.fprop(x)
    assert y.dtype == np.float32
    dx = layer.bprop(np.ones_like(y))
    assert dx.dtype == np.float32
    assert layer.grads["W"].dtype == layer.grads["b"].dtype == np.float32
    pool = MaxPool2D(2, dtype=np.float32)
    flat = Flatten(dtype=np.float32)
    z = flat.fprop(pool.fprop(y))
    assert z.dtype == np.float32 and z.shape == (2, 4 * 3 * 3)
    assert pool.bprop(flat.bprop(np.ones_like(z))).dtype == np.float32


def test_conv_bad_shapes_raise_value_error_naming_expected_shape():
    layer = Conv2D(3, 2, 3, rng=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        layer.fprop(np.zeros((2, 1, 5, 5)))           # wrong channel count
    with pytest.raises(ShapeError, match=r"\(N, 3, H, W\)"):
        layer.fprop(np.zeros((5, 5)))                 # too few dimensions
    with pytest.raises(ValueError, match="smaller than the kernel"):
        layer.fprop(np.zeros((1, 3, 2, 5)))
    layer.fprop(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"\(2, 2, 3, 3\)"):
        layer.bprop(np.zeros((2, 2, 3, 4)))
    with pytest.raises(ValueError):
        Conv2D(3, 2, 0)
    with pytest.raises(ValueError):
        Conv2D(3, 2, (3, 3, 3))
    with pytest.raises(ValueError):
        MaxPool2D(2).fprop(np.zeros((1, 1, 1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        layer.fprop(np.full((1, 3, 4, 4), np.nan))


def test_conv_config_round_trip():
    layer = Conv2D(2, 5, (3, 2), stride=(2, 1), padding=1, bias=False, weight_init="he_uniform",
                   dtype=np.float32, rng=0)
    cfg = layer.get_config()
    import json
    clone = Conv2D(**json.loads(json.dumps(cfg)))
    assert clone.get_config() == cfg
    assert clone.params["W"].shape == (5, 2, 3, 2) and "b" not in clone.params
    pool = MaxPool2D(3, stride=2)
    assert MaxPool2D(**json.loads(json.dumps(pool.get_config()))).get_config() == pool.get_config()
    flat = Flatten(-3)
    assert Flatten(**flat.get_config()).start_axis == -3


def test_conv_init_scale():
    layer = Conv2D(8, 16, 5, rng=0)
    a = np.sqrt(6.0 / (8 * 25 + 16 * 25))
    assert np.abs(layer.params["W"]).max() <= a
    assert np.abs(layer.params["W"]).max() > 0.9 * a
    assert np.all(layer.params["b"] == 0)
    he = Conv2D(8, 16, 5, weight_init="he_uniform", rng=0)
    assert np.abs(he.params["W"]).max() > a * 1.2       # wider than Glorot
    assert np.all(Conv2D(1, 1, 2, weight_init="zeros").params["W"] == 0)


@pytest.mark.parametrize("k, s, shape", [(2, None, (2, 3, 4, 6)), (2, None, (1, 1, 5, 7)),
                                         (3, 2, (2, 2, 7, 6)), ((2, 3), (1, 2), (1, 2, 4, 7))])
def test_maxpool_forward_and_gradcheck(k, s, shape):
    rng = np.random.default_rng(10)
    size = int(np.prod(shape))
    x = (rng.permutation(size).reshape(shape) * 0.01)        # distinct values: no ties within eps
    pool = MaxPool2D(k, s)
    y = pool.fprop(x)
    np.testing.assert_array_equal(y, naive_maxpool(x, pool.kernel_size, pool.stride))
    errors = npnet.gradcheck(pool, x)
    assert errors == {"input x": errors["input x"]}
    assert errors["input x"] < TOL


def test_maxpool_routes_to_the_argmax_only_and_one_position_on_ties():
    x = np.array([[[[1.0, 5.0, 2.0, 2.0],
                    [3.0, 4.0, 2.0, 2.0]]]])                   # (1, 1, 2, 4)
    pool = MaxPool2D(2)
    np.testing.assert_array_equal(pool.fprop(x), [[[[5.0, 2.0]]]])
    dx = pool.bprop(np.array([[[[10.0, 7.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 10.0, 7.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0]]]])  # tie: first position only
    # overlapping windows (stride 1) add up at a shared maximum
    x = np.array([[[[0.0, 9.0, 0.0]]]])
    pool = MaxPool2D((1, 2), stride=1)
    pool.fprop(x)
    np.testing.assert_array_equal(pool.bprop(np.array([[[[1.0, 2.0]]]])), [[[[0.0, 3.0, 0.0]]]])


def test_maxpool_leading_axes_and_errors():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 4, 4, 4))
    pool = MaxPool2D(2)
    y = pool.fprop(x)
    assert y.shape == (2, 3, 4, 2, 2)
    np.testing.assert_array_equal(y.reshape(6, 4, 2, 2), naive_maxpool(x.reshape(6, 4, 4, 4), (2, 2), (2, 2)))
    with pytest.raises(ShapeError, match=r"\(2, 3, 4, 2, 2\)"):
        pool.bprop(np.zeros((6, 4, 2, 2)))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        MaxPool2D(2).fprop(np.zeros((4, 4)))


def test_flatten():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 5))
    flat = Flatten()
    y = flat.fprop(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y[1], x[1].ravel())
    assert flat.bprop(y).shape == x.shape
    seq = Flatten(-3)
    assert seq.fprop(rng.standard_normal((2, 7, 3, 4, 5))).shape == (2, 7, 60)
    assert max(npnet.gradcheck(Flatten(2), x).values()) < TOL
    with pytest.raises(ShapeError):
        Flatten(-3).fprop(np.zeros((4, 4)))


def test_small_convnet_gradcheck():
    """conv -> pool -> flatten -> linear, chained by hand: the pieces compose."""
    rng = np.random.default_rng(13)
    conv = Conv2D(2, 3, 3, padding=1, rng=0)
    pool, flat = MaxPool2D(2), Flatten()
    lin = npnet.LinearLayer(3 * 3 * 2, 4, rng=1)
    x = rng.standard_normal((2, 2, 6, 4))

    class Net:
        dtype = np.dtype(np.float64)
        params = {**{f"conv.{k}": v for k, v in conv.params.items()},
                  **{f"lin.{k}": v for k, v in lin.params.items()}}

        @property
        def grads(self):
            return {**{f"conv.{k}": v for k, v in conv.grads.items()},
                    **{f"lin.{k}": v for k, v in lin.grads.items()}}

        def zero_grad(self):
            conv.zero_grad()
            lin.zero_grad()

        def fprop(self, x):
            return lin.fprop(flat.fprop(pool.fprop(conv.fprop(x))))

        def bprop(self, dy):
            return conv.bprop(pool.bprop(flat.bprop(lin.bprop(dy))))

    errors = npnet.gradcheck(Net(), x)
    assert max(errors.values()) < TOL, errors


def test_conv_speed_sanity():
    x = np.random.default_rng(0).standard_normal((256, 1, 28, 28)).astype(np.float32)
    layer = Conv2D(1, 16, 3, padding=1, dtype=np.float32, rng=0)
    t0 = time.perf_counter()
    y = layer.fprop(x)
    t1 = time.perf_counter()
    layer.bprop(np.ones_like(y))
    t2 = time.perf_counter()
    pool = MaxPool2D(2, dtype=np.float32)
    z = pool.fprop(y)
    pool.bprop(np.ones_like(z))
    t3 = time.perf_counter()
    print(f"\nConv2D 3x3x16 on (256,1,28,28) float32: fprop {1e3 * (t1 - t0):.1f} ms, "
          f"bprop {1e3 * (t2 - t1):.1f} ms; MaxPool2D fprop+bprop {1e3 * (t3 - t2):.1f} ms")
    assert y.shape == (256, 16, 28, 28)
