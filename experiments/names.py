"""Classify surnames by language (18 classes) with a character-level recurrent network.

A thin script: argparse -> npnet library calls -> a run folder (config.json, metrics.csv,
summary.json, checkpoint.npz, PNG plots). Also ``--predict NAME`` from a saved run and the
exercise's reports (``--report table`` / ``--report batch-sizes``). Not a library module:
nothing in npnet imports it.

    python experiments/names.py --data-dir ../shared/data/names
    python experiments/names.py --predict Nakamura --checkpoint runs/names-.../checkpoint.npz
"""
from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:       # imported from elsewhere (tests)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  first: pins BLAS to one thread before numpy loads

import contextlib  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402
from npnet import datasets  # noqa: E402
from npnet.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from npnet.training.clip import NonFiniteError  # noqa: E402

TASK = "names"
REPO = Path(__file__).resolve().parents[1]
SHARED_NAMES = REPO.parent / "shared" / "data" / "names"      # this machine's copy (never in the repo)
METRIC_FIELDS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "test_loss", "test_accuracy", "lr", "seconds")

# Defaults chosen by measurement (docs/experiments.md, "Names"): a 32-wide linear read-in (character
# embedding), a 1-layer LSTM, H=128, SGD with momentum and weight decay, lr decaying 10x over 15
# epochs, batches of 32 names bucketed by length, early stopping on a validation split, float32.
DEFAULTS = dict(cell="lstm", hidden=128, layers=1, batch_size=32, epochs=15, steps=None, lr=0.1,
                optimizer="sgd", momentum=0.9, weight_decay=1e-4, clip=5.0, read_in=32,
                dropout=0.0, input_dropout=0.0, val_fraction=0.1, patience=5, lr_decay=0.1,
                time_limit=270.0, seed=0, split_seed=0, dtype="float32", dedup=False,
                target=None, no_early_stop=False, decay_epochs=None)


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
def resolve_data_dir(data_dir):
    """The folder (or None for the library's cache/download path) and a note saying which.

    Order: ``--data-dir``; else the cache ``<cache>/names`` if it holds files; else
    ``../shared/data/names`` next to the repository if present; else None (load_names
    then tries its verified download).
    """
    if data_dir is not None:
        return Path(data_dir), f"data: {data_dir}"
    cache = datasets.default_cache_dir() / "names"
    if cache.is_dir() and any(cache.glob("*.txt")):
        return None, f"data: cache {cache}"
    if SHARED_NAMES.is_dir() and any(SHARED_NAMES.glob("*.txt")):
        return SHARED_NAMES, f"data: {SHARED_NAMES} (no --data-dir, empty cache: using the copy next to the repo)"
    return None, f"data: download to {cache}"


def prepare_data(data_dir, seed: int, val_fraction: float, dedup: bool, dtype, test_fraction=0.2):
    """Load, (optionally) deduplicate, encode and split the names.

    Split: stratified 80/20 train/test (seed), then a stratified validation part carved out
    of the training part only (seed + 1). The test part is never used for any choice.

    Returns a dict: seqs (list of (T_i, 56) one-hot arrays), lengths (N,), labels (N,),
    languages, train/val/test index arrays (N_train,), (N_val,), (N_test,), counts.
    """
    data = datasets.load_names(data_dir)
    n_lines = len(data)
    if dedup:
        data = data.deduplicated()
    seqs = datasets.encode_names(data.names, one_hot=True, dtype=dtype)     # [(T_i, 56)]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)             # (N,)
    labels = np.asarray(data.labels, dtype=np.int64)                        # (N,)
    train_all, test = datasets.stratified_split(labels, test_fraction, rng=seed)
    if val_fraction > 0:
        tr, va = datasets.stratified_split(labels[train_all], val_fraction, rng=seed + 1)
        train, val = train_all[tr], train_all[va]
    else:
        train, val = train_all, np.zeros(0, np.int64)
    return {"names": list(data.names), "seqs": seqs, "lengths": lengths, "labels": labels,
            "languages": tuple(data.languages), "train": train, "val": val, "test": test,
            "n_lines": n_lines}


def make_batch(seqs, labels, idx):
    """Pad the names ``idx`` into one batch: x (B, T_max, 56), y (B,), mask (B, T_max) bool.

    Padding goes at the end; the mask marks the real steps, so the model reads out each
    name at its own last real character.
    """
    x, mask, _ = npnet.pad_sequences([seqs[i] for i in idx], dtype=seqs[idx[0]].dtype)  # (B, T, 56), (B, T)
    return x, labels[idx], mask


def bucket_batches(rng, lengths, idx, batch_size: int):
    """One epoch of batches of ``idx``, grouped by name length (little padding), in random order.

    A random permutation, stably sorted by length, is cut into blocks of ``batch_size``:
    each block holds names of (nearly) one length, its members differ between epochs, and
    the order of the blocks is shuffled.
    """
    perm = rng.permutation(idx)
    perm = perm[np.argsort(lengths[perm], kind="stable")]
    blocks = [perm[s:s + batch_size] for s in range(0, len(perm), batch_size)]
    return [blocks[k] for k in rng.permutation(len(blocks))]


def eval_batches(lengths, idx, batch_size: int = 512):
    """Fixed evaluation batches: ``idx`` sorted by length, blocks of ``batch_size``."""
    order = idx[np.argsort(lengths[idx], kind="stable")]
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def char_dropout(rng, x, mask, p: float):
    """Blank each real character with probability p (its one-hot row becomes zeros); new array."""
    if p <= 0:
        return x
    keep = (rng.random(mask.shape) >= p) | ~mask                            # (B, T)
    return x * keep[:, :, None].astype(x.dtype)


# ------------------------------------------------------------------------------------------
# Model, training, evaluation
# ------------------------------------------------------------------------------------------
def build_model(cfg: dict, n_classes: int):
    """SequenceModel: [read-in] -> layers x cell(hidden) -> read-out at each name's last step."""
    return npnet.SequenceModel(len(datasets.ALPHABET), cfg["hidden"], num_layers=cfg["layers"],
                               cell=cfg["cell"], output_size=n_classes,
                               read_in=cfg["read_in"] or None, return_sequences=False,
                               dropout=cfg["dropout"], dtype=cfg["dtype"],
                               rng=common.seed_rng(cfg["seed"], "model"))


def build_optimizer(cfg: dict, params: dict):
    kw = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    if cfg["optimizer"] in ("sgd", "rmsprop"):
        kw["momentum"] = cfg["momentum"]
    return npnet.optim.get(cfg["optimizer"], params, **kw)


def evaluate(model, loss, data, idx, batch_size: int = 512):
    """Mean loss, accuracy and predictions over ``idx`` (eval mode, no caches left)."""
    if len(idx) == 0:
        return float("nan"), float("nan"), np.zeros(0, np.int64), np.zeros(0, np.int64)
    model.eval()
    tot, preds, order = 0.0, [], []
    for b in eval_batches(data["lengths"], idx, batch_size):
        x, y, mask = make_batch(data["seqs"], data["labels"], b)
        out, _ = model.fprop(x, None, mask)                                 # (B, K)
        model.clear_cache()
        tot += float(loss.fprop(out, y)) * len(b)
        loss.clear_cache()                                                 # no bprop follows
        preds.append(np.argmax(out, axis=-1))
        order.append(b)
    model.train()
    order, preds = np.concatenate(order), np.concatenate(preds)
    pred = np.empty(len(data["labels"]), np.int64)
    pred[order] = preds
    pred = pred[idx]
    return tot / len(idx), float(np.mean(pred == data["labels"][idx])), pred, data["labels"][idx]


def _one_blas_thread():
    """common.py pins BLAS through the environment, which only works before numpy loads; when
    this module is imported after numpy (tests, notebooks) threadpoolctl does it, if installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def train(cfg: dict, data: dict, out_dir: Path | None, log=print, eval_test_each_epoch: bool = True,
          t0: float | None = None):
    """See :func:`_train`; runs it with one BLAS thread (tiny GEMMs: threads only contend)."""
    with _one_blas_thread():
        return _train(cfg, data, out_dir, log, eval_test_each_epoch, t0)


def _train(cfg, data, out_dir, log, eval_test_each_epoch, t0):
    """Train with early stopping on validation accuracy.

    Returns a dict: ``summary`` (what summary.json holds), ``history`` (one record per epoch,
    the rows of metrics.csv), ``model`` (with the best parameters), ``pred``/``true`` (test
    predictions of the best model and the labels, (N_test,) each).

    Every epoch: bucketed batches (train), then validation (and test, for the curves only)
    loss/accuracy. The best model by validation accuracy is kept (in memory and as
    ``checkpoint.npz``). The learning rate decays exponentially per step, as in
    experiments/common.py: lr_t = lr * lr_decay ** (t / total), total = the steps of
    ``decay_epochs`` (default ``epochs``) epochs, or ``steps``. Training stops after ``patience`` epochs
    without improvement or once validation accuracy reaches ``target`` (both off with
    ``no_early_stop``), after ``epochs`` (or ``steps`` optimiser steps, mid-epoch) or after
    the epoch that passes ``time_limit`` seconds. The reported ``test_accuracy`` is that of
    the best model, evaluated once at the end.
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    t0 = t_start if t0 is None else t0                                       # wall clock of the whole run
    K = len(data["languages"])
    model = build_model(cfg, K)
    loss = npnet.SoftmaxCrossEntropyLoss(dtype=cfg["dtype"])
    opt = build_optimizer(cfg, model.params)
    runner = npnet.SequenceRunner(model, loss, opt, clip=cfg["clip"] or None)
    rng = common.seed_rng(cfg["seed"], "train")                             # batches, char dropout
    max_steps = cfg["steps"] or None
    epochs = cfg["epochs"] or (10 ** 9 if max_steps else DEFAULTS["epochs"])
    per_epoch = -(-len(data["train"]) // cfg["batch_size"])                  # batches per epoch
    total = max_steps or per_epoch * (cfg["decay_epochs"] or epochs)        # steps of the lr schedule
    lr0 = float(cfg["lr"])
    use_val = len(data["val"]) > 0
    best = {"val_accuracy": -1.0, "epoch": 0, "params": None}
    history, bad, step, stop_reason, diverged = [], 0, 0, "epochs", None
    ckpt = None if out_dir is None else out_dir / "checkpoint.npz"
    for epoch in range(1, epochs + 1):
        t_epoch = time.perf_counter()
        tot_loss = tot_hit = n_seen = 0
        for b in bucket_batches(rng, data["lengths"], data["train"], cfg["batch_size"]):
            x, y, mask = make_batch(data["seqs"], data["labels"], b)
            x = char_dropout(rng, x, mask, cfg["input_dropout"])
            opt.lr = lr0 * cfg["lr_decay"] ** (min(step, total) / total)     # lr_t = lr * decay^(t/total)
            try:
                value = runner.train_step(x, y, mask)
            except NonFiniteError as exc:                  # parameters untouched by the failed step
                diverged = str(exc)
                break
            step += 1
            tot_loss += value * len(b)
            tot_hit += int(np.sum(np.argmax(runner.last_output, axis=-1) == y))
            n_seen += len(b)
            if max_steps is not None and step >= max_steps:
                break
        if diverged is not None and n_seen == 0:
            stop_reason = f"non-finite: {diverged}"
            break
        rec = {"epoch": epoch, "step": step, "train_loss": tot_loss / n_seen,
               "train_accuracy": tot_hit / n_seen, "lr": float(opt.lr)}
        if use_val:
            rec["val_loss"], rec["val_accuracy"], _, _ = evaluate(model, loss, data, data["val"])
        if eval_test_each_epoch:
            rec["test_loss"], rec["test_accuracy"], _, _ = evaluate(model, loss, data, data["test"])
        rec["seconds"] = time.perf_counter() - t_epoch
        history.append(rec)
        if out_dir is not None:
            _append_csv(out_dir / "metrics.csv", rec)
        score = rec["val_accuracy"] if use_val else -rec["train_loss"]
        improved = score > best["val_accuracy"]
        if improved:
            best = {"val_accuracy": score, "epoch": epoch,
                    "params": {k: v.copy() for k, v in model.params.items()}}
            bad = 0
            if ckpt is not None:
                save_checkpoint(ckpt, model, opt, step, extra=_ckpt_extra(cfg, data, epoch, rec))
        else:
            bad += 1
        log(f"epoch {epoch:3d}  train loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.4f}"
            + (f"  val acc {rec['val_accuracy']:.4f}" if use_val else "")
            + (f"  test acc {rec['test_accuracy']:.4f}" if eval_test_each_epoch else "")
            + f"  {rec['seconds']:.1f}s" + ("  *" if improved else ""))
        if diverged is not None:
            stop_reason = f"non-finite: {diverged}"
            break
        if max_steps is not None and step >= max_steps:
            stop_reason = f"steps {max_steps}"
            break
        if use_val and not cfg["no_early_stop"] and bad >= cfg["patience"]:
            stop_reason = f"early stop (no val improvement for {bad} epochs)"
            break
        if use_val and not cfg["no_early_stop"] and cfg["target"] is not None and score >= cfg["target"]:
            stop_reason = f"target {cfg['target']:g} reached"
            break
        if cfg["time_limit"] and time.perf_counter() - t_start > cfg["time_limit"]:
            stop_reason = f"time limit {cfg['time_limit']:g}s"
            break
    for k, v in (best["params"] or {}).items():                              # the best model
        model.params[k] = v
    test_loss, test_acc, pred, true = evaluate(model, loss, data, data["test"])
    labels = data["labels"]
    counts = np.bincount(labels[data["train"]], minlength=K)
    majority = int(np.argmax(counts))
    summary = {
        "task": TASK, "test_accuracy": test_acc, "headline": "test_accuracy", "test_loss": test_loss,
        "baseline": float(np.mean(labels[data["test"]] == majority)),
        "baseline_name": f"majority class ({data['languages'][majority]}) rate",
        "baseline_class": data["languages"][majority],
        "stopped_early": stop_reason.startswith(("early", "target")),
        "cell": cfg["cell"], "hidden": cfg["hidden"], "layers": cfg["layers"],
        "params": int(model.num_params), "seed": cfg["seed"], "split_seed": cfg["split_seed"],
        "val_accuracy": best["val_accuracy"] if use_val and best["epoch"] else None,
        "best_epoch": best["epoch"],
        "epochs_run": len(history), "steps": step, "stop_reason": stop_reason,
        "wall_s": time.perf_counter() - t0, "train_s": time.perf_counter() - t_start,
        "cpu_s": time.process_time() - cpu_start,
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "n_lines": data["n_lines"], "n_examples": len(labels), "n_train": len(data["train"]),
        "n_val": len(data["val"]), "n_test": len(data["test"]),
    }
    return {"summary": summary, "history": history, "model": model, "pred": pred, "true": true}


def _ckpt_extra(cfg, data, epoch, rec) -> dict:
    return {"task": TASK, "languages": list(data["languages"]), "epoch": epoch,
            "val_accuracy": rec.get("val_accuracy"), "alphabet": datasets.ALPHABET,
            "config": {k: v for k, v in cfg.items() if k != "dtype"} | {"dtype": str(np.dtype(cfg["dtype"]))}}


def _append_csv(path: Path, rec: dict) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS, restval="")
        if new:
            w.writeheader()
        w.writerow({k: rec.get(k, "") for k in METRIC_FIELDS})


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------
def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def plot_learning_curves(history, path, title=""):
    """Loss and accuracy per epoch: train (running mean over the epoch), validation, test."""
    fig = _figure(10, 3.8)
    ax_l, ax_a = fig.subplots(1, 2)
    ep = [r["epoch"] for r in history]
    for split, style in (("train", "-"), ("val", "s--"), ("test", "o-")):
        if f"{split}_loss" in history[0]:
            ax_l.plot(ep, [r[f"{split}_loss"] for r in history], style, label=split, lw=1, ms=3)
            ax_a.plot(ep, [r[f"{split}_accuracy"] for r in history], style, label=split, lw=1, ms=3)
    for ax, what in ((ax_l, "cross-entropy loss"), (ax_a, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def confusion_matrix(true, pred, K: int) -> np.ndarray:
    """Counts C (K, K): C[i, j] = number of names of language i predicted as j."""
    C = np.zeros((K, K), dtype=np.int64)                                    # (K, K)
    np.add.at(C, (true, pred), 1)
    return C


def plot_confusion(C, languages, path, title=""):
    """Rows normalised to sum 1 (recall on the diagonal), language labels on both axes."""
    R = C / np.maximum(C.sum(axis=1, keepdims=True), 1)                     # (K, K)
    K = len(languages)
    fig = _figure(0.42 * K + 2.5, 0.42 * K + 1.8)
    ax = fig.subplots()
    im = ax.imshow(R, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(K), labels=languages, rotation=90, fontsize=8)
    ax.set_yticks(range(K), labels=languages, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row-normalised)")
    for i in range(K):
        for j in range(K):
            if R[i, j] >= 0.005:
                ax.text(j, i, f"{100 * R[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if R[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


# ------------------------------------------------------------------------------------------
# Prediction from a saved run
# ------------------------------------------------------------------------------------------
def find_checkpoint(path) -> Path:
    """A checkpoint file, or a run folder holding ``checkpoint.npz``."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.npz"
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p} (give --checkpoint FILE.npz or a run folder)")
    return p


def predict(checkpoint, names, k: int = 3):
    """Top-k (language, probability) for each name, from a checkpoint written by :func:`train`."""
    ck = load_checkpoint(find_checkpoint(checkpoint))
    languages = (ck.extra or {}).get("languages")
    if not languages:
        raise ValueError(f"{checkpoint} is not a names checkpoint (no languages in its extra data)")
    model = ck.model.eval()
    loss = npnet.SoftmaxCrossEntropyLoss(dtype=model.dtype)
    out = []
    for name in names:
        x = datasets.encode_names([name], dtype=model.dtype)[0][None]        # (1, T, 56)
        logits, _ = model.fprop(x)                                           # (1, K)
        model.clear_cache()
        p = loss.probs(logits)[0]                                            # (K,)
        top = np.argsort(-p, kind="stable")[:k]
        out.append([(languages[i], float(p[i])) for i in top])
    return out


# ------------------------------------------------------------------------------------------
# One run and the reports
# ------------------------------------------------------------------------------------------
def run_config(out_dir=None, data_dir=None, quiet=True, **overrides) -> dict:
    """Train one configuration (DEFAULTS updated by ``overrides``); returns its summary.

    Module-level so that npnet.sweep can pickle it. With ``out_dir`` the full run folder
    is written.
    """
    t0 = time.perf_counter()
    cfg = dict(DEFAULTS, **overrides)
    cfg["dtype"] = np.dtype(cfg["dtype"])
    data = prepare_data(data_dir, cfg["split_seed"], cfg["val_fraction"], cfg["dedup"], cfg["dtype"])
    out = Path(out_dir) if out_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    res = train(cfg, data, out, log=(lambda *a: None) if quiet else print, t0=t0)
    if out is not None:
        _write_run(out, cfg, data, res, None)
    return res["summary"]


def _json_cfg(cfg: dict) -> dict:
    return {k: (str(np.dtype(v)) if k == "dtype" else v) for k, v in cfg.items()}


def _write_run(out: Path, cfg, data, res, argv) -> None:
    s = res["summary"]
    common.write_json(str(out / "config.json"), {
        "task": TASK, "argv": argv, **_json_cfg(cfg), "languages": list(data["languages"]),
        "split": {"test_fraction": 0.2, "val_fraction_of_train": cfg["val_fraction"],
                  "split_seed": cfg["split_seed"], "dedup": cfg["dedup"]},
        "npnet_version": npnet.__version__, "commit": common._git_commit(),
        "python": sys.version.split()[0], "numpy": np.__version__})
    common.write_json(str(out / "summary.json"), s)
    title = (f"{cfg['layers']}x{cfg['cell'].upper()} H={cfg['hidden']} B={cfg['batch_size']} "
             f"{cfg['optimizer']} lr={cfg['lr']:g}: test acc {s['test_accuracy']:.3f} (best epoch {s['best_epoch']})")
    plot_learning_curves(res["history"], out / "learning_curves.png", title)
    C = confusion_matrix(res["true"], res["pred"], len(data["languages"]))
    np.savetxt(out / "confusion.csv", C, fmt="%d", delimiter=",", header=",".join(data["languages"]))
    plot_confusion(C, data["languages"], out / "confusion.png",
                   f"test set, best model (accuracy {s['test_accuracy']:.3f})")


TABLE_CONFIGS = [
    {"cell": "lstm", "layers": 1, "hidden": 64},
    {"cell": "lstm", "layers": 1, "hidden": 128},
    {"cell": "lstm", "layers": 2, "hidden": 64},
    {"cell": "lstm", "layers": 2, "hidden": 128},
    {"cell": "gru", "layers": 1, "hidden": 128},
]


def report_table(base: dict, out: Path, data_dir, jobs: int = 1) -> list:
    """Test accuracy of 1-/2-layer LSTMs (H=64, 128) and a 1-layer GRU; other options from ``base``.

    Runs through npnet.sweep.run_sweep (``jobs`` processes; results resume from table.csv).
    No time limit: the bigger models get the same epochs as the small ones.
    """
    from npnet.training.sweep import run_sweep
    configs = []
    for c in TABLE_CONFIGS:
        name = f"{c['cell']}-L{c['layers']}-H{c['hidden']}"
        configs.append({**_json_cfg(base), **c, "time_limit": 0.0, "out_dir": str(out / name),
                        "data_dir": None if data_dir is None else str(data_dir)})
    rows = run_sweep(run_config, configs, out / "table.csv", n_jobs=jobs, progress=False,
                     on_result=lambda r: print(f"  {r['cell']} L={r['layers']} H={r['hidden']}: {r.get('status')} "
                                               f"test acc {r.get('test_accuracy', '')} {r.get('error', '')}",
                                               flush=True))
    lines = ["| cell | layers | hidden | params | test accuracy | val accuracy | best epoch | epochs | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['cell']} | {r['layers']} | {r['hidden']} | | failed: {r.get('error')} | | | | |")
            continue
        lines.append(f"| {r['cell'].upper()} | {r['layers']} | {r['hidden']} | {r['params']} | "
                     f"{float(r['test_accuracy']):.4f} | {float(r['val_accuracy']):.4f} | {r['best_epoch']} | "
                     f"{r['epochs_run']} | {float(r['wall_s']):.0f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


def report_batch_sizes(base: dict, out: Path, data_dir, batch_sizes=(1, 10, 30), b1_epochs: int = 2,
                       quiet: bool = False) -> dict:
    """Per-epoch train loss, test loss and test accuracy for several batch sizes, in one plot.

    Same model and optimiser for every batch size; the learning rate scales linearly with
    the batch size (lr * B / base batch size) so the step per example stays comparable, and
    decays on the same per-epoch schedule for all. No early stopping here (every epoch is
    recorded); batch size 1 is capped at ``b1_epochs`` epochs (an epoch is ~14k optimiser steps).
    """
    cfg0 = dict(DEFAULTS, **base)
    cfg0["dtype"] = np.dtype(cfg0["dtype"])
    data = prepare_data(data_dir, cfg0["split_seed"], cfg0["val_fraction"], cfg0["dedup"], cfg0["dtype"])
    say = (lambda *a, **k: None) if quiet else print
    curves = {}
    for B in batch_sizes:
        cfg = dict(cfg0, batch_size=int(B), lr=cfg0["lr"] * B / cfg0["batch_size"],
                   no_early_stop=True, time_limit=0.0, steps=None)
        if cfg["epochs"] is None:
            cfg["epochs"] = DEFAULTS["epochs"]
        cfg["decay_epochs"] = cfg["epochs"]              # the same lr at the same epoch for every B
        if B == 1:
            cfg["epochs"] = min(cfg["epochs"], b1_epochs)
        sub = out / f"batch-{B}"
        sub.mkdir(parents=True, exist_ok=True)
        say(f"batch size {B}: lr {cfg['lr']:g}, {cfg['epochs']} epochs", flush=True)
        res = train(cfg, data, sub, log=lambda m: say("  " + m, flush=True))
        _write_run(sub, cfg, data, res, None)
        curves[B] = {"history": res["history"], "summary": res["summary"], "lr": cfg["lr"]}
    fig, axes = common.figure(17, 3.8, 1, 4)
    keys = (("train_loss", "train loss (mean over the epoch)"), ("test_loss", "test loss"),
            ("test_accuracy", "test accuracy"))
    for B, c in curves.items():
        ep = [r["epoch"] for r in c["history"]]
        for ax, (key, _) in zip(axes[0], keys):
            ax.plot(ep, [r[key] for r in c["history"]], "o-", ms=3, lw=1, label=f"B={B} (lr {c['lr']:g})")
        clock = np.cumsum([r["seconds"] for r in c["history"]])                 # (epochs,)
        axes[0, 3].plot(clock, [r["test_accuracy"] for r in c["history"]], "o-", ms=3, lw=1, label=f"B={B}")
    for ax, (_, label) in zip(axes[0], keys + (("", "test accuracy"),)):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[0, 3].set_xlabel("wall seconds (training + per-epoch evaluation)")
    fig.suptitle(f"{cfg0['layers']}x{cfg0['cell'].upper()} H={cfg0['hidden']}, {cfg0['optimizer']} momentum "
                 f"{cfg0['momentum']:g}, lr {cfg0['lr']:g} x B/{cfg0['batch_size']}: batch sizes "
                 f"{', '.join(map(str, batch_sizes))} (B=1 capped at {b1_epochs} epochs)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "batch_sizes.png", format="png", dpi=100)
    rows = [{"batch_size": B, "lr": c["lr"], **r} for B, c in curves.items() for r in c["history"]]
    with (out / "batch_sizes.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["batch_size", "lr", *METRIC_FIELDS], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["| batch size | lr (end of epoch) | epoch | train loss | test loss | test accuracy | epoch s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['batch_size']} | {r['lr']:g} | {r['epoch']} | {r['train_loss']:.4f} | {r['test_loss']:.4f} | "
              f"{r['test_accuracy']:.4f} | {r['seconds']:.0f} |" for r in rows]
    (out / "batch_sizes.md").write_text("\n".join(lines) + "\n")
    say("\n".join(lines))
    return curves


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------
def parser():
    d = DEFAULTS
    p = common.make_parser(
        TASK, "Classify surnames by language (18 classes) with a character-level RNN. Writes a run "
              "folder: config.json, metrics.csv (one row per epoch), summary.json (test_accuracy of the "
              "best-validation model, baseline = majority-class rate, wall_s), checkpoint.npz (best "
              "model), learning_curves.png, confusion.png.",
        hidden=d["hidden"], layers=d["layers"], cell=d["cell"], batch_size=d["batch_size"], steps=None,
        lr=d["lr"], optimizer=d["optimizer"], clip=d["clip"], dtype=d["dtype"], eval_every=None,
        target=d["target"], lr_decay=d["lr_decay"])
    p.epilog = ("Data: --data-dir, else the npnet cache ($NPNET_DATA or ~/.cache/npnet)/names if it holds "
                "files, else ../shared/data/names next to the repository if present, else the verified "
                "download. Split: stratified 80/20 train/test (--split-seed), validation carved from the "
                "training part only. An epoch is one pass over the training names (--epoch-size and "
                "--eval-every do not apply: evaluation is once per epoch); --steps caps optimiser steps; "
                "--target stops once validation accuracy reaches it.")
    p.set_defaults(epoch_size=None)
    g = p.add_argument_group("the names task")
    g.add_argument("--data-dir", default=None,
                   help="folder of Language.txt files (default: the npnet cache, else ../shared/data/names "
                        "next to the repo if present, else download)")
    g.add_argument("--dedup", action="store_true",
                   help="drop repeated (name, language) pairs before splitting (Arabic: 2000 lines, 108 names)")
    g.add_argument("--val-fraction", type=float, default=d["val_fraction"],
                   help="part of the TRAINING split held out for early stopping and lr decay")
    g.add_argument("--split-seed", type=common.nonneg_int, default=d["split_seed"],
                   help="seed of the train/val/test split (--seed: initialisation and batch order)")
    g.add_argument("--momentum", type=common.nonneg_float, default=d["momentum"], help="SGD/RMSprop momentum")
    g.add_argument("--weight-decay", type=common.nonneg_float, default=d["weight_decay"], help="L2 weight decay")
    g.add_argument("--read-in", type=common.nonneg_int, default=d["read_in"],
                   help="size of a linear read-in (character embedding) before the cells; 0: none")
    g.add_argument("--dropout", type=float, default=d["dropout"], help="dropout between stacked layers")
    g.add_argument("--input-dropout", type=float, default=d["input_dropout"],
                   help="probability of blanking each character during training")
    g.add_argument("--patience", type=common.positive_int, default=d["patience"],
                   help="stop after this many epochs without validation improvement")
    g.add_argument("--time-limit", type=common.nonneg_float, default=d["time_limit"],
                   help="stop after the epoch that passes this many seconds of training (0: no limit)")
    g = p.add_argument_group("prediction and reports")
    g.add_argument("--predict", metavar="NAME", nargs="+", default=None,
                   help="print the top 3 languages of NAME(s) from --checkpoint (no training)")
    g.add_argument("--checkpoint", default=None, help="checkpoint file or run folder for --predict")
    g.add_argument("--report", choices=("table", "batch-sizes"), default=None,
                   help="table: test accuracy of 1-/2-layer LSTMs (H=64, 128) and a 1-layer GRU; "
                        "batch-sizes: per-epoch train/test loss and test accuracy for batch sizes 1, 10, 30 "
                        "(reports ignore --time-limit)")
    g.add_argument("--b1-epochs", type=common.positive_int, default=2,
                   help="epochs for batch size 1 in --report batch-sizes (~14k steps each)")
    g.add_argument("--jobs", type=common.positive_int, default=1, help="parallel runs for --report table")
    return p


def check(a) -> None:
    """Cross-option checks; a ValueError becomes argparse's usage error (exit 2)."""
    for name in ("dropout", "input_dropout"):
        if not 0.0 <= getattr(a, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(a, name)}")
    if not 0.0 <= a.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {a.val_fraction}")
    if not 0.0 < a.lr_decay <= 1.0:
        raise ValueError(f"--lr-decay must be in (0, 1], got {a.lr_decay}")
    if a.bptt is not None:
        raise ValueError("--bptt: truncated BPTT does not apply to one label per name (the read-out is at "
                         "the last character); leave it unset")
    if a.epoch_size is not None or a.eval_every is not None:
        raise ValueError("--epoch-size/--eval-every do not apply to names: an epoch is one pass over the "
                         "training names and evaluation happens after each epoch")
    if a.dropout > 0 and a.layers < 2:
        raise ValueError("--dropout acts between stacked layers: it needs --layers >= 2 "
                         "(for one layer use --input-dropout)")
    if a.predict is not None and a.checkpoint is None:
        raise ValueError("--predict needs --checkpoint FILE.npz (or a run folder)")
    if a.predict is not None and a.report is not None:
        raise ValueError("--predict and --report are separate commands")
    if a.data_dir is not None and not Path(a.data_dir).is_dir():
        raise ValueError(f"--data-dir {a.data_dir} is not a directory")


def config_from_args(a) -> dict:
    cfg = {k: getattr(a, k, v) for k, v in DEFAULTS.items()}
    if a.epochs is None:                       # common.py: --steps and --epochs exclusive, both unset
        cfg["epochs"] = None if a.steps is not None else DEFAULTS["epochs"]
    if a.match_params:
        D = a.read_in or len(datasets.ALPHABET)
        cfg["hidden"] = common.matched_hidden(a.cell, D, a.hidden, a.layers, len(datasets.NAMES_LANGUAGES))
    cfg["dtype"] = np.dtype(a.dtype)
    return cfg


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = parser()
    a = common.parse(p, argv, check)
    if a.predict is not None:
        try:
            results = predict(a.checkpoint, a.predict)
        except (OSError, ValueError) as exc:
            p.error(str(exc))
        for name, top in zip(a.predict, results):
            print(f"{name}: " + ", ".join(f"{lang} {prob:.3f}" for lang, prob in top))
        return 0

    cfg = config_from_args(a)
    out = Path(a.out) if a.out else Path("runs") / f"{TASK}-{time.strftime('%Y%m%d-%H%M%S')}"
    data_dir, note = resolve_data_dir(a.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *x: None) if a.quiet else print
    say(note)
    if a.report == "table":
        report_table(cfg, out, data_dir, a.jobs)
        print(f"names report table -> {out / 'table.md'} ({time.perf_counter() - t0:.0f} s)")
        return 0
    if a.report == "batch-sizes":
        report_batch_sizes(cfg, out, data_dir, b1_epochs=a.b1_epochs, quiet=a.quiet)
        print(f"names report batch-sizes -> {out / 'batch_sizes.png'} ({time.perf_counter() - t0:.0f} s)")
        return 0

    data = prepare_data(data_dir, cfg["split_seed"], cfg["val_fraction"], cfg["dedup"], cfg["dtype"])
    say(f"{len(data['labels'])} examples ({data['n_lines']} lines{', deduplicated' if cfg['dedup'] else ''}), "
        f"{len(data['languages'])} languages; train {len(data['train'])}, val {len(data['val'])}, "
        f"test {len(data['test'])}")
    res = train(cfg, data, out, log=say, t0=t0)
    _write_run(out, cfg, data, res, list(sys.argv[1:] if argv is None else argv))
    s = res["summary"]
    print(f"names: test_accuracy {s['test_accuracy']:.4f} (baseline {s['baseline']:.4f}, {s['baseline_class']}) "
          f"{cfg['layers']}x{cfg['cell']} H={cfg['hidden']}, best epoch {s['best_epoch']}/{s['epochs_run']}, "
          f"{s['steps']} steps, {s['wall_s']:.0f} s (cpu {s['cpu_s']:.0f} s) -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
