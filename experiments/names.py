"""Classify surnames by language (18 classes) with a character-level recurrent network.

A thin script: argparse -> npnet library calls (load_names, SequenceModel, Learner with
EarlyStopping, TimeLimit, a LambdaLR schedule, CSVLogger) -> a run folder (config.json,
metrics.csv, summary.json, checkpoint.npz, PNG plots). Also ``--predict NAME`` from a saved
run, and the exercise's reports (``--report table`` / ``--report batch-sizes``: names_tools.py, names_batch.py).

    python experiments/names.py --data-dir ../shared/data/names
    python experiments/names.py --predict Nakamura --checkpoint runs/names-.../checkpoint.npz
"""
from __future__ import annotations

import os
import sys

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:       # imported from elsewhere (tests)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  first: pins BLAS to one thread before numpy loads

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import names_tools  # noqa: E402  (--predict and --report)
import npnet  # noqa: E402
from npnet.data import Stream, bucket_by_length, load_names, stratified_split  # noqa: E402
from npnet.data.names import ALPHABET, NAMES_LANGUAGES, encode_names  # noqa: E402
from npnet.training.clip import NonFiniteError  # noqa: E402

TASK = "names"
METRIC_FIELDS = common.EpochRecords(None).fields      # the columns of metrics.csv

# Defaults chosen by measurement (docs/experiments.md, "Names"): a 32-wide linear read-in (character
# embedding), a 1-layer LSTM, H=128, SGD with momentum and weight decay, lr decaying 10x over 15
# epochs, batches of 32 names bucketed by length, early stopping on a validation split, float32.
DEFAULTS = dict(cell="lstm", hidden=128, layers=1, batch_size=32, epochs=15, steps=None, lr=0.1,
                optimizer="sgd", momentum=0.9, weight_decay=1e-4, clip=5.0, read_in=32,
                dropout=0.0, input_dropout=0.0, val_fraction=0.1, patience=5, lr_decay=0.1,
                time_limit=270.0, seed=0, split_seed=0, dtype="float32", dedup=False,
                target=None, no_early_stop=False, decay_epochs=None)


# -- data ------------------------------------------------------------------------------------
def prepare_data(data_dir, seed: int, val_fraction: float, dedup: bool, dtype, test_fraction=0.2):
    """Load (``data_dir``, else $NPNET_DATA/names or the cache), optionally deduplicate, encode, split.

    Split: stratified 80/20 train/test (seed), then a stratified validation part carved out
    of the training part only (seed + 1). The test part is never used for any choice.
    Returns a dict: seqs (list of (T_i, 56) one-hot arrays), lengths (N,), labels (N,),
    languages, train/val/test index arrays, n_lines.
    """
    data = load_names(data_dir)
    n_lines = len(data)
    if dedup:
        data = data.deduplicated()
    seqs = encode_names(data.names, one_hot=True, dtype=dtype)     # [(T_i, 56)]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)             # (N,)
    labels = np.asarray(data.labels, dtype=np.int64)                        # (N,)
    train_all, test = stratified_split(labels, test_fraction, rng=seed)
    tr, va = stratified_split(labels[train_all], val_fraction, rng=seed + 1)
    train, val = train_all[tr], train_all[va]
    return {"names": list(data.names), "seqs": seqs, "lengths": lengths, "labels": labels,
            "languages": tuple(data.languages), "train": train, "val": val, "test": test,
            "n_lines": n_lines}


def make_batch(seqs, labels, idx):
    """Pad the names ``idx`` into one batch: x (B, T_max, 56), y (B,), mask (B, T_max) bool
    (padding at the end; the model reads out each name at its own last real character)."""
    x, mask, _ = npnet.pad_sequences([seqs[i] for i in idx], dtype=seqs[idx[0]].dtype)  # (B, T, 56), (B, T)
    return x, labels[idx], mask


def eval_batches(data, idx, batch_size: int = 512) -> list:
    """Fixed evaluation batches (x, y, mask) of ``idx`` sorted by length, blocks of ``batch_size``."""
    order = idx[np.argsort(data["lengths"][idx], kind="stable")]
    return [make_batch(data["seqs"], data["labels"], order[s:s + batch_size])
            for s in range(0, len(order), batch_size)]


def train_batches(rng, data, batch_size: int, input_dropout: float):
    """One epoch of training batches (a Stream factory; all randomness from ``rng``): a random
    permutation, stably sorted by length (one pool), cut into blocks of ``batch_size`` whose order
    is shuffled, so a batch holds names of (nearly) one length. ``input_dropout`` blanks each real
    character with that probability (its one-hot row -> 0)."""
    train = data["train"]
    for b in bucket_by_length(rng, data["lengths"][train], batch_size, pool_batches=max(len(train), 1)):
        x, y, mask = make_batch(data["seqs"], data["labels"], train[b])
        if input_dropout > 0:
            keep = (rng.random(mask.shape) >= input_dropout) | ~mask        # (B, T)
            x = x * keep[:, :, None].astype(x.dtype)
        yield x, y, mask


# -- model and training ------------------------------------------------------------------------
def build_model(cfg: dict, n_classes: int):
    """SequenceModel: [read-in] -> layers x cell(hidden) -> read-out at each name's last step."""
    return npnet.SequenceModel(len(ALPHABET), cfg["hidden"], num_layers=cfg["layers"],
                               **common.cell_args(cfg["cell"]), output_size=n_classes,
                               read_in=cfg["read_in"] or None, return_sequences=False,
                               dropout=cfg["dropout"], dtype=cfg["dtype"],
                               rng=common.seed_rng(cfg["seed"], "model"))


def build_optimizer(cfg: dict, params: dict):
    kw = {"lr": cfg["lr"], "weight_decay": cfg["weight_decay"]}
    if cfg["optimizer"] in ("sgd", "rmsprop"):
        kw["momentum"] = cfg["momentum"]
    return npnet.optim.get(cfg["optimizer"], params, **kw)


def train(cfg: dict, data: dict, out_dir: Path | None, log=print, eval_test_each_epoch: bool = True,
          t0: float | None = None):
    """Train through npnet.Learner and keep the best-validation model. Returns a dict: ``summary``
    (summary.json), ``history`` (one record per epoch: metrics.csv), ``model`` (best parameters),
    ``pred``/``true`` (the best model's test predictions and the labels, (N_test,) each).

    lr_t = lr * lr_decay ** (t / total) per optimiser step (LambdaLR), total = the steps of
    ``decay_epochs`` (default ``epochs``) epochs, or ``steps``. EarlyStopping on validation
    accuracy (``patience`` epochs; off with ``no_early_stop``) restores the best epoch;
    ``target`` stops once validation accuracy reaches it; TimeLimit(``time_limit``) at the
    first step past it; a non-finite step ends training with the best epoch so far.
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    t0 = t_start if t0 is None else t0                                       # wall clock of the whole run
    model = build_model(cfg, len(data["languages"]))
    opt = build_optimizer(cfg, model.params)
    learner = npnet.Learner(model, npnet.SoftmaxCrossEntropyLoss(dtype=cfg["dtype"]), opt,
                            clip=cfg["clip"] or None, metric="accuracy", progress=False, tensorboard=False)
    per_epoch = -(-len(data["train"]) // cfg["batch_size"])                  # batches per epoch
    max_steps = cfg["steps"] or None
    total = max_steps or per_epoch * (cfg["decay_epochs"] or cfg["epochs"])  # steps of the lr schedule
    decay = cfg["lr_decay"]
    val, test = eval_batches(data, data["val"]), eval_batches(data, data["test"])
    epochs = common.EpochRecords(val, test if eval_test_each_epoch else None, max_steps,
                          None if out_dir is None else out_dir / "metrics.csv", log)
    best = npnet.EarlyStopping("eval_metric", mode="max", restore_best=True,
                               patience=10 ** 9 if cfg["no_early_stop"] else cfg["patience"])
    target = None if cfg["no_early_stop"] or cfg["target"] is None else common.TargetReached(cfg["target"])
    limit = npnet.TimeLimit(cfg["time_limit"]) if cfg["time_limit"] else None
    callbacks = [cb for cb in (limit, epochs, best, target, npnet.optim.lr_scheduler.LambdaLR(
        opt, lambda t: decay ** (min(t, total) / total))) if cb is not None]
    stream = Stream(train_batches, common.seed_rng(cfg["seed"], "train"), data, cfg["batch_size"],
                          cfg["input_dropout"])
    try:
        learner.fit(stream, epochs=cfg["epochs"] or 10 ** 9, eval_batches=val, callbacks=callbacks)
        stop_reason = epochs.stop_reason or (
            f"target {cfg['target']:g} reached" if target is not None and target.reached else
            f"early stop (no val improvement for {best.wait} epochs)" if best.stopped_step is not None else
            f"time limit {cfg['time_limit']:g}s" if learner.stop_training else "epochs")
    except NonFiniteError as exc:                          # parameters untouched by the failed step
        stop_reason = f"non-finite: {exc}"
        for k, v in (best.best_params or {}).items():      # the best epoch's parameters back
            np.copyto(model.params[k], v)
    train_s = time.perf_counter() - t_start
    best_epoch = next((e["epoch"] for e in epochs.history if e["step"] == best.best_step), 0)
    ev = learner.evaluate(test)
    pred = np.concatenate([np.argmax(learner.predict(x, mask), axis=-1) for x, _, mask in test])
    true = np.concatenate([y for _, y, _ in test])
    labels = data["labels"]
    majority = int(np.argmax(np.bincount(labels[data["train"]], minlength=len(data["languages"]))))
    if out_dir is not None:
        npnet.save_checkpoint(out_dir / "checkpoint.npz", model, opt, learner.step, extra={
            "task": TASK, "languages": list(data["languages"]), "epoch": best_epoch,
            "val_accuracy": best.best, "alphabet": ALPHABET, "config": _json_cfg(cfg)})
    summary = {
        "task": TASK, "test_accuracy": ev["metric"], "headline": "test_accuracy", "test_loss": ev["loss"],
        "baseline": float(np.mean(labels[data["test"]] == majority)),
        "baseline_name": f"majority class ({data['languages'][majority]}) rate",
        "baseline_class": data["languages"][majority],
        "stopped_early": stop_reason.startswith(("early", "target")),
        "cell": cfg["cell"], "hidden": cfg["hidden"], "layers": cfg["layers"],
        "params": int(model.num_params), "seed": cfg["seed"], "split_seed": cfg["split_seed"],
        "val_accuracy": best.best, "best_epoch": best_epoch, "epochs_run": len(epochs.history),
        "steps": learner.step, "stop_reason": stop_reason,
        "wall_s": time.perf_counter() - t0, "train_s": train_s, "cpu_s": time.process_time() - cpu_start,
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "n_lines": data["n_lines"], "n_examples": len(labels),
        **{f"n_{k}": len(data[k]) for k in ("train", "val", "test")}}
    return {"summary": summary, "history": epochs.history, "model": model, "pred": pred, "true": true}


def _json_cfg(cfg: dict) -> dict:
    return {k: (str(np.dtype(v)) if k == "dtype" else v) for k, v in cfg.items()}


# -- command line ------------------------------------------------------------------------------
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
    p.epilog = ("Data: --data-dir, else $NPNET_DATA/names, else ~/.cache/npnet/names (downloaded and "
                "verified). Split: stratified 80/20 train/test (--split-seed), validation carved from the "
                "training part only. An epoch is one pass over the training names (evaluation once per "
                "epoch); --steps caps optimiser steps; --target stops once validation accuracy reaches it.")
    p.set_defaults(epoch_size=None)
    g = p.add_argument_group("the names task")
    g.add_argument("--data-dir", default=None, help="folder of Language.txt files (default: see below)")
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
                   help="stop at the first step past this many seconds of training (0: no limit)")
    names_tools.add_options(p.add_argument_group("prediction and reports"))
    return p


def check(a) -> None:
    """Cross-option checks; a ValueError becomes argparse's usage error (exit 2)."""
    for name in ("dropout", "input_dropout"):
        if not 0.0 <= getattr(a, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(a, name)}")
    if not 0.0 < a.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1): the validation split picks the epoch, got {a.val_fraction}")
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
    if a.jobs == 0:
        raise ValueError("--jobs must be >= 1 or negative (joblib: -1 = one per core)")
    if a.predict is not None and a.report is not None:
        raise ValueError("--predict and --report are separate commands")
    common.check_data_dir("--data-dir", a.data_dir, "names")


def config_from_args(a) -> dict:
    cfg = {k: getattr(a, k, v) for k, v in DEFAULTS.items()}
    if a.epochs is None:                       # common.py: --steps and --epochs exclusive, both unset
        cfg["epochs"] = None if a.steps is not None else DEFAULTS["epochs"]
    if a.match_params:
        D = a.read_in or len(ALPHABET)
        cfg["hidden"] = common.matched_hidden(a.cell, D, a.hidden, a.layers, len(NAMES_LANGUAGES))
    cfg["dtype"] = np.dtype(a.dtype)
    return cfg


def main(argv=None) -> int:
    t0 = time.perf_counter()
    p = parser()
    a = common.parse(p, argv, check)
    if a.predict is not None:
        return names_tools.print_predictions(p, a.checkpoint, a.predict)

    cfg = config_from_args(a)
    out = Path(a.out) if a.out else Path("runs") / f"{TASK}-{time.strftime('%Y%m%d-%H%M%S')}"
    say = (lambda *x: None) if a.quiet else print
    try:                                        # the data: --data-dir, $NPNET_DATA/names or the cache
        if a.report is not None:
            out.mkdir(parents=True, exist_ok=True)
            names_tools.report(a, cfg, out, a.data_dir)
            print(f"names report {a.report} -> {out} ({time.perf_counter() - t0:.0f} s)")
            return 0
        data = prepare_data(a.data_dir, cfg["split_seed"], cfg["val_fraction"], cfg["dedup"], cfg["dtype"])
    except npnet.NpnetError as exc:
        p.exit(1, f"names: {exc}\n  give --data-dir DIR, or set NPNET_DATA to the folder that holds names/\n")
    out.mkdir(parents=True, exist_ok=True)
    say(f"{len(data['labels'])} examples ({data['n_lines']} lines{', deduplicated' if cfg['dedup'] else ''}), "
        f"{len(data['languages'])} languages; train {len(data['train'])}, val {len(data['val'])}, "
        f"test {len(data['test'])}")
    res = train(cfg, data, out, log=say, t0=t0)
    names_tools.write_run(out, cfg, data, res, list(sys.argv[1:] if argv is None else argv))
    s = res["summary"]
    print(f"names: test_accuracy {s['test_accuracy']:.4f} (baseline {s['baseline']:.4f}, {s['baseline_class']}) "
          f"{cfg['layers']}x{cfg['cell']} H={cfg['hidden']}, best epoch {s['best_epoch']}/{s['epochs_run']}, "
          f"{s['steps']} steps, {s['wall_s']:.0f} s (cpu {s['cpu_s']:.0f} s) -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
