"""Tests of npnet.interop: PyTorch-named weights in and out, without torch.

A plain NumPy step written in PyTorch's own equations (two separate biases,
weight_ih (G*H, D)) checks that a loaded cell computes what the torch module would.
"""
import numpy as np
import pytest

import npnet
from npnet import interop
from npnet.interop import load_torch_state_dict, torch_state_dict

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
KINDS = list(GATES)


def make_cell(kind, D, H, dtype=np.float64, rng=0):
    if kind.startswith("rnn"):
        return npnet.BasicRNNCell(D, H, nonlinearity=kind[4:], dtype=dtype, rng=rng)
    if kind == "lstm":
        from npnet.cells.lstm import LSTMCell
        return LSTMCell(D, H, dtype=dtype, rng=rng)
    from npnet.cells.gru import GRUCell
    return GRUCell(D, H, dtype=dtype, rng=rng)


def torch_like_dict(kind, D, H, seed=0, suffix="_l0"):
    """Random weights in PyTorch's layout and names."""
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    return {f"weight_ih{suffix}": rng.standard_normal((G * H, D)) * 0.5,
            f"weight_hh{suffix}": rng.standard_normal((G * H, H)) * 0.5,
            f"bias_ih{suffix}": rng.standard_normal(G * H),
            f"bias_hh{suffix}": rng.standard_normal(G * H)}


def _s(z):
    return 1.0 / (1.0 + np.exp(-z))


def torch_step(kind, sd, x, h, c=None, suffix="_l0"):
    """One step in PyTorch's documented equations, separate biases (the independent reference)."""
    Wi, Wh = sd[f"weight_ih{suffix}"], sd[f"weight_hh{suffix}"]
    bi, bh = sd[f"bias_ih{suffix}"], sd[f"bias_hh{suffix}"]
    gi = x @ Wi.T + bi
    gh = h @ Wh.T + bh
    if kind == "rnn_tanh":
        return np.tanh(gi + gh), None
    if kind == "rnn_relu":
        return np.maximum(gi + gh, 0.0), None
    if kind == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c2 = _s(f) * c + _s(i) * np.tanh(g)
        return _s(o) * np.tanh(c2), c2
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = _s(ir + hr), _s(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suffix", ["_l0", ""])
def test_loaded_cell_steps_like_torch_equations(kind, suffix):
    D, H, B = 3, 4, 2
    sd = torch_like_dict(kind, D, H, seed=1, suffix=suffix)
    cell = make_cell(kind, D, H)
    used = load_torch_state_dict(cell, sd)
    assert sorted(used) == sorted(sd)
    rng = np.random.default_rng(2)
    x, h = rng.standard_normal((B, D)), rng.standard_normal((B, H))
    c = rng.standard_normal((B, H)) if kind == "lstm" else None
    want_h, want_c = torch_step(kind, sd, x, h, c, suffix)
    got_h, state = cell.step(x, (h, c) if kind == "lstm" else h)
    np.testing.assert_allclose(got_h, want_h, rtol=1e-12, atol=1e-14)
    if kind == "lstm":
        np.testing.assert_allclose(state[1], want_c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_layout_and_bias_sum(kind):
    D, H = 3, 2
    sd = torch_like_dict(kind, D, H, seed=3)
    cell = make_cell(kind, D, H)
    load_torch_state_dict(cell, sd)
    p = cell.params
    np.testing.assert_array_equal(p["W_x"], sd["weight_ih_l0"].T)
    np.testing.assert_array_equal(p["W_h"], sd["weight_hh_l0"].T)
    bi, bh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    if kind == "gru":
        np.testing.assert_allclose(p["b"], np.concatenate([bi[:2 * H] + bh[:2 * H], bi[2 * H:]]), rtol=1e-15)
        np.testing.assert_array_equal(p["b_hn"], bh[2 * H:])
    else:
        np.testing.assert_allclose(p["b"], bi + bh, rtol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_keeps_network_and_identity(kind):
    D, H = 3, 5
    sd = torch_like_dict(kind, D, H, seed=4)
    cell = make_cell(kind, D, H)
    ids = {k: id(v) for k, v in cell.params.items()}
    load_torch_state_dict(cell, sd)
    assert {k: id(v) for k, v in cell.params.items()} == ids       # copied in place
    out = torch_state_dict(cell)
    assert list(out) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    np.testing.assert_array_equal(out["weight_ih_l0"], sd["weight_ih_l0"])
    np.testing.assert_array_equal(out["weight_hh_l0"], sd["weight_hh_l0"])
    np.testing.assert_allclose(out["bias_ih_l0"] + out["bias_hh_l0"], sd["bias_ih_l0"] + sd["bias_hh_l0"],
                               rtol=1e-14)
    if kind == "gru":                       # the n-part of bias_hh is separate and must come back exactly
        np.testing.assert_array_equal(out["bias_hh_l0"][2 * H:], sd["bias_hh_l0"][2 * H:])
        np.testing.assert_array_equal(out["bias_hh_l0"][:2 * H], 0.0)
    else:
        np.testing.assert_array_equal(out["bias_hh_l0"], 0.0)
    # exported arrays are copies: changing them leaves the cell alone
    out["weight_ih_l0"][:] = 0
    assert np.any(cell.params["W_x"] != 0)
    # loading the export into a fresh cell gives identical params
    cell2 = make_cell(kind, D, H, rng=9)
    load_torch_state_dict(cell2, out | torch_state_dict(cell))
    for k in cell.params:
        np.testing.assert_array_equal(cell2.params[k], cell.params[k])


@pytest.mark.parametrize("kind", KINDS)
def test_cell_names_without_suffix(kind):
    cell = make_cell(kind, 2, 3)
    out = torch_state_dict(cell, suffix=None, prefix="rnn.")
    assert list(out) == ["rnn.weight_ih", "rnn.weight_hh", "rnn.bias_ih", "rnn.bias_hh"]
    G = GATES[kind]
    assert out["rnn.weight_ih"].shape == (G * 3, 2) and out["rnn.weight_hh"].shape == (G * 3, 3)
    used = load_torch_state_dict(make_cell(kind, 2, 3, rng=5), out, prefix="rnn.")
    assert sorted(used) == sorted(out)


@pytest.mark.parametrize("kind", KINDS)
def test_grads_mapping(kind):
    D, H = 3, 2
    cell = make_cell(kind, D, H)
    rng = np.random.default_rng(6)
    for g in cell.grads.values():
        g[...] = rng.standard_normal(g.shape)
    gd = torch_state_dict(cell, grads=True)
    G = cell.grads
    np.testing.assert_array_equal(gd["weight_ih_l0"], G["W_x"].T)
    np.testing.assert_array_equal(gd["weight_hh_l0"], G["W_h"].T)
    np.testing.assert_array_equal(gd["bias_ih_l0"], G["b"])
    if kind == "gru":
        np.testing.assert_array_equal(gd["bias_hh_l0"], np.concatenate([G["b"][:2 * H], G["b_hn"]]))
    else:
        np.testing.assert_array_equal(gd["bias_hh_l0"], G["b"])
    # values, not grads, by default
    np.testing.assert_array_equal(torch_state_dict(cell)["weight_ih_l0"], cell.params["W_x"].T)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_cell_keeps_dtype(kind):
    sd = torch_like_dict(kind, 3, 4, seed=7)
    cell = make_cell(kind, 3, 4, dtype=np.float32)
    load_torch_state_dict(cell, sd)
    assert all(p.dtype == np.float32 for p in cell.params.values())
    np.testing.assert_allclose(cell.params["W_x"], sd["weight_ih_l0"].T, rtol=1e-6)
    assert all(v.dtype == np.float32 for v in torch_state_dict(cell).values())


class FakeTensor:
    """Quacks like a torch.Tensor for the purpose of reading it (detach/cpu/numpy)."""

    def __init__(self, a):
        self.a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def test_accepts_tensor_like_values():
    sd = torch_like_dict("rnn_tanh", 2, 3, seed=8)
    cell = make_cell("rnn_tanh", 2, 3)
    load_torch_state_dict(cell, {k: FakeTensor(v) for k, v in sd.items()})
    np.testing.assert_array_equal(cell.params["W_x"], sd["weight_ih_l0"].T)


# -- errors ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_missing_key_names_key_and_shape(kind):
    sd = torch_like_dict(kind, 3, 4)
    del sd["bias_hh_l0"]
    G = GATES[kind]
    with pytest.raises(ValueError, match=rf"'bias_hh_l0'.*shape \({G * 4},\)"):
        load_torch_state_dict(make_cell(kind, 3, 4), sd)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_shape_names_key_and_shape_and_writes_nothing(kind):
    sd = torch_like_dict(kind, 3, 4)
    sd["weight_hh_l0"] = sd["weight_hh_l0"].T.copy()                  # npnet layout by mistake
    cell = make_cell(kind, 3, 4)
    before = {k: v.copy() for k, v in cell.params.items()}
    G = GATES[kind]
    if G > 1:
        with pytest.raises(ValueError, match=rf"weight_hh_l0 must have shape \({G * 4}, 4\).*got \(4, {G * 4}\)"):
            load_torch_state_dict(cell, sd)
    sd["weight_ih_l0"] = np.zeros((G * 4, 5))                          # wrong input size
    with pytest.raises(ValueError, match=rf"weight_ih_l0 must have shape \({G * 4}, 3\)"):
        load_torch_state_dict(cell, sd)
    for k, v in cell.params.items():                                   # validated before writing
        np.testing.assert_array_equal(v, before[k])


def test_strict_rejects_leftover_keys():
    sd = torch_like_dict("lstm", 3, 4) | torch_like_dict("lstm", 4, 4, suffix="_l1")
    cell = make_cell("lstm", 3, 4)
    with pytest.raises(ValueError, match=r"no npnet cell takes.*weight_ih_l1"):
        load_torch_state_dict(cell, sd)
    load_torch_state_dict(cell, sd, strict=False)
    np.testing.assert_array_equal(cell.params["W_x"], sd["weight_ih_l0"].T)


def test_prefix_selects_submodule_and_ignores_others():
    sd = {f"rnn.{k}": v for k, v in torch_like_dict("gru", 2, 3).items()}
    sd["fc.weight"] = np.zeros((5, 3))
    cell = make_cell("gru", 2, 3)
    load_torch_state_dict(cell, sd, prefix="rnn.")
    with pytest.raises(ValueError, match="no key 'weight_ih_l0'"):
        load_torch_state_dict(cell, sd)


def test_bad_values_and_targets():
    cell = make_cell("rnn_tanh", 2, 3)
    sd = torch_like_dict("rnn_tanh", 2, 3)
    sd["bias_ih_l0"] = sd["bias_ih_l0"].copy()
    sd["bias_ih_l0"][0] = np.nan
    with pytest.raises(ValueError, match="bias_ih_l0 contains NaN"):
        load_torch_state_dict(cell, sd)
    sd["bias_ih_l0"] = np.array(["a"] * 3)
    with pytest.raises(ValueError, match="bias_ih_l0 must hold real numbers"):
        load_torch_state_dict(cell, sd)
    with pytest.raises(ValueError, match="no PyTorch layout for LinearLayer"):
        load_torch_state_dict(npnet.LinearLayer(2, 3), torch_like_dict("rnn_tanh", 2, 3))
    with pytest.raises(ValueError, match="no PyTorch layout for LinearLayer"):
        torch_state_dict(npnet.LinearLayer(2, 3))
    with pytest.raises(ValueError, match="must be a mapping"):
        load_torch_state_dict(cell, [1, 2])


# -- models: recurrent_cells() dispatch -------------------------------------------
class TwoLayerModel:
    """The smallest object following the multi-cell protocol of SequenceModel."""

    def __init__(self, kind0, kind1, D=3, H=4, dtype=np.float64):
        self.c0 = make_cell(kind0, D, H, dtype=dtype, rng=1)
        self.c1 = make_cell(kind1, H, H, dtype=dtype, rng=2)

    def recurrent_cells(self):
        return [("l0", self.c0), ("l1", self.c1)]


@pytest.mark.parametrize("kinds", [("rnn_tanh", "rnn_tanh"), ("lstm", "lstm"), ("gru", "gru"),
                                   ("lstm", "gru")])
def test_model_dispatch_load_and_save(kinds):
    model = TwoLayerModel(*kinds)
    sd = torch_like_dict(kinds[0], 3, 4, seed=10) | torch_like_dict(kinds[1], 4, 4, seed=11, suffix="_l1")
    ids = [id(model.c0.params["W_x"]), id(model.c1.params["W_x"])]
    used = load_torch_state_dict(model, sd)
    assert sorted(used) == sorted(sd)
    assert [id(model.c0.params["W_x"]), id(model.c1.params["W_x"])] == ids
    np.testing.assert_array_equal(model.c0.params["W_x"], sd["weight_ih_l0"].T)
    np.testing.assert_array_equal(model.c1.params["W_h"], sd["weight_hh_l1"].T)
    out = torch_state_dict(model)
    assert list(out) == [f"{n}_{s}" for s in ("l0", "l1") for n in
                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    np.testing.assert_array_equal(out["weight_ih_l1"], sd["weight_ih_l1"])
    gd = torch_state_dict(model, grads=True, prefix="m.")
    assert "m.bias_hh_l1" in gd
    # a model's cells need their suffixed names: the bare cell names are not accepted
    bare = {k[: -len("_l0")]: v for k, v in sd.items() if k.endswith("_l0")}
    with pytest.raises(ValueError, match="no key 'weight_ih_l0'"):
        load_torch_state_dict(model, bare | {k: v for k, v in sd.items() if k.endswith("_l1")})
    # a missing second layer is named
    with pytest.raises(ValueError, match=r"no key 'weight_hh_l1'.*shape"):
        load_torch_state_dict(model, {k: v for k, v in sd.items() if k != "weight_hh_l1"})


def test_model_dispatch_bidirectional_suffixes():
    class Bi:
        def __init__(self):
            self.f = make_cell("gru", 2, 3, rng=1)
            self.b = make_cell("gru", 2, 3, rng=2)

        def recurrent_cells(self):
            return [("l0", self.f), ("l0_reverse", self.b)]

    sd = torch_like_dict("gru", 2, 3, seed=1) | torch_like_dict("gru", 2, 3, seed=2, suffix="_l0_reverse")
    m = Bi()
    load_torch_state_dict(m, sd)
    np.testing.assert_array_equal(m.b.params["b_hn"], sd["bias_hh_l0_reverse"][6:])
    assert set(torch_state_dict(m)) == set(sd)


def test_recurrent_cells_must_return_pairs():
    class Bad:
        def recurrent_cells(self):
            return [make_cell("rnn_tanh", 2, 2)]

    with pytest.raises(ValueError, match=r"\(suffix, cell\) pairs"):
        torch_state_dict(Bad())


def test_cell_kind():
    assert interop.cell_kind(make_cell("rnn_relu", 1, 1)) == "rnn"
    assert interop.cell_kind(make_cell("lstm", 1, 1)) == "lstm"
    assert interop.cell_kind(make_cell("gru", 1, 1)) == "gru"


# -- other layouts --------------------------------------------------------------
def test_reorder_gates():
    H = 2
    a = np.arange(8.0).reshape(1, 8)                      # blocks [0 1], [2 3], [4 5], [6 7]
    np.testing.assert_array_equal(interop.reorder_gates(a, [0, 1, 3, 2], H), [[0, 1, 2, 3, 6, 7, 4, 5]])
    np.testing.assert_array_equal(interop.reorder_gates(np.arange(6.0), [1, 0, 2], H), [2, 3, 0, 1, 4, 5])
    b = np.arange(12.0).reshape(2, 6)                     # axis=-1 on a stacked (2, 3H) Keras GRU bias
    np.testing.assert_array_equal(interop.reorder_gates(b, [1, 0, 2], H)[1], [8, 9, 6, 7, 10, 11])
    with pytest.raises(ValueError, match="must hold 3 blocks of 2"):
        interop.reorder_gates(np.zeros(7), [1, 0, 2], H)
    with pytest.raises(ValueError, match="permutation"):
        interop.reorder_gates(np.zeros(6), [0, 0, 2], H)


def test_doc_examples_run():
    """Every ```python block of docs/interop.md runs (each checks itself against its library's equations)."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5                                  # 3 + the Keras section's 2
    for code in blocks:
        exec(compile(code, "docs/interop.md", "exec"), {})


def test_sequence_model_round_trip():
    """The real SequenceModel (mixed, bidirectional) through the recurrent_cells() protocol."""
    from npnet.model import SequenceModel
    kw = dict(num_layers=2, cell=["gru", "lstm"], bidirectional=True, output_size=2)
    a, b = SequenceModel(3, [4, 5], rng=1, **kw), SequenceModel(3, [4, 5], rng=2, **kw)
    sd = torch_state_dict(a)
    assert sd["weight_ih_l1_reverse"].shape == (20, 8) and sd["bias_hh_l0_reverse"].shape == (12,)
    load_torch_state_dict(b, sd)
    for k, v in a.params.items():
        if k.startswith("cells."):
            np.testing.assert_array_equal(b.params[k], v)
