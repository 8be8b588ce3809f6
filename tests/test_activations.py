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
