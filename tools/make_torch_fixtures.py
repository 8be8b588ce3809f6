"""Build the PyTorch reference fixtures tests/fixtures/torch_<cell>[_mask].npz used by tests/test_parity.py.

Run once by hand (torch is a tool-time dependency only; npnet and its tests never import it):

    pip install torch          # any CPU build; the fixtures were made with 2.13.0
    python tools/make_torch_fixtures.py [--out tests/fixtures]

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

Keys of each .npz (all float64 unless noted):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    cases = [(n, m) for n in CELLS for m in (False, True)] + [(n, True) for n in STACKS]
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
    print(f"total {total} bytes")

if __name__ == "__main__":
    main()
