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


def build(name):
    """The torch module with seeded NumPy weights, and the NumPy arrays of one case."""
    cls, kwargs, G, seed = CELLS[name]
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(H)
    sd = {"weight_ih_l0": rng.uniform(-k, k, (G * H, D)), "weight_hh_l0": rng.uniform(-k, k, (G * H, H)),
          "bias_ih_l0": rng.uniform(-k, k, G * H), "bias_hh_l0": rng.uniform(-k, k, G * H)}
    mod = cls(D, H, batch_first=True, dtype=torch.float64, **kwargs)
    mod.load_state_dict({n: torch.tensor(v) for n, v in sd.items()})
    data = {"x": rng.standard_normal((B, T, D)), "h0": rng.standard_normal((B, H)) * 0.5,
            "dout": rng.standard_normal((B, T, H)), "dh": rng.standard_normal((B, H))}
    if name == "lstm":
        data["c0"] = rng.standard_normal((B, H)) * 0.5
        data["dc"] = rng.standard_normal((B, H))
    return mod, sd, data


def run(mod, data, lengths):
    """Forward + backward of L; each sequence alone on its own length. Returns the results as NumPy."""
    lstm = "c0" in data
    x = torch.tensor(data["x"], requires_grad=True)
    h0 = torch.tensor(data["h0"], requires_grad=True)
    c0 = torch.tensor(data["c0"], requires_grad=True) if lstm else None
    dout, dh = torch.tensor(data["dout"]), torch.tensor(data["dh"])
    dc = torch.tensor(data["dc"]) if lstm else None
    mod.zero_grad()
    loss = 0.0
    outs, hTs, cTs = [], [], []
    for b, L in enumerate(lengths):
        st = (h0[b:b + 1][None], c0[b:b + 1][None]) if lstm else h0[b:b + 1][None]
        out_b, st_b = mod(x[b:b + 1, :L], st)                       # (1, L, H)
        h_b = st_b[0][0, 0] if lstm else st_b[0, 0]                 # (H,)
        loss = loss + (out_b[0] * dout[b, :L]).sum() + (h_b * dh[b]).sum()
        outs.append(torch.cat([out_b[0], out_b.new_zeros(T - L, H)]).detach())
        hTs.append(h_b.detach())
        if lstm:
            c_b = st_b[1][0, 0]
            loss = loss + (c_b * dc[b]).sum()
            cTs.append(c_b.detach())
    loss.backward()
    res = {"out": torch.stack(outs).numpy(), "hT": torch.stack(hTs).numpy(),
           "dx": x.grad.numpy(), "dh0": h0.grad.numpy()}
    if lstm:
        res |= {"cT": torch.stack(cTs).numpy(), "dc0": c0.grad.numpy()}
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
    out_p, st = mod(packed, (h0[None], c0[None]) if lstm else h0[None])
    out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    h = st[0][0] if lstm else st[0]
    loss = (out * torch.tensor(data["dout"])).sum() + (h * torch.tensor(data["dh"])).sum()
    if lstm:
        loss = loss + (st[1][0] * torch.tensor(data["dc"])).sum()
    loss.backward()
    res = {"out": out.detach().numpy(), "hT": h.detach().numpy(), "dx": x.grad.numpy(), "dh0": h0.grad.numpy()}
    res |= {f"grad.{n}": p.grad.numpy().copy() for n, p in mod.named_parameters()}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    for name in CELLS:
        for masked in (False, True):
            mod, sd, data = build(name)
            lengths = LENGTHS if masked else (T,) * B
            res = run(mod, data, lengths)
            if masked:
                chk = run_packed(mod, data, lengths)
                for k, v in chk.items():
                    assert np.allclose(res[k], v, rtol=0, atol=1e-12), (name, k)
            mask = np.arange(T)[None, :] < np.array(lengths)[:, None]   # (B, T) bool
            arrays = {"kind": np.array(name.split("_")[0]),
                      "nonlinearity": np.array(CELLS[name][1].get("nonlinearity", "")),
                      "torch_version": np.array(torch.__version__), "mask": mask}
            arrays |= {f"sd.{n}": v for n, v in sd.items()} | data | res
            path = os.path.join(args.out, f"torch_{name}{'_mask' if masked else ''}.npz")
            np.savez_compressed(path, **arrays)
            print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
