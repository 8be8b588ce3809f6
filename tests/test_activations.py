"""Stable activations: values, no overflow warnings at extreme inputs, dtype kept."""
import numpy as np

from npnet import activations as act


def test_sigmoid_matches_definition_and_is_stable():
    x = np.linspace(-30, 30, 101)
    np.testing.assert_allclose(act.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-300)
    big = np.array([-1e308, -1e5, 0.0, 1e5, 1e308])
    np.testing.assert_array_equal(act.sigmoid(big), [0.0, 0.0, 0.5, 1.0, 1.0])
    assert act.sigmoid(np.float32([1e30])).dtype == np.float32


def test_logsumexp_and_softmax_stable():
    x = np.array([[1e4, 1e4 + np.log(3)], [-1e4, -1e4]])
    np.testing.assert_allclose(act.logsumexp(x, axis=1), [1e4 + np.log(4), -1e4 + np.log(2)])
    p = act.softmax(x)
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(np.exp(act.log_softmax(x)), p)


def test_out_argument_in_place():
    x = np.array([-1.0, 2.0])
    out = np.empty(2)
    assert act.relu(x, out=out) is out
    np.testing.assert_array_equal(out, [0.0, 2.0])


def test_exp_forms_equal_sigmoid_and_tanh_with_exact_limits():
    """The cells' loop kernels: in place, dtype kept, equal to expit / tanh, and 0, 1, -1 exactly
    where exp overflows (no warning under errstate(over="ignore"))."""
    from scipy.special import expit
    x64 = np.array([-1e5, -800.0, -50.0, -3.0, -1e-9, 0.0, 1e-9, 0.5, 3.0, 50.0, 800.0, 1e5])
    for dtype, tol in ((np.float64, 2e-16), (np.float32, 2e-7)):
        x = x64.astype(dtype)
        with np.errstate(over="ignore"):
            s = -x
            r = act.sigmoid_from_negated(s)
            t = -2.0 * x
            u = act.tanh_from_scaled(t)
        assert r is s and u is t and r.dtype == dtype and u.dtype == dtype
        np.testing.assert_allclose(r, expit(x64), rtol=0, atol=tol)
        np.testing.assert_allclose(u, np.tanh(x64), rtol=0, atol=2 * tol)
        big = np.abs(x64) > 100
        assert np.array_equal(r[big], (x64[big] > 0).astype(dtype))
        assert np.array_equal(u[big], np.sign(x64[big]).astype(dtype))


def test_reference_sigmoid_is_stable_and_keeps_dtype():
    """The textbook sigmoid of npnet.cells.reference (used by every cell's step()): equal to expit,
    exact limits, no overflow warning (warnings are errors under pytest), float32 kept."""
    from scipy.special import expit

    from npnet.cells.reference import sigmoid
    x = np.array([-1e308, -1e5, -800.0, -30.0, -1e-9, 0.0, 1e-9, 3.0, 800.0, 1e5, 1e308])
    np.testing.assert_allclose(sigmoid(x), expit(x), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(sigmoid(x[[1, 5, 9]]), [0.0, 0.5, 1.0])
    assert sigmoid(x[1:-1].astype(np.float32)).dtype == np.float32


def test_exp_form_gate_constants():
    """_kernels.gate_scales: per block, sigmoid -> (scale -1, numerator 1), tanh -> (-2, 2), '-' -> (1, 1);
    exp_gates then gives sigmoid and tanh + 1 in one pass."""
    from npnet.cells import _kernels
    scale, numerator = _kernels.gate_scales("st-", 2, np.float32)
    assert scale.dtype == numerator.dtype == np.float32
    np.testing.assert_array_equal(scale, [-1, -1, -2, -2, 1, 1])
    np.testing.assert_array_equal(numerator, [1, 1, 2, 2, 1, 1])
    a = np.array([[0.3, -2.0, 0.3, -2.0]])
    s, n = _kernels.gate_scales("st", 2, np.float64)
    gates = _kernels.exp_gates(a * s, n)
    np.testing.assert_allclose(gates[0, :2], 1 / (1 + np.exp(-a[0, :2])), rtol=1e-15)
    np.testing.assert_allclose(gates[0, 2:] - 1.0, np.tanh(a[0, 2:]), rtol=1e-15)
    assert list(_kernels.reverse_blocks(7, 3)) == [(4, 7), (1, 4), (0, 1)]
