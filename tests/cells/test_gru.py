"""GRUCell: what is specific to it: backward blocks, PyTorch values, the reset placement,
update_bias, parameter shapes and config.

Everything every cell must do (the fast path equal to npnet.cells.reference, gradient checks,
masks, step(), dtypes, errors, long sequences) is checked for all cells in
tests/cells/test_contract.py. The PyTorch values are a fixture at the end of this file
(torch.nn.GRU, float64), so no test needs torch.
"""
import numpy as np
import pytest

import npnet
from npnet.cells import _kernels, reference

PARAMS = {"W_x", "W_h", "b", "b_hn"}


def make(D=3, H=4, seed=0, dtype=np.float64, scale=0.7):
    """A cell with random non-zero parameters (biases included), so every term is exercised."""
    cell = npnet.GRUCell(D, H, rng=seed, dtype=dtype)
    prng = np.random.default_rng(seed + 100)
    for p in cell.params.values():
        p[...] = scale * prng.standard_normal(p.shape)
    return cell


def data(rng, B=3, T=5, D=3, H=4):
    return rng.standard_normal((B, T, D)), rng.standard_normal((B, H))


def run(cell, x, h0, mask, dout, dhT):
    cell.zero_grad()
    out, hT = cell.fprop(x, h0, mask)
    dx, dh0 = cell.bprop(dout, dhT)
    return out, hT, dx, dh0, {k: g.copy() for k, g in cell.grads.items()}


# -- backward blocks and PyTorch ------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_backward_blocks_equal_reference(masked, rng, monkeypatch):
    """bprop computes its factors per block of K steps; every K (1, one that does not divide
    T, all of T) must give the reference's gradients and the same state-gradient norms."""
    B, T, D, H = 3, 7, 2, 4
    x, h0 = data(rng, B, T, D, H)
    mask = (rng.random((B, T)) < 0.6) if masked else None
    dout, dhT = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))
    r_out, r_hT, cache = reference.gru_forward(x, h0, make(D, H).params, mask)
    r_grads = {k: np.zeros_like(v) for k, v in make(D, H).params.items()}
    r_dx, r_dh0 = reference.gru_backward(dout, dhT, cache, r_grads)
    norms = []
    for K in (T, 1, 3):
        cell = make(D, H)
        monkeypatch.setattr(_kernels, "BLOCK_BYTES", K * 4 * B * H * 8)     # 4 (B, H) arrays per step
        assert _kernels.block_steps(T, 4 * B * H * 8) == K
        cell.track_state_grads = True
        out, hT, dx, dh0, grads = run(cell, x, h0, mask, dout, dhT)
        for got, want in [(out, r_out), (dx, r_dx), (dh0, r_dh0)]:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        for k in PARAMS:
            np.testing.assert_allclose(grads[k], r_grads[k], rtol=0, atol=1e-12, err_msg=f"{k}, K={K}")
        norms.append(cell.state_grad_norms["h"])
    assert all(np.array_equal(n, norms[0]) for n in norms[1:])


def test_matches_pytorch_values():
    """torch.nn.GRU (float64) with weight_ih = W_x.T, weight_hh = W_h.T, bias_ih = b, bias_hh = [0, 0, b_hn]."""
    f = {k: np.array(v) for k, v in TORCH_GRU.items()}
    cell = npnet.GRUCell(2, 2, rng=0)
    for k in PARAMS:
        cell.params[k][...] = f[k]
    out, hT, dx, dh0, grads = run(cell, f["x"], f["h0"], None, f["dout"], f["dhT"])
    for got, want in [(out, f["out"]), (hT, f["hT"]), (dx, f["dx"]), (dh0, f["dh0"])]:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    for k in PARAMS:
        np.testing.assert_allclose(grads[k], f["d" + k], rtol=0, atol=1e-13, err_msg=k)


def test_differs_from_cho_reset_placement(rng):
    """The reset gate acts on (h W_hn + b_hn), not on h before the matrix (Cho et al. 2014)."""
    cell = make(2, 3)
    x, h0 = data(rng, 2, 1, 2, 3)
    out, _ = cell.fprop(x, h0)
    p, H = cell.params, 3
    s = lambda a: 1 / (1 + np.exp(-a))
    gx = x[:, 0] @ p["W_x"] + p["b"]
    r = s(gx[:, :H] + h0 @ p["W_h"][:, :H])
    z = s(gx[:, H:2 * H] + h0 @ p["W_h"][:, H:2 * H])
    n_cho = np.tanh(gx[:, 2 * H:] + (r * h0) @ p["W_h"][:, 2 * H:] + p["b_hn"])
    assert np.abs(out[:, 0] - ((1 - z) * n_cho + z * h0)).max() > 1e-3


# -- shapes, config, constructor --------------------------------------------------------------
def test_shapes_and_config():
    cell = npnet.GRUCell(5, 7, rng=1, dtype=np.float32)
    assert {k: v.shape for k, v in cell.params.items()} == {
        "W_x": (5, 21), "W_h": (7, 21), "b": (21,), "b_hn": (7,)}
    assert all(cell.grads[k].shape == cell.params[k].shape for k in cell.params)
    cfg = cell.get_config()
    assert cfg == {"input_size": 5, "hidden_size": 7, "dtype": "float32"}
    clone = npnet.GRUCell(**cfg)
    assert clone.dtype == np.float32 and clone.params["W_h"].shape == (7, 21)
    assert np.all(cell.params["b"] == 0) and np.all(cell.params["b_hn"] == 0)
    Wh = cell.params["W_h"].astype(np.float64)
    for g in range(3):                                        # one orthogonal block per gate
        block = Wh[:, 7 * g:7 * (g + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(7), atol=1e-5)
    s1 = npnet.GRUCell(3, 4, rng=5).params["W_x"]
    s2 = npnet.GRUCell(3, 4, rng=np.random.default_rng(5)).params["W_x"]
    assert np.array_equal(s1, s2)


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1"):
        npnet.GRUCell(3, 0)
    with pytest.raises(ValueError, match="float32 or float64"):
        npnet.GRUCell(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="unknown initialiser"):
        npnet.GRUCell(3, 4, recurrent_init="nope")


# -- fixture: torch.nn.GRU (torch 2.13, float64) on the inputs below --------------------------
TORCH_GRU = {
    'W_x': [[0.25, 0.79, 0.55, -0.55, -0.4, 0.75], [-0.99, 0.64, 0.59, -0.06, -0.39, -0.44]],
    'W_h': [[-0.49, -0.11, 0.01, 0.11, 0.99, 0.59], [0.24, 0.98, -0.57, -0.68, 0.23, -0.91]],
    'b': [-0.93, 0.03, -0.07, 0.83, 0.26, 0.03],
    'b_hn': [-0.01, -0.5],
    'x': [[[-1.95, -1.23], [0.77, -1.2], [-0.52, -1.99]], [[1.32, -1.38], [-0.93, 1.52], [0.04, 1.39]]],
    'h0': [[0.28, 0.48], [-0.82, 0.08]],
    'dout': [[[0.02, 0.74], [-0.28, 0.2], [-0.88, -0.22]], [[-0.35, -0.7], [0.63, -0.24], [0.96, 0.18]]],
    'dhT': [[0.21, 0.28], [0.35, -0.7]],
    'out': [[[0.8649552408273544, 0.28537009388581025],
             [0.77140908002983, 0.48007988678982966],
             [0.9228348682479044, 0.4553021482057254]],
            [[-0.5503911980121946, 0.41468838099931477],
             [-0.2866160513364743, 0.01574127141611703],
             [-0.2962989813036647, -0.25214928258419234]]],
    'hT': [[0.9228348682479044, 0.4553021482057254], [-0.2962989813036647, -0.25214928258419234]],
    'dx': [[[-0.025183801297732816, -0.020704158755514387],
            [0.07450770403060519, 0.05145793590349509],
            [0.03723254518297471, 0.03562558385870727]],
           [[-0.30708038975776736, -0.0054565865526680635],
            [-0.3466218296106252, -0.369733430641214],
            [-0.14068432430762695, -0.09004560142609361]]],
    'dh0': [[-0.0055994801905787026, 0.6043948124615275], [0.38138153517594275, -0.30771561775444317]],
    'dW_x': [[-0.033333169437522236,
              0.06308617589309994,
              0.07518489036628617,
              0.008630432928667955,
              -0.3691556948917372,
              -0.30302504122564233],
             [0.05090112616237298,
              -0.03138884161300538,
              -0.24654227707564907,
              -0.665171354484033,
              1.5876069505341395,
              -0.019070262815922195]],
    'dW_h': [[0.013813474492498107,
              -0.04253471893723952,
              0.16375939833763353,
              0.004418868412689889,
              -0.29108919262938204,
              0.11733628361203269],
             [-0.028988156456424538,
              0.0006382488341667715,
              -0.08320704344518408,
              0.015133415208212792,
              0.0024546387968598544,
              1.6003404605321146e-05]],
    'db': [-0.11501207853227623,
           0.04461809586044572,
           -0.2495376449937627,
           0.028820338244736704,
           1.155130322466897,
           -0.1322351361185627],
    'db_hn': [0.18325078810301665, -0.12167746434639404],
}


def test_update_bias_sets_only_the_z_block():
    cell = npnet.GRUCell(2, 3, update_bias=2.0, rng=0)
    np.testing.assert_array_equal(cell.params["b"], [0, 0, 0, 2, 2, 2, 0, 0, 0])
    assert not cell.params["b_hn"].any()
    assert npnet.GRUCell(**cell.get_config()).params["b"][3:6].tolist() == [2, 2, 2]


# -- the reset_after=False form (Cho et al. 2014, Keras reset_after=False) --------------------
def make_reset_before(D=3, H=4, seed=0, dtype=np.float64, scale=0.7):
    cell = npnet.GRUCell(D, H, rng=seed, dtype=dtype, reset_after=False)
    prng = np.random.default_rng(seed + 100)
    for p in cell.params.values():
        p[...] = scale * prng.standard_normal(p.shape)
    return cell


def test_reset_before_computes_the_cho_equations(rng):
    """Written out here, independently of npnet.cells.reference: n = tanh(x W_xn + b_n + (r h) W_hn)."""
    B, T, D, H = 2, 4, 3, 5
    cell = make_reset_before(D, H)
    x, h0 = data(rng, B, T, D, H)
    out, hT = cell.fprop(x, h0)
    p, h = cell.params, h0
    s = lambda a: 1 / (1 + np.exp(-a))
    for t in range(T):
        gx = x[:, t] @ p["W_x"] + p["b"]
        r = s(gx[:, :H] + h @ p["W_h"][:, :H])
        z = s(gx[:, H:2 * H] + h @ p["W_h"][:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + (r * h) @ p["W_h"][:, 2 * H:])
        h = z * h + (1 - z) * n
        np.testing.assert_allclose(out[:, t], h, rtol=0, atol=1e-14)
    np.testing.assert_allclose(hT, h, rtol=0, atol=1e-14)
    default = npnet.GRUCell(D, H, rng=0)                      # the same weights, b_hn = 0: another function
    for k in cell.params:
        default.params[k][...] = cell.params[k]
    assert np.abs(default.fprop(x, h0)[0] - out).max() > 1e-3


@pytest.mark.parametrize("masked", [False, True])
def test_reset_before_backward_blocks_equal_reference(masked, rng, monkeypatch):
    B, T, D, H = 3, 7, 2, 4
    x, h0 = data(rng, B, T, D, H)
    mask = (rng.random((B, T)) < 0.6) if masked else None
    dout, dhT = rng.standard_normal((B, T, H)), rng.standard_normal((B, H))
    params = make_reset_before(D, H).params
    r_out, r_hT, cache = reference.gru_forward(x, h0, params, mask)
    r_grads = {k: np.zeros_like(v) for k, v in params.items()}
    r_dx, r_dh0 = reference.gru_backward(dout, dhT, cache, r_grads)
    norms = []
    for K in (T, 1, 3):
        cell = make_reset_before(D, H)
        monkeypatch.setattr(_kernels, "BLOCK_BYTES", K * 4 * B * H * 8)
        assert _kernels.block_steps(T, 4 * B * H * 8) == K
        cell.track_state_grads = True
        out, hT, dx, dh0, grads = run(cell, x, h0, mask, dout, dhT)
        for got, want in [(out, r_out), (hT, r_hT), (dx, r_dx), (dh0, r_dh0)]:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert set(grads) == {"W_x", "W_h", "b"}
        for k in grads:
            np.testing.assert_allclose(grads[k], r_grads[k], rtol=0, atol=1e-12, err_msg=f"{k}, K={K}")
        norms.append(cell.state_grad_norms["h"])
    assert all(np.array_equal(n, norms[0]) for n in norms[1:])


def test_reset_before_params_and_config():
    cell = npnet.GRUCell(5, 7, rng=1, dtype=np.float32, reset_after=False, update_bias=1.0)
    assert {k: v.shape for k, v in cell.params.items()} == {"W_x": (5, 21), "W_h": (7, 21), "b": (21,)}
    assert set(cell.grads) == {"W_x", "W_h", "b"}
    cfg = cell.get_config()
    assert cfg == {"input_size": 5, "hidden_size": 7, "dtype": "float32", "update_bias": 1.0,
                   "reset_after": False}
    clone = npnet.GRUCell(**cfg)
    assert clone.reset_after is False and "b_hn" not in clone.params
    old = npnet.GRUCell(**{"input_size": 5, "hidden_size": 7, "dtype": "float32"})   # a config from before
    assert old.reset_after is True and "b_hn" in old.params
    assert "reset_after" not in old.get_config()
    with pytest.raises(npnet.NpnetError, match="reset_after must be True or False, got 'no'"):
        npnet.GRUCell(2, 3, reset_after="no")


def test_reset_before_step_is_the_reference_step(rng):
    cell = make_reset_before(2, 3)
    x, h0 = data(rng, 2, 1, 2, 3)
    h, state = cell.step(x[:, 0], h0)
    want, cache = reference.gru_step_forward(x[:, 0], h0, cell.params)
    assert "rh" in cache and np.array_equal(h, want) and state is h


def test_reset_before_in_a_sequence_model_and_its_checkpoint(tmp_path, rng):
    model = npnet.SequenceModel(3, 4, num_layers=2, cell="gru", output_size=2, bidirectional=True,
                                rng=0, cell_kwargs={"reset_after": False})
    assert all(c.reset_after is False and "b_hn" not in c.params for _, c in model.recurrent_cells())
    assert not any(k.endswith("b_hn") for k in model.params)
    x = rng.standard_normal((2, 5, 3))
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    errors = npnet.gradcheck(model, x, mask=mask)
    assert max(errors.values()) < 1e-6, errors
    path = tmp_path / "gru.npz"
    npnet.save_checkpoint(path, model)
    loaded = npnet.load_checkpoint(path).model
    assert all(c.reset_after is False for _, c in loaded.recurrent_cells())
    np.testing.assert_array_equal(loaded.fprop(x, mask=mask)[0], model.fprop(x, mask=mask)[0])


def test_old_gru_checkpoint_without_the_key_loads_with_reset_after(tmp_path):
    """A GRUCell config written before reset_after existed has no such key: it loads as True,
    and load_into(strict) finds a fresh default GRUCell's config equal to it."""
    cell = npnet.GRUCell(2, 3, rng=0)
    path = tmp_path / "cell.npz"
    npnet.save_checkpoint(path, cell)
    assert "reset_after" not in npnet.training.checkpoint.read_meta(path)["model_config"]
    assert npnet.load_checkpoint(path).model.reset_after is True
    npnet.training.checkpoint.load_into(path, npnet.GRUCell(2, 3, rng=1))
    with pytest.raises(npnet.CheckpointError, match="reset_after"):
        npnet.training.checkpoint.load_into(path, npnet.GRUCell(2, 3, rng=1, reset_after=False))


def test_pytorch_interop_refuses_reset_before():
    cell = npnet.GRUCell(2, 3, rng=0, reset_after=False)
    with pytest.raises(npnet.NpnetError, match=r"PyTorch has no GRU with reset_after=False"):
        npnet.interop.torch_state_dict(cell)
    torch_like = npnet.interop.torch_state_dict(npnet.GRUCell(2, 3, rng=0))
    with pytest.raises(npnet.NpnetError, match=r"PyTorch has no GRU with reset_after=False"):
        npnet.interop.load_torch_state_dict(cell, torch_like)
    model = npnet.SequenceModel(2, 3, cell="gru", rng=0, cell_kwargs={"reset_after": False})
    with pytest.raises(npnet.NpnetError, match=r"reset_after=False"):
        npnet.interop.torch_state_dict(model)
