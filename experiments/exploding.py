"""Exploding gradients in a basic RNN: how fast the mean |gradient| grows with the sequence length.

Sweeps hidden size x input vocabulary x nonlinearity (tanh, ReLU) x recurrent initialisation
(random Gaussian, identity) with npnet.sweep.run_sweep; every setting is measured with and
without global-norm clipping. Plots mean |grad| against T and the gradient norm over training.
See docs/gradients.md.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads, puts npnet on the path
from common import gradient_plots as gplots

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# joblib worker processes start a fresh interpreter: let them import npnet from this checkout too
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

TASK = "exploding"
NONLINEARITIES, INITS = gplots.NONLINEARITIES, gplots.INITS


_js = common.json_floats


# -- one setting of the sweep (runs in a worker process) --------------------------------------
def _build(hidden, vocab, nonlinearity, init, gain, layers, seed, dtype):
    """A SequenceModel of BasicRNNCells with W_h = identity or N(0, gain^2 / H) entries."""
    import npnet
    model = npnet.SequenceModel(vocab, hidden, num_layers=layers, cell="rnn", output_size=vocab,
                                return_sequences=False, dtype=dtype, rng=seed,
                                cell_kwargs={"nonlinearity": nonlinearity,
                                             "recurrent_init": "identity" if init == "identity" else "orthogonal"})
    if init == "random":                                      # Gaussian W_h, spectral radius ~ gain
        rng = np.random.default_rng([seed, 1])
        for l in range(layers):
            W = rng.normal(0.0, gain / math.sqrt(hidden), size=(hidden, hidden))   # (H, H)
            model.params[f"cells.{l}.W_h"] = W.astype(model.dtype)
    return model


def _first_token_batch(rng, batch, seq_len, vocab, dtype):
    """Random tokens, one-hot (B, T, V); the target is the first token (B,): the loss sits at step T."""
    tok = rng.integers(0, vocab, size=(batch, seq_len))      # (B, T)
    x = np.zeros((batch, seq_len, vocab), dtype)              # (B, T, V)
    np.put_along_axis(x, tok[..., None], 1.0, axis=-1)
    return x, tok[:, 0].copy()


def _growth(seq_lens, values) -> tuple[float, float]:
    """Per-step factor exp(slope of ln v against T) and the total ratio v(T_max) / v(T_min)."""
    T = np.asarray(seq_lens, float)
    v = np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return math.nan, math.nan
    slope = np.polyfit(T[ok], np.log(v[ok]), 1)[0]
    i, j = np.flatnonzero(ok)[[0, -1]]
    return float(math.exp(slope)), float(v[j] / v[i])


def run_setting(hidden, vocab, nonlinearity, init, clip, seq_lens, gain=1.5, layers=1, batch_size=32,
                batches=2, train_seq_len=40, steps=100, lr=0.1, optimizer="sgd", bptt=None, seed=0,
                dtype="float64") -> dict:
    """Measure one setting: gradient statistics at initialisation for every T, then a short training run.

    At initialisation, for each T in ``seq_lens`` (mean over ``batches`` batches of the same model):
    mean |g| over all parameters before clipping (``raw``), after global-norm clipping to
    ``clip`` (``applied``, what the optimiser would receive) and ||dL/dh_1|| of layer 0.
    Then two training runs of ``steps`` optimiser steps on the first-token task at
    T = ``train_seq_len`` from the same initial weights and batches, without and with
    clipping, recording the pre-clip global gradient norm per step; a run that overflows
    stops there (``diverged_step_*``, -1 if it did not).
    Returns a flat dict; lists are JSON strings (one CSV row per setting).
    """
    import npnet
    from npnet.diagnostics import grad_stats, track_state_grads
    t0 = time.perf_counter()
    dt = np.dtype(dtype)
    data_rng = np.random.default_rng([seed, 2])
    model = _build(hidden, vocab, nonlinearity, init, gain, layers, seed, dt)
    loss = npnet.SoftmaxCrossEntropyLoss(dtype=dt)
    raw, applied, dh1 = [], [], []
    with np.errstate(all="ignore"):                            # overflow is what we measure
        for T in seq_lens:
            r, a, d = [], [], []
            for _ in range(batches):
                x, y = _first_token_batch(data_rng, batch_size, T, vocab, dt)
                model.zero_grad()
                with track_state_grads(model) as norms:
                    out, _ = model.fprop(x)
                    loss.fprop(out, y)
                    model.bprop(loss.bprop())
                s = grad_stats(model.grads)
                scale = 1.0 if clip is None or not s["global_norm"] > clip else clip / s["global_norm"]
                r.append(s["mean_abs"])
                a.append(s["mean_abs"] * scale)
                d.append(float(np.mean(norms()["l0"]["h"][:, 0])))
            raw.append(float(np.mean(r)))
            applied.append(float(np.mean(a)))
            dh1.append(float(np.mean(d)))
    g_raw, tot_raw = _growth(seq_lens, raw)
    g_app, tot_app = _growth(seq_lens, applied)

    out = {"raw_mean_abs": _js(raw), "applied_mean_abs": _js(applied), "dh1_norm": _js(dh1), "growth_per_step": g_raw, "growth_total": tot_raw,
           "growth_per_step_clipped": g_app, "growth_total_clipped": tot_app}

    # training from the same initial weights, clipping off and on
    for tag, c in (("noclip", None), ("clip", clip)):
        model = _build(hidden, vocab, nonlinearity, init, gain, layers, seed, dt)
        opt = npnet.optim.get(optimizer, model.params, lr=lr)
        runner = npnet.SequenceRunner(model, loss, opt, bptt=bptt, clip=c)
        train_rng = np.random.default_rng([seed, 3])          # the same batches for both runs
        losses, diverged = [], -1
        with np.errstate(all="ignore"):
            for step in range(steps):
                x, y = _first_token_batch(train_rng, batch_size, train_seq_len, vocab, dt)
                try:
                    losses.append(runner.train_step(x, y))
                except npnet.NpnetError:                      # NonFiniteError, or NaN reaching a layer
                    diverged = step + 1
                    break
        gn = [float(g) for g in runner.grad_norms]
        out.update({f"train_grad_norms_{tag}": _js(gn), f"train_losses_{tag}": _js(losses),
                    f"diverged_step_{tag}": diverged, f"final_loss_{tag}": losses[-1] if losses else math.nan,
                    f"max_grad_norm_{tag}": max(gn) if gn else math.nan})
    out["seconds"] = time.perf_counter() - t0
    return out


def setting_name(row) -> str:
    return f"{row['nonlinearity']}-{row['init']}-H{int(row['hidden'])}-V{int(row['vocab'])}"


# -- command line ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(
        TASK, "Exploding gradients in a basic RNN: mean |grad| against sequence length, with and "
              "without clipping, tanh vs ReLU, random vs identity W_h.",
        hidden=None, cell="rnn", batch_size=32, steps=100, lr=0.1, optimizer="sgd", clip=1.0)
    g = p.add_argument_group("the exploding-gradient sweep (--cell is fixed: the sweep covers tanh and ReLU "
                             "basic RNNs; --hidden H sweeps that one size instead of --hidden-sizes; "
                             "--steps, --lr, --optimizer: the clip on/off training runs; --bptt does not apply; "
                             "--clip: the threshold of the clipped curves)")
    g.add_argument("--hidden-sizes", type=common.int_list, default=None, metavar="H[,H...]",
                   help="hidden sizes to sweep (default 32,128; quick 8,16)")
    g.add_argument("--vocab", type=common.int_list, default=None, metavar="V[,V...]",
                   help="input vocabulary sizes (one-hot inputs) to sweep (default 10,100; quick 5)")
    g.add_argument("--seq-lens", type=common.int_list, default=None, metavar="T[,T...]",
                   help="sequence lengths at which the gradient is measured (default 5,10,20,40,80,160)")
    g.add_argument("--gain", type=common.positive_float, default=1.5,
                   help="random init: W_h entries ~ N(0, gain^2/H), spectral radius ~ gain")
    g.add_argument("--batches", type=common.positive_int, default=2,
                   help="batches averaged per sequence length")
    g.add_argument("--train-seq-len", type=common.positive_int, default=40,
                   help="sequence length of the training runs")
    common.add_sweep_options(g, jobs_default=None)
    g.add_argument("--quick", action="store_true", help="tiny sweep for the test suite (a few seconds)")
    return p


def check(args) -> None:
    if args.cell not in ("rnn", "irnn"):
        raise ValueError(f"exploding.py studies the basic RNN (tanh and ReLU are both swept); "
                         f"--cell {args.cell} is not one")
    if args.clip <= 0:
        raise ValueError("--clip must be > 0: it is the threshold of the clipped curves")
    if args.epochs:
        raise ValueError("exploding.py trains for --steps, not --epochs")
    if args.bptt is not None:
        raise ValueError("exploding.py measures full BPTT: the loss is read at the last step only, "
                         "so --bptt (truncation) does not apply")
    if args.jobs is not None and (args.jobs == 0 or args.jobs < -1):
        raise ValueError(f"--jobs must be >= 1 or -1 (one per core), got {args.jobs}")


def make_configs(args) -> list[dict]:
    hidden = [args.hidden] if args.hidden else args.hidden_sizes or ([8, 16] if args.quick else [32, 128])
    vocab = args.vocab or ([5] if args.quick else [10, 100])
    seq_lens = args.seq_lens or ([2, 4, 8, 16] if args.quick else [5, 10, 20, 40, 80, 160])
    steps = min(args.steps, 10) if args.quick else args.steps
    train_T = min(args.train_seq_len, 10) if args.quick else args.train_seq_len
    configs = []
    for nl in NONLINEARITIES:
        for init in INITS:
            for H in hidden:
                for V in vocab:
                    configs.append({"hidden": H, "vocab": V, "nonlinearity": nl, "init": init, "clip": args.clip,
                                    "seq_lens": seq_lens, "gain": args.gain, "layers": args.layers,
                                    "batch_size": args.batch_size, "batches": args.batches,
                                    "train_seq_len": train_T, "steps": steps, "lr": args.lr,
                                    "optimizer": args.optimizer, "bptt": args.bptt, "seed": args.seed,
                                    "dtype": args.dtype})
    return configs


# -- main --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = common.parse(build_parser(), argv, check)
    run = common.Run(args)
    from npnet.training.sweep import run_sweep
    out = Path(run.dir)
    configs = make_configs(args)
    run.write_config(settings=len(configs), sweep_csv="sweep.csv")
    jobs = args.jobs if args.jobs is not None else (1 if args.quick else -1)
    rows = run_sweep(run_setting, configs, out / "sweep.csv", n_jobs=jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    for r in failed:
        print(f"setting {setting_name(r)} failed: {r.get('error')}", file=sys.stderr)

    L = gplots.row_list                                             # a long table: one row per (setting, T)
    common.write_table(out / "metrics.csv", [
        [setting_name(r), r["nonlinearity"], r["init"], r["hidden"], r["vocab"], r["clip"], T, a, b, c]
        for r in ok for T, a, b, c in zip(L(r["seq_lens"]), L(r["raw_mean_abs"]), L(r["applied_mean_abs"]),
                                          L(r["dh1_norm"]))],
        fields=["setting", "nonlinearity", "init", "hidden", "vocab", "clip", "seq_len",
                "raw_mean_abs", "clipped_mean_abs", "dh1_norm"])
    if ok:
        gplots.plot_mean_abs(ok, out / "mean_abs_vs_seq_len.png", args.clip)
        gplots.plot_training(ok, out / "grad_norm_training.png", args.clip)

    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    names = [setting_name(r) for r in ok]
    growth = {n: num(r["growth_per_step"]) for n, r in zip(names, ok)}
    growth_clipped = {n: num(r["growth_per_step_clipped"]) for n, r in zip(names, ok)}
    total = {n: num(r["growth_total"]) for n, r in zip(names, ok)}
    total_clipped = {n: num(r["growth_total_clipped"]) for n, r in zip(names, ok)}
    diverged = {f"{n}-{tag}": int(float(r[f"diverged_step_{tag}"]))
                for n, r in zip(names, ok) for tag in ("noclip", "clip") if int(float(r[f"diverged_step_{tag}"])) > 0}
    max_norm = {f"{n}-{tag}": num(r[f"max_grad_norm_{tag}"]) for n, r in zip(names, ok) for tag in ("noclip", "clip")}
    finite = {k: v for k, v in growth.items() if v is not None}
    worst = max(finite, key=finite.get) if finite else None
    wall = run.elapsed()
    seq_lens = configs[0]["seq_lens"]
    summary = {"task": TASK, "headline": "max_growth_factor", "max_growth_factor": finite.get(worst),
               "worst_setting": worst, "baseline": 1.0,
               "baseline_name": "norm-preserving network (mean |grad| independent of T)",
               "growth_factor": growth, "growth_factor_clipped": growth_clipped,
               "growth_total": total, "growth_total_clipped": total_clipped,
               "growth_note": f"growth_factor: exp(slope of ln mean|grad| against T) over T in {seq_lens}; "
                              f"growth_total: mean|grad|(T={seq_lens[-1]}) / mean|grad|(T={seq_lens[0]}); "
                              f"_clipped: after global-norm clipping at {args.clip:g}",
               "seq_lens": seq_lens, "clip": args.clip, "diverged_step": diverged,
               "max_train_grad_norm": max_norm,
               "settings": len(rows), "failed": len(failed), "wall_s": round(wall, 2)}
    common.write_json(run.path("summary.json"), summary)
    if worst:
        print(f"exploding: {len(ok)}/{len(rows)} settings; fastest growth {finite[worst]:.3g}x per step "
              f"({worst}, x{total[worst]:.3g} from T={seq_lens[0]} to {seq_lens[-1]}); "
              f"{len(diverged)} training runs overflowed; {wall:.1f}s -> {out}")
    else:
        print(f"exploding: {len(ok)}/{len(rows)} settings ok; {wall:.1f}s -> {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
