"""The whole-training-step workloads of bench_train.py: npnet's model and its PyTorch twin.

Each workload is one batch (fixed seed) and two step functions without arguments:
npnet's public ``SequenceRunner.train_step`` (Adam, global-norm clip 5) and a PyTorch twin
doing the same work (same layers and shapes, forward, loss, backward, clip_grad_norm_ 5,
Adam). The twin starts from PyTorch's own initialisation: the benchmark times steps, it
does not compare values. torch is optional and imported only inside the twin builders.

``breakdown`` says where npnet's step goes, by timing the pieces of the step it calls
(the model's read-in / cells / read-out fprop and bprop, the loss, the gradient-norm and
clipping functions of the runner, the optimiser step) through wrappers installed on the
instances (and on the runner module's clip functions) for the measured steps only.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

PIECES = ("read-in", "cells fwd", "cells bwd", "read-out", "loss", "clip", "optimiser", "other")


@dataclass(frozen=True)
class Workload:
    name: str
    shapes: str          # for the table
    B: int
    T: int
    V_in: int            # one-hot width (or vocabulary of the Embedding read-in; input width for "mse")
    read_in: object      # int (a linear read-in), "embedding", or None
    cell: str
    H: int
    layers: int
    V_out: int
    loss: str            # "ce-seq" (per step), "ce-last" (last real step, ragged mask), "mse"


WORKLOADS = {w.name: w for w in (
    Workload("char-lm", "one-hot V=65 -> read-in 64 -> 2-layer LSTM 256 -> 65, B=32, T=100, per-step CE",
             32, 100, 65, 64, "lstm", 256, 2, 65, "ce-seq"),
    Workload("char-lm-emb", "Embedding(65, 64) -> 2-layer LSTM 256 -> 65, B=32, T=100, per-step CE",
             32, 100, 65, "embedding", "lstm", 256, 2, 65, "ce-seq"),
    Workload("names", "one-hot 57 -> read-in 32 -> LSTM 128 -> 18, B=32, T=12, last-step CE, ragged mask",
             32, 12, 57, 32, "lstm", 128, 1, 18, "ce-last"),
    Workload("copy", "one-hot 10 -> LSTM 64 -> 9, B=64, T=20, per-step CE",
             64, 20, 10, None, "lstm", 64, 1, 9, "ce-seq"),
    Workload("gru-reg", "32 -> 2-layer GRU 256 -> 32, B=64, T=50, MSE",
             64, 50, 32, None, "gru", 256, 2, 32, "mse"),
)}


def scaled(w: Workload, factor: int) -> Workload:
    """The workload with B, T and H divided by ``factor`` (at least 1 / 2 steps): for smoke tests."""
    f = max(1, int(factor))
    return Workload(w.name, w.shapes, max(1, w.B // f), max(2, w.T // f), w.V_in, w.read_in, w.cell,
                    max(1, w.H // f), w.layers, w.V_out, w.loss)


def make_batch(w: Workload, dtype: str) -> dict:
    """ids (B, T) ints, x (B, T, V_in) one-hot or normal, y targets, mask (B, T) or None, lengths."""
    rng = np.random.default_rng(1)
    B, T = w.B, w.T
    ids = rng.integers(0, w.V_in, size=(B, T))                                 # (B, T)
    if w.loss == "mse":
        x = rng.standard_normal((B, T, w.V_in)).astype(dtype)                  # (B, T, D)
        y = rng.standard_normal((B, T, w.V_out)).astype(dtype)                 # (B, T, V)
        return {"ids": ids, "x": x, "y": y, "mask": None, "lengths": None}
    x = np.eye(w.V_in, dtype=dtype)[ids]                                      # (B, T, V_in)
    if w.loss == "ce-seq":
        return {"ids": ids, "x": x, "y": rng.integers(0, w.V_out, size=(B, T)), "mask": None, "lengths": None}
    lengths = rng.integers(max(1, T // 3), T + 1, size=B)                     # (B,) ragged
    mask = np.arange(T)[None, :] < lengths[:, None]                           # (B, T) trailing padding
    x = x * mask[:, :, None].astype(dtype)
    return {"ids": ids, "x": x, "y": rng.integers(0, w.V_out, size=B), "mask": mask, "lengths": lengths}


def npnet_runner(w: Workload, dtype: str):
    """(SequenceRunner, step function) for the workload."""
    import npnet
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    read_in, in_size = w.read_in, w.V_in
    if read_in == "embedding":
        read_in, in_size = npnet.Embedding(w.V_in, 64, dtype=dt, rng=rng), 64
    model = npnet.SequenceModel(in_size, w.H, num_layers=w.layers, cell=w.cell, output_size=w.V_out,
                                read_in=read_in, return_sequences=w.loss != "ce-last", dtype=dt, rng=rng)
    loss = npnet.MSELoss(dtype=dt) if w.loss == "mse" else npnet.SoftmaxCrossEntropyLoss(dtype=dt)
    runner = npnet.SequenceRunner(model, loss, npnet.optim.Adam(model.params, lr=1e-3), clip=5.0)
    b = make_batch(w, dtype)
    x = b["ids"] if w.read_in == "embedding" else b["x"]
    y, mask = b["y"], b["mask"]
    return runner, lambda: runner.train_step(x, y, mask)


def torch_step(w: Workload, dtype: str) -> Callable[[], float]:
    """The PyTorch twin's training step for the workload (torch must be importable)."""
    import torch
    nn = torch.nn
    tdt = torch.float64 if dtype == "float64" else torch.float32
    torch.manual_seed(0)
    b = make_batch(w, dtype)
    if w.read_in == "embedding":
        read_in, x, D = nn.Embedding(w.V_in, 64), torch.from_numpy(b["ids"]), 64
    elif w.read_in is not None:
        read_in, x, D = nn.Linear(w.V_in, w.read_in), torch.from_numpy(b["x"]), w.read_in
    else:
        read_in, x, D = nn.Identity(), torch.from_numpy(b["x"]), w.V_in
    rnn = (nn.LSTM if w.cell == "lstm" else nn.GRU)(D, w.H, num_layers=w.layers, batch_first=True)
    head = nn.Linear(w.H, w.V_out)
    mods = nn.ModuleList([read_in, rnn, head]).to(tdt)
    params = list(mods.parameters())
    torch_adam = torch.optim.Adam(params, lr=1e-3)
    y = torch.from_numpy(b["y"])
    last = None if b["lengths"] is None else torch.from_numpy(b["lengths"] - 1)
    rows = torch.arange(w.B)

    def step() -> float:
        h = rnn(read_in(x))[0]                                   # (B, T, H)
        if last is not None:
            h = h[rows, last]                                    # (B, H): each row's last real step
        out = head(h)
        if w.loss == "mse":
            loss = nn.functional.mse_loss(out, y)
        else:
            loss = nn.functional.cross_entropy(out.reshape(-1, w.V_out), y.reshape(-1))
        torch_adam.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        torch_adam.step()
        return loss.item()
    return step


# -- where npnet's step goes ----------------------------------------------------------------
class _Clock:
    def __init__(self, now: Callable[[], float]):
        self.now = now
        self.total = dict.fromkeys(PIECES, 0.0)

    def wrap(self, fn: Callable, piece: str) -> Callable:
        def timed(*args, **kwargs):
            t0 = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[piece] += self.now() - t0
        return timed


@contextlib.contextmanager
def _timed_pieces(runner, clock: _Clock):
    """Install the timing wrappers on the runner's model, loss, optimiser and clip functions."""
    from npnet.training import runner as runner_mod
    model = runner.model
    targets = [(runner.loss, "fprop", "loss"), (runner.loss, "bprop", "loss"),
               (runner.optimizer, "step", "optimiser")]
    for c in list(model.cells) + list(getattr(model, "cells_reverse", [])):
        targets += [(c, "fprop", "cells fwd"), (c, "bprop", "cells bwd")]
    for attr, piece in (("read_in", "read-in"), ("read_out", "read-out")):
        layer = getattr(model, attr, None)
        if layer is not None:
            targets += [(layer, "fprop", piece), (layer, "bprop", piece)]
    for name in ("global_norm", "clip_grad_norm", "clip_grad_value", "check_finite"):
        targets.append((runner_mod, name, "clip"))
    saved = [(obj, name, obj.__dict__.get(name)) for obj, name, _ in targets]
    try:
        for obj, name, piece in targets:
            setattr(obj, name, clock.wrap(getattr(obj, name), piece))
        yield
    finally:
        for obj, name, old in saved:
            if old is None:
                delattr(obj, name)               # the class's method shows through again
            else:
                setattr(obj, name, old)


def breakdown(runner, step: Callable[[], float], steps: int,
              now: Callable[[], float] = time.perf_counter) -> dict:
    """Seconds per step of each piece of ``PIECES`` and the step ("total"): the median over
    ``steps`` steps of each piece (robust to a burst of load in one step); "other" is the rest
    of a step (the runner's checks, reshapes, the model's glue); "total" the sum of the medians."""
    clock = _Clock(now)
    per_step = []
    with _timed_pieces(runner, clock):
        for _ in range(steps):
            clock.total = dict.fromkeys(PIECES, 0.0)
            t0 = now()
            step()
            took = now() - t0
            clock.total["other"] = max(0.0, took - sum(clock.total.values()))
            per_step.append(dict(clock.total))
    out = {p: statistics.median(d[p] for d in per_step) for p in PIECES}
    out["total"] = sum(out.values())
    return out


def time_interleaved(steps: dict, repeats: int, block: int, warmup: int,
                     now: Callable[[], float] = time.perf_counter) -> dict:
    """{name: step times}: ``warmup`` untimed steps each, then ``repeats`` rounds in which every
    contender runs ``block`` steps back to back, the first not recorded (it absorbs the other
    library's still-spinning threads; see benchmarks/timing.py)."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            for rep in range(block):
                t0 = now()
                fn()
                if rep > 0 or block == 1:
                    samples[name].append(now() - t0)
    return samples

