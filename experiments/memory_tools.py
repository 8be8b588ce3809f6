"""memory.py's helpers: one training run (shared by the single run and the sweep), its test numbers
(recall accuracy AND cross-entropy on the last K outputs), and --compare-cells: tanh RNN, ReLU RNN,
IRNN, LSTM and GRU at matched parameter counts x learning rates x two layouts, one table, one figure."""
from __future__ import annotations

import argparse
import functools
import os
import time

import common

import numpy as np

import npnet
from npnet import tasks
from npnet.training.clip import NonFiniteError
from npnet.training.learner import accuracy

COMPARE_CELLS = ("rnn", "relu", "irnn", "lstm", "gru")
LABELS = {"rnn": "tanh RNN", "relu": "ReLU RNN (random W_h)", "irnn": "IRNN (ReLU, W_h = I)",
          "lstm": "LSTM", "gru": "GRU"}


def float_list(text: str) -> list[float]:
    """'3e-3,1e-2' -> [0.003, 0.01]: comma-separated finite numbers > 0."""
    vals = [common.positive_float(v) for v in text.split(",") if v.strip()]
    if not vals:
        raise argparse.ArgumentTypeError("expected comma-separated numbers > 0")
    return vals


def add_options(p) -> None:
    g = p.add_argument_group("cell comparison (--compare-cells)")
    g.add_argument("--compare-cells", action="store_true",
                   help="train every --cells x --lrs at the gap-free layout (--seq-len 2K+1) and at --seq-len, "
                        "every cell sized to the parameter count of an LSTM with --hidden units; writes "
                        "compare.csv, compare.md and compare.png (--cell, --lr, --match-params are ignored)")
    g.add_argument("--cells", type=common.str_list(COMPARE_CELLS), default=list(COMPARE_CELLS), help="cell types")
    g.add_argument("--lrs", type=float_list, default=[1e-3, 3e-3, 1e-2, 3e-2],
                   help="learning rates (Adam) searched per cell")
    common.add_sweep_options(g)


def test_numbers(out, test, K: int) -> dict:
    """Accuracy and mean cross-entropy (nats) over the K recall steps (the last K outputs), the
    cross-entropy over every step (blank targets included), and whole-sequence recall."""
    ce = npnet.SoftmaxCrossEntropyLoss()                            # float64, whatever the model's dtype
    logits = np.asarray(out, dtype=np.float64)
    loss_recall = float(ce.fprop(logits, test.y, test.mask))
    loss_all = float(ce.fprop(logits, test.y))
    ce.clear_cache()
    return {"test_accuracy": accuracy(out, test.y, test.mask), "test_loss": loss_recall,
            "test_loss_all_steps": loss_all,
            "sequence_accuracy": float((out.argmax(-1) == test.y)[:, -K:].all(axis=1).mean())}


def train_one(args, run=None) -> dict:
    """Train one model on args; return the model, learner, test batch, outputs and test numbers.
    ``run``: the run folder of a single run (None in a sweep worker: nothing written)."""
    S, K, L, dtype = args.symbols, args.remember, args.seq_len, args.dtype
    quiet_run = run or common.Run(args, folder=False)

    def batches(rng, n):
        gen = tasks.memory_task(args.batch_size, K, seq_len=L, symbols=S, rng=rng, dtype=dtype, num_batches=n)
        for x, y, m in gen:                       # the score mask must not reach the model: UNSCORED targets
            yield x, (y if args.train_on == "all" else common.scored_targets(y, m))

    model = common.build_model(args, S + 2, S + 1, return_sequences=True)
    if run is not None:
        run.write_config(input_size=S + 2, output_size=S + 1, params=model.num_params,
                         layout=tasks.memory_layout(K, seq_len=L), chance=1.0 / S)
        run.log(f"memory: K={K} symbols={S} L={L} (gap {L - 2 * K - 1}); {args.cell} H={args.hidden}, "
                f"{model.num_params} parameters; chance {1 / S:.3f}")
    x_ev, y_ev, m_ev = tasks.memory_batch(args.eval_size, K, seq_len=L, symbols=S,
                                          rng=common.seed_rng(args.seed, "eval"), dtype=dtype)
    held_out = [(x_ev, common.scored_targets(y_ev, m_ev))]         # scored on the recall steps
    learner = quiet_run.train(model, common.ScoredCrossEntropy(dtype), common.scored_accuracy, batches, held_out)
    test = tasks.memory_batch(args.test_size, K, seq_len=L, symbols=S,
                              rng=common.seed_rng(args.seed, "test"), dtype=dtype)
    out = learner.predict(test.x)                                 # (N, L, S+1) logits
    return {"model": model, "learner": learner, "test": test, "out": out, **test_numbers(out, test, K)}


# The settings that change a run's result: part of every sweep config, so a resumed sweep with other
# settings in the same folder re-runs instead of reusing rows trained otherwise.
KEYED = ("steps", "epochs", "epoch_size", "batch_size", "remember", "symbols", "train_on", "dtype", "target",
         "no_early_stop", "clip", "optimizer", "lr_decay", "layers", "bptt", "eval_every", "eval_size", "test_size")


def sweep_run(cell: str, hidden: int, seq_len: int, lr: float, seed: int, base: dict, **keyed) -> dict:
    """One comparison run (module level, so joblib can ship it to a worker process)."""
    args = argparse.Namespace(**{**base, **keyed, "cell": cell, "hidden": hidden, "seq_len": seq_len, "lr": lr,
                                 "seed": seed, "match_params": False, "quiet": True, "out": None})
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        r = train_one(args)
    except NonFiniteError as exc:                                  # divergence is a result, not a failure
        return {"diverged": 1, "test_accuracy": float("nan"), "test_loss": float("nan"),
                "error_text": str(exc)[:120], "wall_s": round(time.perf_counter() - t0, 2)}
    keep = ("test_accuracy", "test_loss", "test_loss_all_steps", "sequence_accuracy")
    return {"diverged": 0, **{k: r[k] for k in keep}, "steps": r["learner"].step,
            "params": int(r["model"].num_params), "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": round(time.process_time() - c0, 2)}


def compare_configs(args) -> tuple[list, dict]:
    """The runs (cell x layout x lr) and {cell: (H, parameters)} matched to an LSTM of --hidden units."""
    S, K = args.symbols, args.remember
    sizes = {}
    for c in args.cells:
        H = args.hidden if c == "lstm" else common.matched_hidden(c, S + 2, args.hidden, args.layers, S + 1)
        sizes[c] = (H, common.count_params(c, S + 2, H, args.layers, S + 1))
    lengths = sorted({2 * K + 1, args.seq_len})
    keyed = {k: getattr(args, k) for k in KEYED}
    configs = [{"cell": c, "hidden": sizes[c][0], "seq_len": L, "lr": lr, "seed": args.seed, **keyed}
               for L in reversed(lengths) for c in args.cells for lr in args.lrs]
    return configs, sizes


def best_rows(rows, cells, lengths) -> dict:
    """{(cell, L): the row of the learning rate with the best test accuracy (None if all diverged)}."""
    best = {}
    for c in cells:
        for L in lengths:
            ok = [r for r in rows if r["cell"] == c and int(r["seq_len"]) == L and r.get("status") == "ok"
                  and str(r.get("diverged")) == "0"]
            best[c, L] = max(ok, key=lambda r: (float(r["test_accuracy"]), -float(r["test_loss"])), default=None)
    return best


def _cell_text(rows, c, L, lrs, best) -> list[str]:
    per_lr = []
    for lr in lrs:
        r = [r for r in rows if r["cell"] == c and int(r["seq_len"]) == L and float(r["lr"]) == lr]
        if not r or r[0].get("status") != "ok":
            per_lr.append("failed")
        else:
            per_lr.append("div." if str(r[0]["diverged"]) == "1" else f"{float(r[0]['test_accuracy']):.3f}")
    b = best[c, L]
    head = "all diverged" if b is None else f"**{float(b['test_accuracy']):.3f}** ({float(b['test_loss']):.3f})"
    return [head, " / ".join(per_lr)]


def write_table(path_md, rows, sizes, lengths, lrs, K) -> list[str]:
    """compare.md: per cell H and parameters; per layout the best accuracy (its test loss) and every lr."""
    best = best_rows(rows, list(sizes), lengths)
    head = ["cell", "H", "parameters"]
    for L in lengths:
        tag = "gap-free" if L == 2 * K + 1 else f"gap {L - 2 * K - 1}"
        head += [f"L={L} ({tag}): best acc (loss)", f"L={L}: acc at lr {' / '.join(f'{v:g}' for v in lrs)}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c, (H, n) in sizes.items():
        cells = [LABELS.get(c, c), str(H), str(n)]
        for L in lengths:
            cells += _cell_text(rows, c, L, lrs, best)
        lines.append("| " + " | ".join(cells) + " |")
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def plot_compare(path, rows, sizes, lengths, lrs, K, chance):
    """Test recall accuracy against the learning rate, one line per cell, one panel per layout."""
    fig, ax = common.figure(4.6 * len(lengths), 3.8, 1, len(lengths))
    for a, L in zip(ax[0], lengths):
        for c, (H, n) in sizes.items():
            acc = []
            for lr in lrs:
                r = [r for r in rows if r["cell"] == c and int(r["seq_len"]) == L and float(r["lr"]) == lr
                     and r.get("status") == "ok"]
                acc.append(float(r[0]["test_accuracy"]) if r else np.nan)
            line, = a.plot(lrs, acc, marker="o", ms=4, lw=1.5, label=f"{LABELS.get(c, c)}, H={H} ({n} params)")
            div = [lr for lr, v in zip(lrs, acc) if np.isnan(v)]
            a.plot(div, [0.0] * len(div), "x", ms=8, color=line.get_color())
        a.axhline(chance, color="k", ls=":", lw=1, label=f"chance ({chance:.3f})")
        a.set_xscale("log")
        a.set_xticks(lrs, [f"{v:g}" for v in lrs])
        a.minorticks_off()
        a.set_ylim(0, 1.02)
        a.set_xlabel("learning rate (Adam)")
        a.set_ylabel("test recall accuracy (last K outputs)")
        tag = "gap-free" if L == 2 * K + 1 else f"gap {L - 2 * K - 1}"
        a.set_title(f"memory, K={K}, L={L} ({tag}); 1 seed per point; x: diverged", fontsize=8)
        a.grid(alpha=0.3)
    ax[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def main_compare(args):
    from npnet.training.sweep import run_sweep

    run = common.Run(args)
    run.write_config()
    here = os.path.dirname(os.path.abspath(__file__))            # the workers must find common and npnet
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    configs, sizes = compare_configs(args)
    for c, (H, n) in sizes.items():
        print(f"  {c:5s} H={H:3d}: {n} parameters ({100 * (n / sizes.get('lstm', (0, n))[1] - 1):+.1f} % vs LSTM)")
    base = {k: v for k, v in vars(args).items() if k not in ("cell", "hidden", "seq_len", "lr", "seed", *KEYED)}
    rows = run_sweep(functools.partial(sweep_run, base=base), configs, run.path("compare.csv"), n_jobs=args.jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    lengths = sorted({int(c["seq_len"]) for c in configs})
    lines = write_table(run.path("compare.md"), rows, sizes, lengths, args.lrs, args.remember)
    plot_compare(run.path("compare.png"), rows, sizes, lengths, args.lrs, args.remember, 1.0 / args.symbols)
    best = best_rows(rows, args.cells, lengths)
    summary = {"headline": "best_test_accuracy", "baseline": 1.0 / args.symbols, "baseline_name": "chance",
               "best_test_accuracy": {f"{c}@L={L}": (None if r is None else float(r["test_accuracy"]))
                                      for (c, L), r in best.items()},
               "best_test_loss": {f"{c}@L={L}": (None if r is None else float(r["test_loss"]))
                                  for (c, L), r in best.items()},
               "params": {c: n for c, (_, n) in sizes.items()}, "runs": len(rows),
               "failed": sum(r.get("status") != "ok" for r in rows), "wall_s": round(run.elapsed(), 2),
               "cpu_s_of_runs": round(sum(float(r.get("cpu_s") or 0) for r in rows), 1)}
    common.write_json(run.path("summary.json"), summary)
    print("\n".join(lines))
    print(f"memory --compare-cells: {len(rows)} runs, {summary['failed']} failed, {run.elapsed():.1f} s "
          f"({summary['cpu_s_of_runs']} CPU s in the runs) -> {run.dir}", flush=True)
    return summary
