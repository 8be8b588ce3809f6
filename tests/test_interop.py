"""Tests of npnet.interop: PyTorch-named weights in and out, without torch.

A plain NumPy step written in PyTorch's own equations (two separate biases,
weight_ih (G*H, D)) checks that a loaded cell computes what the torch module would.
"""
import re

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


def test_doc_examples_run(tmp_path, monkeypatch):
    """Every ```python block of docs/interop.md runs (each checks itself against its library's equations)."""
    monkeypatch.chdir(tmp_path)                              # a block writes a file
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 6                                  # 4 + the Keras section's 2
    for code in blocks:
        exec(compile(code, "docs/interop.md", "exec"), {})


def test_sequence_model_round_trip():
    """The real SequenceModel (mixed, bidirectional) through the recurrent_cells() protocol."""
    from npnet.model import SequenceModel
    kw = dict(num_layers=2, cell=["gru", "lstm"], bidirectional=True, output_size=2)
    a, b = SequenceModel(3, [4, 5], rng=1, **kw), SequenceModel(3, [4, 5], rng=2, **kw)
    sd = torch_state_dict(a, cells_only=True)
    assert sd["weight_ih_l1_reverse"].shape == (20, 8) and sd["bias_hh_l0_reverse"].shape == (12,)
    load_torch_state_dict(b, sd, cells_only=True)
    for k, v in a.params.items():
        if k.startswith("cells."):
            np.testing.assert_array_equal(b.params[k], v)


# -- a whole SequenceModel <-> its torch twin (read_in / rnn / read_out) --------------------------
def _model(**kw):
    from npnet.model import SequenceModel
    base = dict(input_size=3, hidden_size=4, num_layers=2, cell="gru", read_in=5, output_size=2,
                bidirectional=True, rng=0)
    return SequenceModel(**(base | kw))


def test_whole_model_keys_layouts_and_order():
    m = _model()
    sd = torch_state_dict(m)
    cells = [f"rnn.{n}_{s}" for s in ("l0", "l0_reverse", "l1", "l1_reverse")
             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert list(sd) == ["read_in.weight", "read_in.bias"] + cells + ["read_out.weight", "read_out.bias"]
    np.testing.assert_array_equal(sd["read_in.weight"], m.params["read_in.W"].T)        # nn.Linear (out, in)
    np.testing.assert_array_equal(sd["read_out.bias"], m.params["read_out.b"])
    assert sd["read_out.weight"].shape == (2, 8) and sd["rnn.weight_ih_l1"].shape == (12, 8)
    np.testing.assert_array_equal(sd["rnn.bias_hh_l1_reverse"][8:], m.params["cells.1_reverse.b_hn"])
    assert list(torch_state_dict(m, prefix="net.")) == ["net." + k for k in sd]
    assert list(torch_state_dict(m, cells_only=True)) == [k[4:] for k in cells]          # nn.GRU's own names
    spec = interop.torch_module_spec(m)
    assert spec["rnn"] == {"type": "GRU", "input_size": 5, "hidden_size": 4, "num_layers": 2,
                           "bidirectional": True, "dropout": 0.0}
    assert spec["read_in"] == {"type": "Linear", "in_features": 3, "out_features": 5, "bias": True}
    assert spec["read_out"]["in_features"] == 8 and spec["return_sequences"] is True


def test_whole_model_load_round_trip_keeps_identity_and_output(rng):
    a, b = _model(rng=1), _model(rng=2)
    ids = {k: id(v) for k, v in b.params.items()}
    used = load_torch_state_dict(b, torch_state_dict(a))
    assert used == list(torch_state_dict(a))
    assert {k: id(v) for k, v in b.params.items()} == ids
    x = rng.standard_normal((2, 4, 3))
    np.testing.assert_array_equal(b.fprop(x)[0], a.fprop(x)[0])


def test_whole_model_torch_biases_add_up(rng):
    """Two torch biases per cell (both non-zero) load as their sum; the output is the one with the summed bias."""
    a = _model(cell="lstm", num_layers=1, bidirectional=False)
    sd = torch_state_dict(a)
    sd["rnn.bias_hh_l0"] = rng.standard_normal(16)
    b = _model(cell="lstm", num_layers=1, bidirectional=False, rng=5)
    load_torch_state_dict(b, sd)
    np.testing.assert_allclose(b.params["cells.0.b"], sd["rnn.bias_ih_l0"] + sd["rnn.bias_hh_l0"], rtol=1e-15)


def test_whole_model_embedding_read_in(rng):
    from npnet.model import SequenceModel
    m = SequenceModel(3, 4, cell="lstm", read_in=npnet.Embedding(7, 3, padding_idx=0, rng=0), output_size=2, rng=0)
    sd = torch_state_dict(m)
    assert list(sd)[0] == "read_in.weight" and "read_in.bias" not in sd
    np.testing.assert_array_equal(sd["read_in.weight"], m.params["read_in.W"])           # nn.Embedding: (V, E) as is
    assert interop.torch_module_spec(m)["read_in"] == {"type": "Embedding", "num_embeddings": 7,
                                                       "embedding_dim": 3, "padding_idx": 0}
    sd["read_in.weight"] = rng.standard_normal((7, 3))
    load_torch_state_dict(m, sd)
    np.testing.assert_array_equal(m.params["read_in.W"], sd["read_in.weight"])
    with pytest.raises(ValueError, match=r"read_in.weight must have shape \(7, 3\)"):
        load_torch_state_dict(m, sd | {"read_in.weight": np.zeros((6, 3))})


def test_whole_model_without_read_in_or_read_out_and_rnn_relu():
    from npnet.model import SequenceModel
    m = SequenceModel(2, 3, cell="irnn")
    assert list(torch_state_dict(m)) == [f"rnn.{n}_l0" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert interop.torch_module_spec(m)["rnn"]["nonlinearity"] == "relu"
    assert interop.torch_module_spec(m)["read_in"] is None and interop.torch_module_spec(m)["read_out"] is None


def test_whole_model_validates_everything_before_writing():
    a, b = _model(rng=1), _model(rng=2)
    before = {k: v.copy() for k, v in b.params.items()}
    sd = torch_state_dict(a)
    for bad, match in (({"read_out.weight": np.zeros((2, 7))}, r"read_out.weight must have shape \(2, 8\)"),
                       ({"read_in.bias": np.full(5, np.nan)}, "read_in.bias contains NaN"),
                       ({"rnn.weight_hr_l0": np.zeros((4, 4))}, r"no npnet cell takes.*weight_hr_l0")):
        with pytest.raises(ValueError, match=match):
            load_torch_state_dict(b, sd | bad)
        for k, v in before.items():
            np.testing.assert_array_equal(b.params[k], v)
    for missing in ("read_in.weight", "read_out.weight", "rnn.weight_hh_l1_reverse"):
        with pytest.raises(ValueError, match=rf"no key '{re.escape(missing)}'.*shape"):
            load_torch_state_dict(b, {k: v for k, v in sd.items() if k != missing})
    with pytest.raises(ValueError, match="no 'rnn.weight_ih_l0'.*cells_only=True"):      # nn.GRU's own dict
        load_torch_state_dict(b, torch_state_dict(a, cells_only=True))
    bare = _model(read_in=None, output_size=None)
    with pytest.raises(ValueError, match="no key 'rnn.weight_ih_l0'"):
        load_torch_state_dict(bare, {"rnn.weight_hh_l0": np.zeros((12, 4))})
    load_torch_state_dict(b, {"net." + k: v for k, v in sd.items()} | {"other.w": 1.0}, prefix="net.")
    np.testing.assert_array_equal(b.params["read_out.W"], a.params["read_out.W"])


def test_whole_model_refuses_models_without_a_torch_twin():
    with pytest.raises(ValueError, match="no single nn.RNN/LSTM/GRU.*cells_only=True"):
        torch_state_dict(_model(cell=["gru", "lstm"]))
    with pytest.raises(ValueError, match="no single nn.RNN/LSTM/GRU"):
        load_torch_state_dict(_model(hidden_size=[4, 3]), {})
    with pytest.raises(ValueError, match="no single nn.RNN/LSTM/GRU"):
        torch_state_dict(_model(cell="rnn", cell_kwargs=[{}, {"nonlinearity": "relu"}]))
    seq = npnet.Sequential(npnet.LinearLayer(3, 5, rng=0), npnet.ReLU())
    with pytest.raises(ValueError, match="no PyTorch mapping for a Sequential read-in"):
        torch_state_dict(_model(read_in=seq, input_size=5))
    assert "weight_ih_l0" in torch_state_dict(_model(read_in=seq, input_size=5), cells_only=True)


def test_whole_model_grads():
    m = _model(cell="lstm", num_layers=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    y, _ = m.fprop(x)
    m.zero_grad()
    m.bprop(np.ones_like(y))
    g = torch_state_dict(m, grads=True)
    np.testing.assert_array_equal(g["read_in.weight"], m.grads["read_in.W"].T)
    np.testing.assert_array_equal(g["rnn.bias_hh_l0_reverse"], m.grads["cells.0_reverse.b"])
    assert list(g) == list(torch_state_dict(m))
    assert "read_out.bias" not in torch_state_dict(m, grads=True, bias=False)


def test_bias_false_module_loads_as_zero_bias_and_training_moves_it(rng):
    """A twin built with bias=False: no bias keys; npnet's biases load as zero, then train like any parameter."""
    a = _model(cell="lstm", num_layers=1)
    for k, v in a.params.items():
        if k.endswith(".b") or k.endswith(".b_hn"):
            v[...] = 0.0
    sd = torch_state_dict(a, bias=False)
    assert not [k for k in sd if "bias" in k] and len(sd) == 1 + 2 * 2 + 1              # weights only
    b = _model(cell="lstm", num_layers=1, rng=3)
    assert np.any(b.params["cells.0.b"] != 0)                                   # forget bias 1 at init
    load_torch_state_dict(b, sd)
    for k, v in b.params.items():
        np.testing.assert_array_equal(v, a.params[k], err_msg=k)
    x = rng.standard_normal((2, 3, 3))
    y, _ = b.fprop(x)
    b.zero_grad()
    b.bprop(np.ones_like(y))
    assert np.any(b.grads["cells.0.b"] != 0) and np.any(b.grads["read_out.b"] != 0)
    npnet.optim.SGD(b.params, lr=0.1).step(b.grads)
    assert np.any(b.params["cells.0.b"] != 0)                                   # the bias moved
    with pytest.raises(ValueError, match=r"read_in.bias is not zero.*bias=False"):
        torch_state_dict(b, bias=False)
    with pytest.raises(ValueError, match="no key 'rnn.bias_hh_l0_reverse'"):      # some cells' biases missing
        load_torch_state_dict(b, {k: v for k, v in torch_state_dict(a).items() if k != "rnn.bias_hh_l0_reverse"})


@pytest.mark.parametrize("kind", KINDS)
def test_bias_false_lone_cell(kind):
    cell = make_cell(kind, 3, 4)
    sd = {k: v for k, v in torch_like_dict(kind, 3, 4).items() if not k.startswith("bias")}
    load_torch_state_dict(cell, sd)
    np.testing.assert_array_equal(cell.params["b"], 0.0)
    if kind == "gru":
        np.testing.assert_array_equal(cell.params["b_hn"], 0.0)
    assert list(torch_state_dict(cell, bias=False)) == ["weight_ih_l0", "weight_hh_l0"]


def test_layer_read_in_without_bias():
    from npnet.model import SequenceModel
    m = SequenceModel(4, 3, cell="rnn", read_in=npnet.LinearLayer(2, 4, bias=False, rng=0), output_size=1, rng=0)
    sd = torch_state_dict(m)
    assert "read_in.bias" not in sd and sd["read_in.weight"].shape == (4, 2)
    assert interop.torch_module_spec(m)["read_in"]["bias"] is False
    with pytest.raises(ValueError, match="read_in.bias cannot be loaded.*has no bias"):
        load_torch_state_dict(m, sd | {"read_in.bias": np.zeros(4)})


def test_whole_model_float32_keeps_dtype():
    a, b = _model(rng=1), _model(rng=2, dtype=np.float32)
    load_torch_state_dict(b, torch_state_dict(a))
    assert all(v.dtype == np.float32 for v in b.params.values())
    assert all(v.dtype == np.float32 for v in torch_state_dict(b).values())
    np.testing.assert_allclose(b.params["read_in.W"], a.params["read_in.W"], rtol=1e-7)
