"""Vanishing gradients: how much of the loss gradient reaches early time steps in a tanh RNN,
an IRNN, an LSTM and a GRU, untrained and after training on the first-element task.

    python experiments/vanishing.py

Per cell: ||dL/dh_t|| against the distance from the loss, a heat map of those norms over
training, ||dL/dx_1|| against the sequence length, and the norms of the state-to-state
Jacobian products. The cells run through npnet.sweep.run_sweep (one CSV row per cell).
Run folder: config.json, sweep.csv, metrics.csv, summary.json, checkpoint_<cell>.npz, PNGs.
See docs/gradients.md for what the plots show.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads, puts npnet on the path
from common import gradient_plots as gplots

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# joblib worker processes start a fresh interpreter: let them import npnet from this checkout too
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

TASK = "vanishing"
CELLS = ("rnn", "irnn", "lstm", "gru")


_js = common.json_floats


# -- one cell (runs in a worker process) ------------------------------------------------------
def _measure(model, loss, probe, probe_lens, probe_batch, jac_batch, seed, dt) -> dict:
    """Gradient norms of one model: ||dL/dh_t|| per t, ||dL/dx_1|| per T, Jacobian products."""
    from npnet import tasks
    from npnet.diagnostics import (jacobian_product_norms, largest_singular_values, state_jacobians,
                                   track_state_grads)
    name = f"l{model.num_layers - 1}"                          # the top layer: the loss reads its h_T
    out = {}
    with np.errstate(all="ignore"):
        with track_state_grads(model) as norms:
            pred, _ = model.fprop(probe.x)
            loss.fprop(pred, probe.y)
            model.bprop(loss.bprop())
        rec = norms()[name]
        out["dh"] = rec["h"].mean(axis=0).tolist()           # (T,) batch mean of ||dL/dh_t||
        if "c" in rec:
            out["dc"] = rec["c"].mean(axis=0).tolist()       # (T,) LSTM cell state
        dx1 = []
        rng = np.random.default_rng([seed, 4])
        for T in probe_lens:                                   # ||dL/dx_1|| against the length
            b = tasks.first_element_batch(probe_batch, T, rng=rng, dtype=dt)
            pred, _ = model.fprop(b.x)
            loss.fprop(pred, b.y)
            dx, _ = model.bprop(loss.bprop())                  # dx (B, T, 1)
            dx1.append(float(np.mean(np.linalg.norm(dx[:, 0, :], axis=-1))))
        out["dx1"] = dx1
        cell = model.cells[0]                                  # Jacobians of layer 0 on the probe inputs
        J = state_jacobians(cell, probe.x[:jac_batch])        # (T, B, S, S)
        logs = jacobian_product_norms(J, log10=True)          # (T, B), -inf where the product is 0
        top = logs.max(axis=1, keepdims=True)                  # log10 of the batch mean of the norms
        safe = np.where(np.isfinite(top), top, 0.0)
        mean = safe[:, 0] + np.log10(np.mean(10.0 ** (logs - safe), axis=1))
        out["jac_log10"] = np.where(np.isfinite(top[:, 0]), mean, -np.inf).tolist()   # (T,)
        out["jac_sigma"] = largest_singular_values(J).mean(axis=1).tolist()              # (T,)
    model.zero_grad()
    return out


def run_cell(cell, hidden=32, layers=1, seq_len=50, steps=300, batch_size=32, lr=1e-2,
             optimizer="adam", clip=1.0, bptt=None, seed=0, dtype="float64", probe_lens=(5, 10, 20, 50, 100),
             probe_batch=32, jac_batch=4, record_every=5, checkpoint=None) -> dict:
    """Measure one cell untrained, train it on the first-element task, measure it again.

    While training, every ``record_every`` steps the batch mean of ||dL/dh_t|| on the
    training batch is kept (one row of the heat map). Returns a flat dict; arrays are
    JSON strings (one CSV row per cell). ``checkpoint``: path to save the trained model
    to (skipped with a note if it cannot be written, e.g. on a remote Dask worker).
    """
    import npnet
    from npnet import tasks
    from npnet.diagnostics import track_state_grads
    t0 = time.perf_counter()
    dt = np.dtype(dtype)
    model = npnet.SequenceModel(1, hidden, num_layers=layers, cell=cell, output_size=1,
                                return_sequences=False, dtype=dt, rng=np.random.default_rng([seed, 0]))
    loss = npnet.MSELoss(dtype=dt)
    probe = tasks.first_element_batch(probe_batch, seq_len, rng=np.random.default_rng([seed, 2]), dtype=dt)
    before = _measure(model, loss, probe, probe_lens, probe_batch, jac_batch, seed, dt)

    opt = npnet.optim.get(optimizer, model.params, lr=lr)
    runner = npnet.SequenceRunner(model, loss, opt, bptt=bptt, clip=clip if clip else None)
    data = tasks.first_element_task(batch_size, seq_len, rng=np.random.default_rng([seed, 1]), dtype=dt)
    name = f"l{layers - 1}"
    heat, heat_steps, losses, diverged = [], [], [], -1
    with np.errstate(all="ignore"), track_state_grads(model) as norms:
        for step in range(1, steps + 1):
            x, y, _ = next(data)
            try:
                losses.append(runner.train_step(x, y))
            except npnet.NpnetError:                          # diverged: keep what we have
                diverged = step
                break
            if step == 1 or step % record_every == 0 or step == steps:
                heat.append(norms()[name]["h"].mean(axis=0).tolist())
                heat_steps.append(step)
    after = _measure(model, loss, probe, probe_lens, probe_batch, jac_batch, seed, dt)

    test = tasks.first_element_batch(1000, seq_len, rng=np.random.default_rng([seed, 3]), dtype=dt)
    pred, _ = model.fprop(test.x)
    model.clear_cache()
    test_mse = float(np.mean((pred - test.y) ** 2))
    saved = ""
    if checkpoint:
        try:
            npnet.save_checkpoint(checkpoint, model, opt, step=len(losses),
                                  extra={"task": TASK, "cell": cell, "test_mse": test_mse})
            saved = checkpoint
        except OSError as exc:                                 # e.g. a remote worker without the folder
            saved = f"not saved: {exc}"

    def ratio(d):
        return d["dh"][0] / d["dh"][-1] if d["dh"][-1] > 0 else math.nan

    res = {"test_mse": test_mse, "final_loss": losses[-1] if losses else math.nan, "diverged_step": diverged,
           "grad_ratio_untrained": ratio(before), "grad_ratio_trained": ratio(after),
           "train_losses": _js(losses), "train_grad_norms": _js(runner.grad_norms),
           "heat": _js(heat), "heat_steps": json.dumps(heat_steps), "checkpoint": saved}
    for tag, d in (("untrained", before), ("trained", after)):
        for k, v in d.items():
            res[f"{k}_{tag}"] = _js(v)
    res["seconds"] = time.perf_counter() - t0
    return res


# -- command line ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(
        TASK, "Vanishing gradients in tanh RNN, IRNN, LSTM and GRU, untrained and trained on the "
              "first-element task.",
        hidden=32, cell=None, batch_size=32, steps=600, lr=5e-3, optimizer="adam", clip=1.0)
    g = p.add_argument_group("the vanishing-gradient study (--cell X: only that cell; default all four; "
                             "--eval-every, --target, --epochs, --bptt do not apply)")
    g.add_argument("--seq-len", type=common.positive_int, default=50,
                   help="T of the training task and of the dL/dh_t and Jacobian measurements")
    g.add_argument("--probe-lens", type=common.int_list, default=None, metavar="T[,T...]",
                   help="sequence lengths for ||dL/dx_1|| (default 5,10,20,50,100,200; quick 2,4,8)")
    g.add_argument("--probe-batch", type=common.positive_int, default=32, help="sequences per measurement")
    g.add_argument("--jac-batch", type=common.positive_int, default=4,
                   help="sequences whose state Jacobians are computed (cost ~ B * (2H)^2 per step)")
    g.add_argument("--record-every", type=common.positive_int, default=10,
                   help="training steps between rows of the heat map")
    common.add_sweep_options(g, jobs_default=None)
    g.add_argument("--quick", action="store_true", help="tiny run for the test suite (a few seconds)")
    return p


def check(args) -> None:
    if args.epochs:
        raise ValueError("vanishing.py trains for --steps, not --epochs")
    if args.jobs is not None and (args.jobs == 0 or args.jobs < -1):
        raise ValueError(f"--jobs must be >= 1 or -1 (one per core), got {args.jobs}")
    if args.bptt is not None:
        raise ValueError("vanishing.py measures full BPTT: the loss is read at the last step only, "
                         "so --bptt (truncation) does not apply")


def make_configs(args, out: Path) -> list[dict]:
    cells = [args.cell] if args.cell else list(CELLS)
    q = args.quick
    configs = []
    for c in cells:
        configs.append({"cell": c, "hidden": min(args.hidden, 8) if q else args.hidden, "layers": args.layers,
                        "seq_len": min(args.seq_len, 10) if q else args.seq_len,
                        "steps": min(args.steps, 6) if q else args.steps,
                        "batch_size": min(args.batch_size, 8) if q else args.batch_size,
                        "lr": args.lr, "optimizer": args.optimizer, "clip": args.clip, "bptt": args.bptt,
                        "seed": args.seed, "dtype": args.dtype,
                        "probe_lens": args.probe_lens or ([2, 4, 8] if q else [5, 10, 20, 50, 100, 200]),
                        "probe_batch": min(args.probe_batch, 8) if q else args.probe_batch,
                        "jac_batch": min(args.jac_batch, 2) if q else args.jac_batch,
                        "record_every": min(args.record_every, 2) if q else args.record_every,
                        "checkpoint": str((out / f"checkpoint_{c}.npz").resolve())})
    return configs


# -- main --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = common.parse(build_parser(), argv, check)
    run = common.Run(args)
    from npnet.training.sweep import run_sweep
    out = Path(run.dir)
    configs = make_configs(args, out)
    run.write_config(cells=[c["cell"] for c in configs], sweep_csv="sweep.csv",
                     effective=configs[0] if args.quick else None)
    jobs = args.jobs if args.jobs is not None else (1 if args.quick else -1)
    rows = run_sweep(run_cell, configs, out / "sweep.csv", n_jobs=jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    ok = [r for r in rows if r.get("status") == "ok"]
    for r in rows:
        if r.get("status") != "ok":
            print(f"cell {r['cell']} failed: {r.get('error')}", file=sys.stderr)

    row_array = gplots.row_array                                           # training curves, one row per cell and step
    common.write_table(out / "metrics.csv", [[r["cell"], i, l, g] for r in ok for i, (l, g) in enumerate(
        zip(row_array(r, "train_losses"), row_array(r, "train_grad_norms")), 1)], fields=["cell", "step", "loss", "grad_norm"])
    if ok:
        gplots.plot_distance(ok, run.path("grad_vs_distance.png"))
        gplots.plot_heat(ok, run.path("grad_heatmap_training.png"))
        gplots.plot_dx1(ok, run.path("dx1_vs_seq_len.png"))
        gplots.plot_jacobians(ok, run.path("jacobian_products.png"))

    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    T = int(configs[0]["seq_len"])
    ratio = {r["cell"]: {"untrained": num(r["grad_ratio_untrained"]), "trained": num(r["grad_ratio_trained"])}
             for r in ok}
    Ts = configs[0]["probe_lens"]
    dx1 = {r["cell"]: {tag: dict(zip(map(str, Ts), map(float, row_array(r, f"dx1_{tag}"))))
                       for tag in ("untrained", "trained")} for r in ok}
    jac = {r["cell"]: {tag: float(row_array(r, f"jac_log10_{tag}")[-1]) for tag in ("untrained", "trained")} for r in ok}
    mse = {r["cell"]: num(r["test_mse"]) for r in ok}
    wall = run.elapsed()
    summary = {"task": TASK, "headline": "grad_ratio_first_last", "grad_ratio_first_last": ratio,
               "grad_ratio_note": f"batch mean ||dL/dh_1|| / batch mean ||dL/dh_T|| at T = {T} "
                                  f"(first-element task, top layer)",
               "baseline": 1.0, "baseline_name": "no vanishing or explosion (ratio 1)",
               "seq_len": T, "dx1_norm": dx1,
               "jacobian_product_log10": jac,
               "jacobian_note": f"log10 ||d s_T / d s_0||_2 (product of all {T} Jacobians, layer 0, batch mean)",
               "test_mse": mse, "mse_baseline": 1.0 / 3.0,
               "mse_baseline_name": "predict 0 (variance of U(-1, 1))",
               "steps": int(configs[0]["steps"]), "hidden": int(configs[0]["hidden"]),
               "cells": [r["cell"] for r in ok], "failed": len(rows) - len(ok),
               "seconds_per_cell": {r["cell"]: num(r["seconds"]) for r in ok}, "wall_s": round(wall, 2)}
    common.write_json(run.path("summary.json"), summary)
    parts = ", ".join(f"{c} {v['untrained']:.2g}->{v['trained']:.2g}" for c, v in ratio.items()
                      if v["untrained"] is not None and v["trained"] is not None)
    print(f"vanishing: ||dL/dh_1||/||dL/dh_T|| at T={T} untrained->trained: {parts}; "
          f"test MSE {', '.join(f'{c} {m:.3g}' for c, m in mse.items() if m is not None)} "
          f"(baseline 0.333); {wall:.1f} s -> {run.dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
