"""BasicRNNCell: what is specific to it (the IRNN, the nonlinearity argument).

Everything every cell must do (the fast path equal to npnet.cells.reference, gradient checks,
masks, step(), dtypes, errors) is checked for all cells in tests/cells/test_contract.py.
"""
import numpy as np
import pytest

import npnet


def test_irnn_identity_init():
    cell = npnet.BasicRNNCell(2, 3, nonlinearity="relu", recurrent_init="identity", rng=0)
    np.testing.assert_array_equal(cell.params["W_h"], np.eye(3))


def test_relu_long_sequence_stays_finite_with_identity():
    cell = npnet.BasicRNNCell(1, 2, nonlinearity="relu", recurrent_init="identity", rng=0)
    out, _ = cell.fprop(np.ones((1, 10_000, 1)))
    assert np.isfinite(out).all()


def test_unknown_nonlinearity():
    with pytest.raises(npnet.NpnetError, match="nonlinearity must be 'tanh' or 'relu'"):
        npnet.BasicRNNCell(2, 3, nonlinearity="sigmoid")
