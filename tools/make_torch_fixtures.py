"""Build the PyTorch reference fixtures tests/fixtures/torch_<cell>[_mask].npz used by tests/test_parity.py.

Run once by hand (torch is a tool-time dependency only; npnet and its tests never import it):

    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch==2.13.0 numpy
    PYTHONPATH=. /tmp/venv-torch/bin/python tools/make_torch_fixtures.py [--out tests/fixtures]
    (the fixtures were made with torch 2.13.0, float64)

Everything random is drawn from NumPy generators with fixed seeds (weights too,
from torch's own init distribution U(-1/sqrt(H), 1/sqrt(H))), so the inputs do
not depend on torch's RNG and the files are reproducible to rounding.

For each of nn.RNN(tanh), nn.RNN(relu), nn.LSTM and nn.GRU (one layer,
batch_first, float64, B=3, T=5, D=4, H=6) the script computes

    L = sum(out * dout) + sum(h_T * dh) [+ sum(c_T * dc)]

with fixed random upstream gradients dout (B, T, H), dh, dc (B, H), and runs
backward. The masked variant uses lengths (5, 1, 3): each sequence runs alone
on its own length (outputs padded with zeros, its last real state as h_T), and
the result is cross-checked against pack_padded_sequence. npnet's mask (B, T)
marks steps t < length.

torch_lstm_stack_mask.npz does the same for a two-layer bidirectional nn.LSTM
(D=2, H=3, masked), the reference for npnet.SequenceModel; its states are
stacked like torch's h_n: (S, B, H) with S = 4 in the order l0, l0_reverse, l1,
l1_reverse (= SequenceModel.recurrent_cells()), its output is (B, T, 2H), and the
state dict holds the *_l0, *_l0_reverse, *_l1, *_l1_reverse weights.

torch_model_<case>.npz (see MODEL_CASES and model_case below) are the whole-model round trips of
npnet.SequenceModel against its PyTorch twin, the TorchSequenceModel class of docs/interop.md
(executed from the doc's ```py block, so the doc's definition is the one tested). This part
imports npnet: run with PYTHONPATH pointing at the checkout.

Keys of each torch_<cell>[_mask].npz (all float64 unless noted):
    kind (str), nonlinearity (str), torch_version (str)
    sd.<name>        state dict: weight_ih_l0 (G*H, D), weight_hh_l0 (G*H, H), bias_ih_l0, bias_hh_l0 (G*H,)
    x (B, T, D), h0 (B, H) [, c0 (B, H)], mask (B, T) bool (all True without a mask)
    dout (B, T, H), dh (B, H) [, dc (B, H)]                 upstream gradients
    out (B, T, H), hT (B, H) [, cT (B, H)]                  forward results
    grad.<name>      parameter gradients under torch's names
    dx (B, T, D), dh0 (B, H) [, dc0 (B, H)]                 input and initial-state gradients
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

B, T, D, H = 3, 5, 4, 6
LENGTHS = (5, 1, 3)
CELLS = {  # name -> (module class, kwargs, gates, seed)
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}, 1, 10),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}, 1, 20),
    "lstm": (torch.nn.LSTM, {}, 4, 30),
    "gru": (torch.nn.GRU, {}, 3, 40),
}
# A two-layer bidirectional LSTM for SequenceModel (masked only, smaller D and H: all files < 100 KB).
STACKS = {  # name -> (module class, gates, seed)
    "lstm_stack": (torch.nn.LSTM, 4, 50),
}
STACK_D, STACK_H, STACK_LAYERS = 2, 3, 2


def build(name):
    """The torch module with seeded NumPy weights, and the NumPy arrays of one case.

    Initial states and their upstream gradients are (S, B, H) with S = layers * directions.
    """
    if name in STACKS:
        cls, G, seed = STACKS[name]
        d, h, kwargs = STACK_D, STACK_H, {"num_layers": STACK_LAYERS, "bidirectional": True}
    else:
        cls, kwargs, G, seed = CELLS[name]
        d, h = D, H
    mod = cls(d, h, batch_first=True, dtype=torch.float64, **kwargs)
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(h)
    sd = {n: rng.uniform(-k, k, tuple(v.shape)) for n, v in mod.state_dict().items()}
    mod.load_state_dict({n: torch.tensor(v) for n, v in sd.items()})
    S = mod.num_layers * (2 if mod.bidirectional else 1)
    F = h * (2 if mod.bidirectional else 1)
    data = {"x": rng.standard_normal((B, T, d)), "h0": rng.standard_normal((S, B, h)) * 0.5,
            "dout": rng.standard_normal((B, T, F)), "dh": rng.standard_normal((S, B, h))}
    if cls is torch.nn.LSTM:
        data["c0"] = rng.standard_normal((S, B, h)) * 0.5
        data["dc"] = rng.standard_normal((S, B, h))
    return mod, sd, data


def run(mod, data, lengths):
    """Forward + backward of L; each sequence alone on its own length. Returns the results as NumPy."""
    lstm = "c0" in data
    x = torch.tensor(data["x"], requires_grad=True)
    h0 = torch.tensor(data["h0"], requires_grad=True)                  # (S, B, H)
    c0 = torch.tensor(data["c0"], requires_grad=True) if lstm else None
    dout, dh = torch.tensor(data["dout"]), torch.tensor(data["dh"])
    dc = torch.tensor(data["dc"]) if lstm else None
    F = dout.shape[2]
    mod.zero_grad()
    loss = 0.0
    outs, hTs, cTs = [], [], []
    for b, L in enumerate(lengths):
        st = (h0[:, b:b + 1], c0[:, b:b + 1]) if lstm else h0[:, b:b + 1]
        out_b, st_b = mod(x[b:b + 1, :L], st)                       # (1, L, F)
        h_b = st_b[0][:, 0] if lstm else st_b[:, 0]                 # (S, H)
        loss = loss + (out_b[0] * dout[b, :L]).sum() + (h_b * dh[:, b]).sum()
        outs.append(torch.cat([out_b[0], out_b.new_zeros(T - L, F)]).detach())
        hTs.append(h_b.detach())
        if lstm:
            c_b = st_b[1][:, 0]
            loss = loss + (c_b * dc[:, b]).sum()
            cTs.append(c_b.detach())
    loss.backward()
    res = {"out": torch.stack(outs).numpy(), "hT": torch.stack(hTs, dim=1).numpy(),
           "dx": x.grad.numpy(), "dh0": h0.grad.numpy()}
    if lstm:
        res |= {"cT": torch.stack(cTs, dim=1).numpy(), "dc0": c0.grad.numpy()}
    res |= {f"grad.{n}": p.grad.numpy().copy() for n, p in mod.named_parameters()}
    return res


def run_packed(mod, data, lengths):
    """The same computation through pack_padded_sequence: an independent check of run()."""
    lstm = "c0" in data
    x = torch.tensor(data["x"], requires_grad=True)
    h0 = torch.tensor(data["h0"], requires_grad=True)
    c0 = torch.tensor(data["c0"], requires_grad=True) if lstm else None
    mod.zero_grad()
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out_p, st = mod(packed, (h0, c0) if lstm else h0)
    out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    h = st[0] if lstm else st
    loss = (out * torch.tensor(data["dout"])).sum() + (h * torch.tensor(data["dh"])).sum()
    res = {"out": out.detach().numpy(), "hT": h.detach().numpy()}
    if lstm:
        loss = loss + (st[1] * torch.tensor(data["dc"])).sum()
        res["cT"] = st[1].detach().numpy()
    loss.backward()
    res |= {"dx": x.grad.numpy(), "dh0": h0.grad.numpy()}
    if lstm:
        res["dc0"] = c0.grad.numpy()
    res |= {f"grad.{n}": p.grad.numpy().copy() for n, p in mod.named_parameters()}
    return res


# -- whole SequenceModel <-> TorchSequenceModel (docs/interop.md) ---------------------------------
MB, MT = 3, 4                                  # batch and time of the model cases
MODEL_CASES = {  # name -> (SequenceModel kwargs, lengths or None, input "float" / "onehot" / "ids", bias, seed)
    "lstm_stack_seq": (dict(input_size=3, hidden_size=2, num_layers=2, cell="lstm", read_in=3, output_size=2,
                            bidirectional=True, dropout=0.25), (4, 1, 3), "float", True, 60),
    "lstm_onehot_last": (dict(input_size=5, hidden_size=3, cell="lstm", read_in=3, output_size=2,
                              return_sequences=False), None, "onehot", True, 61),
    "gru_bi_final": (dict(input_size=2, hidden_size=3, cell="gru", read_in=3, output_size=2, bidirectional=True,
                          return_sequences=False), (4, 2, 1), "float", True, 62),
    "gru_bi_last_step": (dict(input_size=2, hidden_size=2, num_layers=2, cell="gru", output_size=2,
                              bidirectional=True, return_sequences=False, reverse_read_out="last_step"),
                         (3, 4, 2), "float", True, 63),
    "rnn_embedding_last": (dict(input_size=3, hidden_size=3, num_layers=2, cell="rnn", output_size=2,
                                return_sequences=False, embedding=(6, 3)), (2, 4, 3), "ids", True, 64),
    "irnn_bi_seq": (dict(input_size=2, hidden_size=3, cell="irnn", bidirectional=True, output_size=2),
                    None, "float", True, 65),
    "lstm_nobias_final": (dict(input_size=2, hidden_size=3, cell="lstm", read_in=3, output_size=2,
                               bidirectional=True, return_sequences=False), (4, 3, 1), "float", False, 66),
}


def twin_class():
    """TorchSequenceModel, executed from the ```py block of docs/interop.md that defines it."""
    import re
    doc = os.path.join(os.path.dirname(__file__), "..", "docs", "interop.md")
    with open(doc, encoding="utf-8") as f:
        blocks = re.findall(r"```py\n(.*?)```", f.read(), flags=re.S)
    code = [b for b in blocks if "class TorchSequenceModel" in b]
    assert len(code) == 1, "docs/interop.md must define TorchSequenceModel in exactly one ```py block"
    ns = {"__name__": "interop_doc"}
    exec(compile(code[0], "docs/interop.md", "exec"), ns)
    return ns["TorchSequenceModel"]


def build_model(name):
    """The npnet SequenceModel of a case (fixed seed) -> (model, kwargs)."""
    import npnet
    kw, _, _, _, seed = MODEL_CASES[name]
    kw = dict(kw)
    if "embedding" in kw:
        kw["read_in"] = npnet.Embedding(*kw.pop("embedding"), rng=seed)
    return npnet.SequenceModel(**kw, rng=seed), kw


def model_inputs(name):
    """x (float (B, T, D) or int ids (B, T)), lengths or None, mask or None; seeded NumPy."""
    kw, lengths, kind, _, seed = MODEL_CASES[name]
    rng = np.random.default_rng(seed + 1000)
    D = kw["input_size"]
    if kind == "float":
        x = rng.standard_normal((MB, MT, D))
    else:
        V = kw["embedding"][0] if kind == "ids" else D
        ids = rng.integers(0, V, (MB, MT))
        x = ids if kind == "ids" else np.eye(D)[ids]
    mask = None if lengths is None else np.arange(MT)[None, :] < np.array(lengths)[:, None]
    return x, lengths, mask


def twin_forward(twin, x, lengths):
    xt = torch.tensor(x) if x.dtype.kind == "f" else torch.tensor(x, dtype=torch.int64)
    with torch.no_grad():
        return twin(xt, None if lengths is None else list(lengths)).numpy()


def model_case(name):
    """Both directions of one case, as the arrays of torch_model_<name>.npz.

    load: the twin with random weights (seeded NumPy, every parameter, biases included; none with
          bias=False) -> sd, and its output -> out.
    export: the npnet model with random parameters (biases zero with bias=False) -> np;
          torch_state_dict(model, bias=...) -> export, loaded strictly into a fresh twin,
          whose output -> out_export.
    Each dict is stored flat: <what> (N,) float64, the values in order, and <what>_layout, the
    JSON list of [key, shape] (so a file holds a dozen arrays, a few KB).
    Also: config (SequenceModel.get_config() JSON), spec (torch_module_spec JSON), bias, x,
    lengths (B,) (T each without a mask), masked, torch_version.
    """
    import json
    import npnet
    from npnet.interop import torch_module_spec, torch_state_dict
    model, _ = build_model(name)
    bias, seed = MODEL_CASES[name][3], MODEL_CASES[name][4]
    spec = torch_module_spec(model)
    Twin = twin_class()
    x, lengths, _ = model_inputs(name)
    rng = np.random.default_rng(seed)
    twin = Twin(spec, bias=bias).double().eval()
    sd = {k: rng.uniform(-0.7, 0.7, tuple(v.shape)) for k, v in twin.state_dict().items()}
    twin.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    out = twin_forward(twin, x, lengths)
    params = {}
    for k, v in model.params.items():
        is_bias = k.rsplit(".", 1)[-1] in ("b", "b_hn")
        params[k] = np.zeros(v.shape) if (is_bias and not bias) else rng.uniform(-0.7, 0.7, v.shape)
        np.copyto(model.params[k], params[k])
    export = torch_state_dict(model, bias=bias)
    twin2 = Twin(spec, bias=bias).double().eval()
    twin2.load_state_dict({k: torch.from_numpy(v) for k, v in export.items()}, strict=True)
    out_export = twin_forward(twin2, x, lengths)
    model.eval()
    mask = None if lengths is None else np.arange(MT)[None, :] < np.array(lengths)[:, None]
    mine = model.fprop(x, None, mask)[0]
    assert np.allclose(mine, out_export, rtol=0, atol=1e-12), (name, np.max(np.abs(mine - out_export)))
    loaded, _ = build_model(name)
    npnet.interop.load_torch_state_dict(loaded, sd)
    mine = loaded.eval().fprop(x, None, mask)[0]
    assert np.allclose(mine, out, rtol=0, atol=1e-12), (name, np.max(np.abs(mine - out)))
    arrays = {"config": np.array(json.dumps(model.get_config())), "spec": np.array(json.dumps(spec)),
              "bias": np.array(bias), "torch_version": np.array(torch.__version__), "x": x,
              "lengths": np.array(lengths if lengths is not None else [MT] * MB), "masked": np.array(lengths is not None),
              "out": out, "out_export": out_export}
    for what, d in (("sd", sd), ("np", params), ("export", export)):   # one flat array per dict: small files
        arrays[what] = np.concatenate([np.ravel(v) for v in d.values()])
        arrays[f"{what}_layout"] = np.array(json.dumps([[k, list(np.shape(v))] for k, v in d.items()]))
    return arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")))
    ap.add_argument("--only", choices=("all", "cells", "models"), default="all",
                    help="which fixtures to write: the cell files, the whole-model files, or both (default all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    cases = [(n, m) for n in CELLS for m in (False, True)] + [(n, True) for n in STACKS]
    cases = cases if args.only in ("all", "cells") else []
    total = 0
    for name, masked in cases:
        mod, sd, data = build(name)
        lengths = LENGTHS if masked else (T,) * B
        res = run(mod, data, lengths)
        if masked:
            chk = run_packed(mod, data, lengths)
            assert set(chk) == set(res)
            for k, v in chk.items():
                assert np.allclose(res[k], v, rtol=0, atol=1e-12), (name, k)
        if name in CELLS:                      # one layer, one direction: states (B, H)
            for k in ("h0", "c0", "dh", "dc", "hT", "cT", "dh0", "dc0"):
                if k in data:
                    data[k] = data[k][0]
                if k in res:
                    res[k] = res[k][0]
        mask = np.arange(T)[None, :] < np.array(lengths)[:, None]   # (B, T) bool
        arrays = {"kind": np.array(name.split("_")[0]),
                  "nonlinearity": np.array(CELLS.get(name, (0, {}))[1].get("nonlinearity", "")),
                  "torch_version": np.array(torch.__version__), "mask": mask}
        arrays |= {f"sd.{n}": v for n, v in sd.items()} | data | res
        path = os.path.join(args.out, f"torch_{name}{'_mask' if masked else ''}.npz")
        np.savez_compressed(path, **arrays)
        total += os.path.getsize(path)
        print(f"{path}: {os.path.getsize(path)} bytes")
    for name in MODEL_CASES if args.only in ("all", "models") else []:
        path = os.path.join(args.out, f"torch_model_{name}.npz")
        np.savez_compressed(path, **model_case(name))
        total += os.path.getsize(path)
        print(f"{path}: {os.path.getsize(path)} bytes")
    print(f"total {total} bytes")

if __name__ == "__main__":
    main()
