"""The training race: experiments/memory.py against a PyTorch twin of the same model and recipe.

Both sides train an LSTM with a linear read-out per step (Adam, gradient-norm clipping 1.0,
cross-entropy on the recall steps) until the held-out recall reaches the target; both run
single-threaded (memory.py pins BLAS to one thread). Reported: training seconds (memory.py's
summary.json ``train_s``: the fit loop with its evaluations), the script's whole wall and CPU
time, the updates, and the ratios.
"""
from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .contenders import copy_weights
from .machine import ROOT

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]


@dataclass(frozen=True)
class RaceOptions:
    seq_len: int = 20
    hidden: int = 64              # LSTM units on both sides
    lr: float = 2e-2              # Adam learning rate, both sides
    batch: int = 64
    dtype: str = "float64"
    target: float = 0.99          # held-out recall to reach
    eval_every: int = 25
    max_steps: int = 5000         # most updates, both sides
    extra_args: tuple = field(default_factory=tuple)   # passed on to experiments/memory.py


def train_race(opts: RaceOptions, use_torch: bool, log: Log) -> dict:
    """Run memory.py (a subprocess) and, when ``use_torch``, the PyTorch twin; both results."""
    script = os.path.join(ROOT, "experiments", "memory.py")
    if not os.path.exists(script):
        log("--train: experiments/memory.py not present yet; skipping the training race")
        return {"skipped": "experiments/memory.py absent"}
    res = _run_memory_script(script, opts, log)
    if not use_torch:
        log("--train: torch not installed; no PyTorch side")
        return res
    import torch
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res.update(torch_memory_train(opts, log))
    finally:
        torch.set_num_threads(n_threads)
    if res.get("npnet_train_s") and res.get("torch_train_s"):
        res["ratio_train_s"] = res["npnet_train_s"] / res["torch_train_s"]
        res["ratio_per_update"] = ((res["npnet_train_s"] / res["npnet_steps"])
                                   / (res["torch_train_s"] / res["torch_updates"]))
        # CPU seconds: the whole memory.py process (imports, final test, plots included) against
        # the twin's training loop: an upper bound for npnet, robust to other users' load.
        res["ratio_cpu_s_upper_bound"] = res["npnet_script_cpu_s"] / res["torch_train_cpu_s"]
    return res


def _run_memory_script(script: str, opts: RaceOptions, log: Log) -> dict:
    out_dir = tempfile.mkdtemp(prefix="bench-memory-")
    cmd = [sys.executable, script, "--seq-len", str(opts.seq_len), "--target", str(opts.target),
           "--hidden", str(opts.hidden), "--batch-size", str(opts.batch), "--lr", str(opts.lr),
           "--steps", str(opts.max_steps), "--dtype", opts.dtype, "--quiet", "--out", out_dir,
           *opts.extra_args]
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")                   # memory.py's own default
    log(f"--train: running {' '.join(cmd)}")
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {"npnet_cmd": " ".join(cmd[1:]), "npnet_script_wall_s": time.perf_counter() - t0,
           "npnet_script_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
           "npnet_returncode": p.returncode, "npnet_tail": (p.stdout + p.stderr).strip().splitlines()[-4:]}
    log("\n".join("  | " + s for s in res["npnet_tail"]))
    try:
        with open(os.path.join(out_dir, "summary.json")) as f:
            summ = json.load(f)
        res.update(npnet_train_s=summ.get("train_s"), npnet_steps=summ.get("steps"),
                   npnet_test_accuracy=summ.get("test_accuracy"), npnet_stopped_early=summ.get("stopped_early"))
    except (OSError, ValueError) as exc:
        log(f"--train: no summary.json from memory.py ({exc})")
    return res


def _copy_initial_weights(lstm: torch.nn.LSTM, head: torch.nn.Linear, D: int, V: int, opts: RaceOptions, log: Log) -> str:
    """Give the twin memory.py's initial weights (its model as memory.py --seed 0 builds it);
    the name of the initialisation used."""
    import torch
    try:
        import npnet
        model = npnet.SequenceModel(D, opts.hidden, cell="lstm", output_size=V, return_sequences=True,
                                    dtype=opts.dtype, rng=np.random.default_rng([0, 0]))
        copy_weights(lstm, model.cells[0].params, "lstm")
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(model.read_out.params["W"].T.copy()))
            head.bias.copy_(torch.from_numpy(model.read_out.params["b"].copy()))
        return "npnet SequenceModel(rng=[0, 0]) weights, as memory.py --seed 0"
    except Exception as exc:
        log(f"--train: could not copy npnet's initial weights ({type(exc).__name__}: {exc}); "
            "PyTorch default init")
        return "PyTorch default"


def torch_memory_train(opts: RaceOptions, log: Log) -> dict:
    """PyTorch twin of experiments/memory.py: nn.LSTM(H) + a linear read-out per step, Adam,
    gradient-norm clipping 1.0, cross-entropy on the recall steps, batches from
    npnet.tasks.memory_task; evaluated every ``eval_every`` updates on 500 held-out
    sequences, stopping at recall >= ``target``."""
    import torch
    try:
        tasks = importlib.import_module("npnet.tasks")
    except Exception as exc:
        log(f"--train: npnet.tasks not importable ({exc}); no PyTorch side")
        return {"torch_skipped": "npnet.tasks not importable"}
    if not hasattr(tasks, "memory_task"):
        log("--train: npnet.tasks has no memory_task; no PyTorch side")
        return {"torch_skipped": "no npnet.tasks.memory_task"}
    torch.manual_seed(0)
    H, L = opts.hidden, opts.seq_len
    stream = tasks.memory_task(opts.batch, seq_len=L, rng=np.random.default_rng([0, 1]), dtype=opts.dtype)
    ev = tasks.memory_batch(500, seq_len=L, rng=np.random.default_rng([0, 2]), dtype=opts.dtype)
    D = ev.x.shape[2]
    V = D - 1                                              # symbols + blank
    tdt = torch.float64 if opts.dtype == "float64" else torch.float32
    lstm = torch.nn.LSTM(D, H, batch_first=True).to(tdt)
    head = torch.nn.Linear(H, V).to(tdt)
    init = _copy_initial_weights(lstm, head, D, V, opts, log)
    params = list(lstm.parameters()) + list(head.parameters())
    torch_opt = torch.optim.Adam(params, lr=opts.lr)
    ex, ey, em = torch.from_numpy(ev.x), torch.from_numpy(ev.y), torch.from_numpy(ev.mask)

    def recall():
        with torch.no_grad():
            pred = head(lstm(ex)[0]).argmax(-1)
            return float((pred[em] == ey[em]).double().mean())

    t0, cpu0 = time.perf_counter(), time.process_time()
    step, acc = 0, 0.0
    while step < opts.max_steps:
        b = next(stream)
        x, y, m = torch.from_numpy(b.x), torch.from_numpy(b.y), torch.from_numpy(b.mask)
        loss = torch.nn.functional.cross_entropy(head(lstm(x)[0])[m], y[m])
        torch_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        torch_opt.step()
        step += 1
        if step % opts.eval_every == 0:
            acc = recall()
            if acc >= opts.target:
                break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    log(f"--train: PyTorch LSTM H={H} reached recall {acc:.4f} after {step} updates in {wall:.1f} s")
    return {"torch_train_s": wall, "torch_train_cpu_s": cpu, "torch_updates": step, "torch_recall": acc,
            "torch_setup": {"H": H, "lr": opts.lr, "batch": opts.batch, "seq_len": L, "dtype": opts.dtype,
                            "eval_every": opts.eval_every, "clip_norm": 1.0, "threads": 1, "init": init}}
