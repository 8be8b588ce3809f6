"""``digit_sums.py --report grid``: sequence length x batch size, every cell trained on the same number of
training IMAGES (--grid-images; steps = images / (B L), so every cell costs about the same compute), in
parallel (npnet.sweep.run_sweep, --jobs). No digit-classifier baseline and no read-in probe here (they
cost more than a small cell). Writes grid.csv (one row per run), table.csv and table.md, grid.png (heat
maps of the per-step test accuracy, the sequence accuracy and the training time), summary.json.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import argparse  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

FIELDS = ("seq_len", "batch_size", "steps", "images", "step_accuracy", "test_accuracy", "last_step_accuracy",
          "train_s", "train_cpu_s")


def add_options(g) -> None:
    g.add_argument("--grid-lengths", type=common.int_list, default=[2, 4, 8], help="sequence lengths L of the grid")
    g.add_argument("--batch-sizes", type=common.int_list, default=[8, 32, 128], help="batch sizes B of the grid")
    g.add_argument("--grid-images", type=common.positive_int, default=48000,
                   help="training images per grid cell: steps = images // (B L) (at least 1)")
    common.add_sweep_options(g)


def grid_steps(images: int, L: int, B: int) -> int:
    return max(1, images // (B * L))


def grid_run(seq_len: int, batch_size: int, base: dict) -> dict:
    """One cell of the grid in ``base['out']/L<L>-B<B>`` (module level: joblib ships it to a worker)."""
    import digit_sums
    args = argparse.Namespace(**{**base, "seq_len": seq_len, "batch_size": batch_size, "report": "single",
                                 "steps": grid_steps(base["grid_images"], seq_len, batch_size), "probe": False})
    data = digit_sums.load_split(args)
    r = digit_sums.train_run(args, data, os.path.join(base["out"], f"L{seq_len}-B{batch_size}"), lambda m: None, None)
    return {"steps": r["steps"], "images": r["steps"] * batch_size * seq_len, "step_accuracy": r["step_accuracy"],
            "test_accuracy": r["test_accuracy"], "last_step_accuracy": r["step_accuracy_by_position"][-1],
            "train_s": r["train_s"], "train_cpu_s": r["train_cpu_s"], "params": r["params"]}


def table(rows) -> list[dict]:
    out = []
    for r in rows:
        if r.get("status") == "ok":
            out.append({k: (int(float(r[k])) if k in ("seq_len", "batch_size", "steps", "images") else float(r[k]))
                        for k in FIELDS})
    return out


def write_markdown(path, cells, lengths, batch_sizes) -> None:
    """Rows L, columns B; each cell: per-step accuracy / sequence accuracy (steps, training seconds)."""
    by = {(c["seq_len"], c["batch_size"]): c for c in cells}
    lines = ["| L \\ B | " + " | ".join(str(B) for B in batch_sizes) + " |", "|---" * (len(batch_sizes) + 1) + "|"]
    for L in lengths:
        row = []
        for B in batch_sizes:
            c = by.get((L, B))
            row.append("failed" if c is None else f"{c['step_accuracy']:.3f} / {c['test_accuracy']:.3f} "
                       f"({c['steps']} steps, {c['train_cpu_s']:.0f} s CPU, {c['train_s']:.0f} s wall)")
        lines.append(f"| {L} | " + " | ".join(row) + " |")
    lines.append("\ncell: mean per-step test accuracy / sequence accuracy (every running total right), "
                 "(optimiser steps, training CPU and wall seconds)")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path, cells, lengths, batch_sizes, images: int) -> None:
    """Heat maps over (B, L): per-step accuracy, sequence accuracy (both on a fixed 0..1 colour scale),
    training CPU seconds (steadier than wall seconds on a shared machine)."""
    by = {(c["seq_len"], c["batch_size"]): c for c in cells}
    fig, ax = common.figure(14, 4, 1, 3)
    panels = (("step_accuracy", "per-step test accuracy", (0, 1), "{:.3f}"),
              ("test_accuracy", "sequence test accuracy (all totals right)", (0, 1), "{:.3f}"),
              ("train_cpu_s", "training time (CPU seconds of the run's process)", (0, None), "{:.0f}"))
    for a, (key, title, (lo, hi), fmt) in zip(ax[0], panels):
        M = np.array([[by[(L, B)][key] if (L, B) in by else np.nan for B in batch_sizes] for L in lengths])
        im = a.imshow(M, cmap="viridis", vmin=lo, vmax=hi if hi is not None else np.nanmax(M), aspect="auto")
        for (i, j), v in np.ndenumerate(M):
            if np.isfinite(v):
                a.text(j, i, fmt.format(v), ha="center", va="center", fontsize=9,
                       color="white" if v < 0.5 * (hi or np.nanmax(M)) else "black")
        a.set_xticks(range(len(batch_sizes)), [str(B) for B in batch_sizes])
        a.set_yticks(range(len(lengths)), [str(L) for L in lengths])
        a.set(xlabel="batch size B (sequences per step)", ylabel="sequence length L (digits)", title=title)
        a.title.set_fontsize(9)
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    fig.suptitle(f"MNIST running sums (conv read-in + LSTM): every cell trained on {images:,} images "
                 f"(steps = {images:,} / (B L))", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def main_grid(args, run) -> dict:
    from npnet.training.sweep import run_sweep
    here = os.path.dirname(os.path.abspath(__file__))            # worker processes start afresh
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    base = {k: v for k, v in vars(args).items() if k not in ("jobs", "dask_scheduler")}
    base["out"] = run.dir
    configs = [{"seq_len": L, "batch_size": B} for L in args.grid_lengths for B in args.batch_sizes]
    print(f"digit_sums grid: L {args.grid_lengths} x B {args.batch_sizes}, {args.grid_images:,} training images per "
          f"cell ({args.cell} H={args.hidden}, {args.objective})", flush=True)
    rows = run_sweep(functools.partial(grid_run, base=base), configs, run.path("grid.csv"), n_jobs=args.jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    cells = table(rows)
    common.write_table(run.path("table.csv"), cells, fields=list(FIELDS))
    write_markdown(run.path("table.md"), cells, args.grid_lengths, args.batch_sizes)
    plot(run.path("grid.png"), cells, args.grid_lengths, args.batch_sizes, args.grid_images)
    best = {L: max((c for c in cells if c["seq_len"] == L), key=lambda c: c["step_accuracy"], default=None)
            for L in args.grid_lengths}
    summary = {"headline": "best_batch_size", "best_batch_size": {L: b and b["batch_size"] for L, b in best.items()},
               "step_accuracy": {f"L{c['seq_len']}-B{c['batch_size']}": c["step_accuracy"] for c in cells},
               "grid_images": args.grid_images, "failed": sum(r.get("status") != "ok" for r in rows),
               "wall_s": round(run.elapsed(), 2), "cell": args.cell, "hidden": args.hidden}
    common.write_json(run.path("summary.json"), summary)
    for L, b in best.items():
        if b is not None:
            print(f"  L={L}: best B={b['batch_size']} (per-step accuracy {b['step_accuracy']:.3f}, sequence "
                  f"{b['test_accuracy']:.3f}); " + ", ".join(
                      f"B={c['batch_size']} {c['step_accuracy']:.3f} ({c['train_cpu_s']:.0f} s CPU)"
                      for c in cells if c["seq_len"] == L), flush=True)
    print(f"digit_sums grid: {len(rows)} runs, {summary['failed']} failed, {run.elapsed():.0f} s -> {run.dir}", flush=True)
    return summary
