"""Parity with PyTorch: npnet cells reproduce torch's forward values and every gradient to 1e-9.

The reference numbers were produced once by tools/make_torch_fixtures.py (nn.RNN tanh/relu,
nn.LSTM, nn.GRU in float64, with and without variable lengths, and a two-layer
bidirectional nn.LSTM with variable lengths for SequenceModel) and stored in
tests/fixtures/*.npz, so this test needs no torch. Weights enter through
npnet.interop.load_torch_state_dict and gradients leave through torch_state_dict.
"""
from pathlib import Path

import numpy as np
import pytest

import npnet
from npnet.interop import load_torch_state_dict, torch_state_dict
from npnet.model import SequenceModel

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = [f"{c}{m}" for c in ("rnn_tanh", "rnn_relu", "lstm", "gru") for m in ("", "_mask")]
TOL = 1e-9


def load_case(name):
    with np.load(FIXTURES / f"torch_{name}.npz") as f:
        return {k: f[k] for k in f.files}


def make_cell(fx):
    kind = str(fx["kind"])
    D, H = fx["x"].shape[2], fx["h0"].shape[1]
    if kind == "rnn":
        cell = npnet.BasicRNNCell(D, H, nonlinearity=str(fx["nonlinearity"]), rng=0)
    elif kind == "lstm":
        from npnet.cells.lstm import LSTMCell
        cell = LSTMCell(D, H, rng=0)
    else:
        from npnet.cells.gru import GRUCell
        cell = GRUCell(D, H, rng=0)
    sd = {k[3:]: v for k, v in fx.items() if k.startswith("sd.")}
    load_torch_state_dict(cell, sd)
    return cell


def parity(name):
    """Run npnet on one fixture; return {quantity: max abs difference to torch}."""
    fx = load_case(name)
    cell = make_cell(fx)
    lstm = "c0" in fx
    mask = fx["mask"] if name.endswith("_mask") else None
    state0 = (fx["h0"], fx["c0"]) if lstm else fx["h0"]
    out, state = cell.fprop(fx["x"], state0, mask)
    dstate = (fx["dh"], fx["dc"]) if lstm else fx["dh"]
    cell.zero_grad()
    dx, dstate0 = cell.bprop(fx["dout"], dstate)
    diffs = {"out": out - fx["out"], "dx": dx - fx["dx"]}
    if lstm:
        diffs |= {"hT": state[0] - fx["hT"], "cT": state[1] - fx["cT"],
                  "dh0": dstate0[0] - fx["dh0"], "dc0": dstate0[1] - fx["dc0"]}
    else:
        diffs |= {"hT": state - fx["hT"], "dh0": dstate0 - fx["dh0"]}
    grads = torch_state_dict(cell, grads=True)
    want = {k[5:]: v for k, v in fx.items() if k.startswith("grad.")}
    assert set(grads) == set(want)
    diffs |= {f"grad.{k}": grads[k] - want[k] for k in want}
    return {k: float(np.max(np.abs(v))) for k, v in diffs.items()}


def stack_parity():
    """Two-layer bidirectional nn.LSTM with variable lengths vs SequenceModel (+ interop dispatch)."""
    fx = load_case("lstm_stack_mask")
    S, B, H = fx["h0"].shape
    model = SequenceModel(fx["x"].shape[2], H, num_layers=2, cell="lstm", bidirectional=True, rng=0)
    sd = {k[3:]: v for k, v in fx.items() if k.startswith("sd.")}
    assert sorted(load_torch_state_dict(model, sd)) == sorted(sd)
    state0 = [(fx["h0"][s], fx["c0"][s]) for s in range(S)]
    out, states = model.fprop(fx["x"], state0, fx["mask"])
    model.zero_grad()
    dx, dstate0 = model.bprop(fx["dout"], [(fx["dh"][s], fx["dc"][s]) for s in range(S)])
    diffs = {"out": out - fx["out"], "dx": dx - fx["dx"],
             "hT": np.stack([s[0] for s in states]) - fx["hT"], "cT": np.stack([s[1] for s in states]) - fx["cT"],
             "dh0": np.stack([s[0] for s in dstate0]) - fx["dh0"],
             "dc0": np.stack([s[1] for s in dstate0]) - fx["dc0"]}
    grads = torch_state_dict(model, grads=True)
    want = {k[5:]: v for k, v in fx.items() if k.startswith("grad.")}
    assert set(grads) == set(want)
    diffs |= {f"grad.{k}": grads[k] - want[k] for k in want}
    return {k: float(np.max(np.abs(v))) for k, v in diffs.items()}


def test_sequence_model_matches_torch_bidirectional_stack():
    diffs = stack_parity()
    bad = {k: v for k, v in diffs.items() if not v < TOL}
    assert not bad, f"lstm_stack_mask: differences above {TOL}: {bad}"


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name):
    diffs = parity(name)
    bad = {k: v for k, v in diffs.items() if not v < TOL}
    assert not bad, f"{name}: differences above {TOL}: {bad}"


def test_fixtures_are_meaningful():
    """Guard against degenerate references: non-trivial values, real padding, ReLU both sides of 0."""
    for name in CASES + ["lstm_stack_mask"]:
        fx = load_case(name)
        assert fx["x"].dtype == np.float64
        for k in ("out", "dx", "dh0", "grad.weight_hh_l0", "grad.bias_hh_l0"):
            assert np.max(np.abs(fx[k])) > 1e-2, (name, k)
        if name.endswith("_mask"):
            m = fx["mask"]
            assert m.dtype == bool and not m.all() and m[:, 0].all()
            assert np.all(fx["out"][~m] == 0) and np.all(fx["dx"][~m] == 0)
    relu = load_case("rnn_relu")["out"]
    assert 0.1 < np.mean(relu > 0) < 0.9


def test_parity_detects_a_wrong_weight():
    """The comparison can fail: perturbing one loaded weight by 1e-6 breaks parity."""
    fx = load_case("gru_mask")
    cell = make_cell(fx)
    cell.params["b_hn"][0] += 1e-6
    out, _ = cell.fprop(fx["x"], fx["h0"], fx["mask"])
    assert np.max(np.abs(out - fx["out"])) > TOL


if __name__ == "__main__":  # PYTHONPATH=. python tests/test_parity.py prints the measured differences
    for case in CASES:
        d = parity(case)
        print(f"{case:16s} max {max(d.values()):.2e}  " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()))
    d = stack_parity()
    print(f"{'lstm_stack_mask':16s} max {max(d.values()):.2e}  " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()))
