"""``names.py --report batch-sizes``: batch sizes 1, 10 and 30 for the SAME number of epochs, once with
one shared learning rate and once with the rate scaled with the batch size, six runs in parallel
(npnet.sweep.run_sweep, --jobs); per-epoch train loss, test loss and test accuracy in one figure.

Batch size 1 is one optimiser step per name (14,450 per epoch on the full training split, ~2 ms of
CPU each here), so by default the report trains on a stratified subset of --subset training names
for REPORT_EPOCHS epochs (validation and test splits unchanged): six runs in <= 10 minutes on 2 cores.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import csv  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BATCH_SIZES = (1, 10, 30)
LR_MODES = ("shared", "scaled")
REPORT_EPOCHS, SUBSET = 8, 5000
EPOCH_FIELDS = ("lr_mode", "batch_size", "lr", "epoch", "step", "train_loss", "test_loss", "test_accuracy",
                "val_accuracy", "seconds")
RUN_FIELDS = ("lr_mode", "batch_size", "lr", "epochs", "steps", "train_loss", "test_loss", "test_accuracy",
              "best_test_accuracy", "best_epoch_by_test", "s_per_epoch", "wall_s")


def learning_rate(lr: float, mode: str, B: int, base_B: int) -> float:
    """shared: ``lr`` for every batch size; scaled: ``lr * B / base_B`` (the linear scaling rule)."""
    return lr if mode == "shared" else lr * B / base_B


def subset_train(data: dict, n: int, seed: int) -> dict:
    """``data`` with its training split cut to about ``n`` names, stratified by language (0: all)."""
    from npnet.data import stratified_split
    train = data["train"]
    if not n or n >= train.size:
        return data
    _, keep = stratified_split(data["labels"][train], n / train.size, rng=seed + 2)
    return {**data, "train": train[keep]}


def batch_run(batch_size: int, lr_mode: str, base: dict, out: str, data_dir, subset: int) -> dict:
    """One run (module level: joblib ships it to a worker); writes its folder ``out/<mode>-B<B>``."""
    import names
    import names_tools
    cfg = dict(names.DEFAULTS, **base)
    cfg.update(batch_size=int(batch_size), lr=learning_rate(base["lr"], lr_mode, batch_size, base["batch_size"]),
               no_early_stop=True, time_limit=0.0, steps=None, decay_epochs=base["epochs"])
    cfg["dtype"] = np.dtype(cfg["dtype"])
    data = names.prepare_data(data_dir, cfg["split_seed"], cfg["val_fraction"], cfg["dedup"], cfg["dtype"])
    data = subset_train(data, subset, cfg["split_seed"])
    sub = Path(out) / f"{lr_mode}-B{batch_size}"
    sub.mkdir(parents=True, exist_ok=True)
    res = names.train(cfg, data, sub, log=lambda *a: None)
    names_tools.write_run(sub, cfg, data, res, None)
    h, s = res["history"], res["summary"]
    best = max(h, key=lambda e: e["test_accuracy"])
    return {"lr": cfg["lr"], "epochs": len(h), "steps": s["steps"], "train_loss": h[-1]["train_loss"],
            "test_loss": h[-1]["test_loss"], "test_accuracy": h[-1]["test_accuracy"],
            "best_test_accuracy": best["test_accuracy"], "best_epoch_by_test": best["epoch"],
            "s_per_epoch": float(np.mean([e["seconds"] for e in h])), "wall_s": s["wall_s"], "n_train": s["n_train"],
            "baseline": s["baseline"], "cpu_s": s["cpu_s"]}


def read_epochs(out: Path, lr_mode: str, B: int, lr: float) -> list[dict]:
    with open(out / f"{lr_mode}-B{B}" / "metrics.csv", newline="") as f:
        return [{"lr_mode": lr_mode, "batch_size": B, "lr": lr,
                 **{k: (int if k in ("epoch", "step") else float)(r[k]) for k in EPOCH_FIELDS[3:]}}
                for r in csv.DictReader(f)]


def plot(path, epochs: list[dict], title: str) -> None:
    """One row per lr mode: train (solid) and test (dashed) loss on shared axes; test accuracy."""
    fig, ax = common.figure(11, 7, 2, 2)
    top_loss = max(max(e["train_loss"], e["test_loss"]) for e in epochs) * 1.05
    for i, mode in enumerate(LR_MODES):
        a, b = ax[i, 0], ax[i, 1]
        for j, B in enumerate(BATCH_SIZES):
            e = [r for r in epochs if r["lr_mode"] == mode and r["batch_size"] == B]
            if not e:
                continue
            ep, lr = [r["epoch"] for r in e], e[0]["lr"]
            a.plot(ep, [r["train_loss"] for r in e], "o-", ms=3, color=f"C{j}", label=f"B={B} train (lr {lr:.3g})")
            a.plot(ep, [r["test_loss"] for r in e], "s--", ms=3, color=f"C{j}", label=f"B={B} test")
            b.plot(ep, [r["test_accuracy"] for r in e], "o-", ms=3, color=f"C{j}", label=f"B={B} (lr {lr:.3g})")
        word = "one shared lr" if mode == "shared" else "lr scaled with B"
        a.set(ylim=(0, top_loss), xlabel="epoch", ylabel="cross-entropy loss (nats per name)",
              title=f"{word}: train (solid, mean over the epoch) and test (dashed) loss")
        b.set(ylim=(0, 1), xlabel="epoch", ylabel="test accuracy (share of names)", title=f"{word}: test accuracy")
        for c in (a, b):
            c.title.set_fontsize(9)
            c.grid(alpha=0.3)
            c.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def write_markdown(path, runs: list[dict]) -> None:
    lines = ["| lr mode | B | lr | epochs | steps | train loss | test loss | test accuracy | best test acc (epoch) | "
             "s per epoch |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['lr_mode']} | {r['batch_size']} | {r['lr']:.3g} | {r['epochs']} | {r['steps']} | "
              f"{r['train_loss']:.3f} | {r['test_loss']:.3f} | {r['test_accuracy']:.3f} | "
              f"{r['best_test_accuracy']:.3f} ({r['best_epoch_by_test']}) | {r['s_per_epoch']:.1f} |" for r in runs]
    Path(path).write_text("\n".join(lines) + "\n")


def report_batch_sizes(a, cfg0: dict, out: Path, data_dir) -> list[dict]:
    """The report: six runs, batch_sizes.csv (per epoch), table.csv/table.md (per run), batch_sizes.png,
    summary.json (the best batch size per lr mode)."""
    import names
    from npnet.training.sweep import run_sweep
    epochs = a.epochs or REPORT_EPOCHS
    base = {**names._json_cfg(cfg0), "epochs": epochs}
    here = os.path.dirname(os.path.abspath(__file__))            # worker processes start afresh
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    configs = [{"batch_size": B, "lr_mode": m} for m in LR_MODES for B in BATCH_SIZES]
    fn = functools.partial(batch_run, base=base, out=str(out), data_dir=None if data_dir is None else str(data_dir),
                           subset=a.subset)
    print(f"names batch sizes: {len(configs)} runs of {epochs} epochs, {a.subset or 'all'} training names, "
          f"lr {cfg0['lr']:g} shared or x B/{cfg0['batch_size']}", flush=True)
    rows = run_sweep(fn, configs, out / "runs.csv", n_jobs=a.jobs, progress=not a.quiet)
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} batch-size runs failed: {bad[0].get('error')}")
    runs = [{k: (r[k] if k == "lr_mode" else float(r[k])) for k in RUN_FIELDS} for r in rows]
    for r in runs:
        for k in ("batch_size", "epochs", "steps", "best_epoch_by_test"):
            r[k] = int(r[k])
    per_epoch = [e for r in runs for e in read_epochs(out, r["lr_mode"], r["batch_size"], r["lr"])]
    common.write_table(out / "batch_sizes.csv", per_epoch, fields=list(EPOCH_FIELDS))
    common.write_table(out / "table.csv", runs, fields=list(RUN_FIELDS))
    write_markdown(out / "table.md", runs)
    n_train = int(rows[0]["n_train"])
    plot(out / "batch_sizes.png", per_epoch,
         f"names: {cfg0['layers']}x{cfg0['cell'].upper()} H={cfg0['hidden']}, {cfg0['optimizer']} momentum "
         f"{cfg0['momentum']:g}, {epochs} epochs of {n_train} training names for every batch size; lr decays "
         f"x{cfg0['lr_decay']:g} over the epochs")
    best_b = {m: max((r for r in runs if r["lr_mode"] == m), key=lambda r: r["test_accuracy"])["batch_size"]
              for m in LR_MODES}
    common.write_json(out / "summary.json", {
        "headline": "best_batch_size", "best_batch_size": best_b, "epochs": epochs, "n_train": n_train,
        "test_accuracy": {f"{r['lr_mode']}-B{r['batch_size']}": r["test_accuracy"] for r in runs},
        "baseline_name": "majority class rate", "baseline": float(rows[0]["baseline"]),
        "cpu_s": round(sum(float(r["cpu_s"]) for r in rows), 1)})
    for m in LR_MODES:
        best = max((r for r in runs if r["lr_mode"] == m), key=lambda r: r["test_accuracy"])
        print(f"  {m} lr: after {epochs} epochs " + ", ".join(
            f"B={r['batch_size']} test acc {r['test_accuracy']:.3f} (loss {r['test_loss']:.3f}, {r['s_per_epoch']:.0f} s/epoch)"
            for r in runs if r["lr_mode"] == m) + f"; best B={best['batch_size']}", flush=True)
    return runs
