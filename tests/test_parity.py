"""Parity with PyTorch: npnet cells reproduce torch's forward values and every gradient to 1e-9.

The reference numbers were produced once by tools/make_torch_fixtures.py (nn.RNN tanh/relu,
nn.LSTM, nn.GRU in float64, with and without variable lengths, a two-layer
bidirectional nn.LSTM with variable lengths for SequenceModel, and whole SequenceModels
against their torch twin of docs/interop.md, to 1e-12) and stored in
tests/fixtures/*.npz, so these tests need no torch (one live test runs where torch is installed). Weights enter through
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
    assert sorted(load_torch_state_dict(model, sd, cells_only=True)) == sorted(sd)       # nn.LSTM's own dict
    state0 = [(fx["h0"][s], fx["c0"][s]) for s in range(S)]
    out, states = model.fprop(fx["x"], state0, fx["mask"])
    model.zero_grad()
    dx, dstate0 = model.bprop(fx["dout"], [(fx["dh"][s], fx["dc"][s]) for s in range(S)])
    diffs = {"out": out - fx["out"], "dx": dx - fx["dx"],
             "hT": np.stack([s[0] for s in states]) - fx["hT"], "cT": np.stack([s[1] for s in states]) - fx["cT"],
             "dh0": np.stack([s[0] for s in dstate0]) - fx["dh0"],
             "dc0": np.stack([s[1] for s in dstate0]) - fx["dc0"]}
    grads = torch_state_dict(model, grads=True)                   # the whole model: the LSTM under "rnn."
    want = {"rnn." + k[5:]: v for k, v in fx.items() if k.startswith("grad.")}
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


# -- whole SequenceModel <-> its torch twin (docs/interop.md), fixtures torch_model_<case>.npz ------------
MODEL_CASES = ["lstm_stack_seq", "lstm_onehot_last", "gru_bi_final", "gru_bi_last_step", "rnn_embedding_last",
               "irnn_bi_seq", "lstm_nobias_final"]
MODEL_TOL = 1e-12


def load_model_case(name):
    import json
    fx = load_case(f"model_{name}")
    for what in ("sd", "np", "export"):                  # flat values + [key, shape] layout -> dict
        flat, d, i = fx.pop(what), {}, 0
        for key, shape in json.loads(str(fx.pop(f"{what}_layout"))):
            n = int(np.prod(shape))
            d[key] = flat[i:i + n].reshape(shape)
            i += n
        assert i == flat.size
        fx[what] = d
    fx["config"], fx["spec"] = json.loads(str(fx["config"])), json.loads(str(fx["spec"]))
    fx["mask"] = (np.arange(fx["x"].shape[1])[None, :] < fx["lengths"][:, None]) if fx["masked"] else None
    return fx


def model_parity(name):
    """{quantity: max abs difference}: npnet loaded from the twin's weights vs the twin's output, and the
    twin loaded from torch_state_dict(npnet) vs npnet; the exported dict must be the stored one exactly."""
    from npnet.interop import torch_module_spec
    fx = load_model_case(name)
    model = SequenceModel.from_config(fx["config"]).eval()
    assert torch_module_spec(model) == fx["spec"]
    assert load_torch_state_dict(model, fx["sd"]) == list(fx["sd"])        # every key of the twin, in order
    out, _ = model.fprop(fx["x"], None, fx["mask"])
    diffs = {"load.out": np.max(np.abs(out - fx["out"]))}
    model = SequenceModel.from_config(fx["config"]).eval()
    for k, v in fx["np"].items():
        np.copyto(model.params[k], v)
    export = torch_state_dict(model, bias=bool(fx["bias"]))
    assert list(export) == list(fx["export"])                               # what the twin loaded, strictly
    for k, v in export.items():
        np.testing.assert_array_equal(v, fx["export"][k], err_msg=k)
    out, _ = model.fprop(fx["x"], None, fx["mask"])
    diffs["export.out"] = np.max(np.abs(out - fx["out_export"]))
    again = SequenceModel.from_config(fx["config"])
    load_torch_state_dict(again, export)                                    # and back: the same parameters
    for k, v in model.params.items():
        np.testing.assert_array_equal(again.params[k], v, err_msg=k)
    return {k: float(v) for k, v in diffs.items()}


@pytest.mark.parametrize("name", MODEL_CASES)
def test_whole_model_matches_torch_twin(name):
    diffs = model_parity(name)
    bad = {k: v for k, v in diffs.items() if not v < MODEL_TOL}
    assert not bad, f"{name}: differences above {MODEL_TOL}: {bad}"


def test_model_fixtures_cover_the_cases():
    """Read-ins, cells, directions, read-outs, masks and bias=False are all there, none degenerate."""
    seen = set()
    for name in MODEL_CASES:
        fx = load_model_case(name)
        cfg, spec = fx["config"], fx["spec"]
        assert str(fx["torch_version"]).startswith("2.13.0") and fx["x"].dtype.kind in "fi"
        assert np.max(np.abs(fx["out"])) > 1e-2 and np.max(np.abs(fx["out_export"])) > 1e-2
        seen |= {spec["rnn"]["type"], (spec["read_in"] or {}).get("type"), cfg["return_sequences"],
                 cfg.get("reverse_read_out"), bool(fx["masked"]), bool(fx["bias"]), cfg["bidirectional"],
                 "stacked" if cfg["num_layers"] > 1 else "single"}
        if fx["masked"]:
            assert fx["lengths"].min() < fx["x"].shape[1]
        has_bias = [k for k in fx["sd"] if "bias" in k]
        assert bool(has_bias) == bool(fx["bias"])
        if fx["x"].dtype.kind == "f" and np.all(np.isin(fx["x"], (0.0, 1.0))):
            seen.add("onehot")
    assert seen >= {"LSTM", "GRU", "RNN", "Linear", "Embedding", None, True, False, "final", "last_step",
                    "stacked", "single", "onehot"}


def test_model_parity_detects_a_wrong_weight():
    fx = load_model_case("gru_bi_final")
    model = SequenceModel.from_config(fx["config"]).eval()
    sd = dict(fx["sd"])
    sd["rnn.bias_hh_l0_reverse"] = sd["rnn.bias_hh_l0_reverse"] + np.eye(1, sd["rnn.bias_hh_l0_reverse"].size)[0] * 1e-9
    load_torch_state_dict(model, sd)
    out, _ = model.fprop(fx["x"], None, fx["mask"])
    assert np.max(np.abs(out - fx["out"])) > MODEL_TOL


def test_whole_model_live_against_torch():
    """Where torch is installed: rebuild every case with the twin of docs/interop.md (both directions to
    1e-12, asserted inside model_case) and check that the stored fixtures are what torch gives today."""
    pytest.importorskip("torch")
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "tools" / "make_torch_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_torch_fixtures", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert set(tool.MODEL_CASES) == set(MODEL_CASES)
    for name in MODEL_CASES:
        fresh = tool.model_case(name)
        stored = load_case(f"model_{name}")
        for k in ("out", "out_export", "sd", "np", "export"):
            np.testing.assert_allclose(fresh[k], stored[k], rtol=0, atol=MODEL_TOL, err_msg=f"{name} {k}")


def test_interop_doc_torch_blocks_run():
    """Where torch is installed: the ```py blocks of docs/interop.md (the twin, the round trip) run in order."""
    pytest.importorskip("torch")
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```py\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2 and "class TorchSequenceModel" in blocks[0]
    ns = {"__name__": "interop_doc"}
    for code in blocks:
        exec(compile(code, "docs/interop.md", "exec"), ns)


if __name__ == "__main__":  # PYTHONPATH=. python tests/test_parity.py prints the measured differences
    for case in CASES:
        d = parity(case)
        print(f"{case:16s} max {max(d.values()):.2e}  " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()))
    d = stack_parity()
    print(f"{'lstm_stack_mask':16s} max {max(d.values()):.2e}  " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()))
    for case in MODEL_CASES:
        d = model_parity(case)
        print(f"model_{case:20s} " + "  ".join(f"{k}={v:.1e}" for k, v in d.items()))
