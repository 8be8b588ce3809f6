"""The run folder (config.json, metrics.csv, summary.json, checkpoint.npz), its clock, and the
one training call every Learner-based script makes (:meth:`Run.train`)."""
from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

import npnet
from npnet.data import Stream
from npnet.tables import write_csv

from .model import seed_rng


def json_floats(values) -> str:
    """JSON of a (nested) list of floats at 5 significant digits, NaN and inf kept: how the
    sweeps store arrays in CSV cells (``npnet.sweep.read_results`` raises the csv module's
    field limit to read them back)."""
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(json_floats(v) for v in values) + "]"
    v = float(values)
    return json.dumps(float(f"{v:.5g}") if math.isfinite(v) else v)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_json(path, obj) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
        f.write("\n")


def write_table(path, rows, fields=None) -> None:
    """A table that is not a training log (those go through ``npnet.CSVLogger``), written by
    npnet's one CSV writer :func:`npnet.tables.write_csv`: ``rows`` are dicts (columns ``fields``,
    default the first row's keys) or sequences (then ``fields`` is the header)."""
    rows = list(rows)
    if fields is None:
        fields = list(rows[0]) if rows else []
    write_csv(path, rows, fields)


def lr_schedule(optimizer, lr_decay: float, total: int):
    """``lr_t = lr * lr_decay ** (min(t, total) / total)`` after t optimiser steps, as a PyTorch-style
    ``LambdaLR`` (the Learner steps it after every optimiser step); None for a constant rate."""
    if lr_decay == 1.0:
        return None
    from npnet.optim.lr_scheduler import LambdaLR
    return LambdaLR(optimizer, lambda t: lr_decay ** (min(t, total) / total))


class TargetReached(npnet.Callback):
    """Stop once the held-out metric reaches ``target`` (>=, or <= when lower is better);
    ``reached`` tells afterwards whether it did (saved in checkpoints with the callback state)."""

    def __init__(self, target: float, higher_is_better: bool = True):
        self.target, self.higher = float(target), bool(higher_is_better)
        self.reached = False

    def on_log(self, learner, record) -> None:
        m = record.get("eval_metric")
        if m is not None and (m >= self.target if self.higher else m <= self.target):
            self.reached = learner.stop_training = True

    def state_dict(self) -> dict:
        return {"reached": self.reached}

    def load_state_dict(self, d: dict) -> None:
        self.reached = bool(d["reached"])


class EpochRecords(npnet.Callback):
    """A Learner callback (``log_every=1``, evaluation at the end of every pass) that keeps one
    record per epoch in ``history`` and writes it to ``csv_path`` (npnet.CSVLogger): epoch, step,
    train_loss and train_<metric> (means over the epoch's examples), val_loss and val_<metric>
    (the Learner's evaluation at the end of the pass, or where an earlier callback has just set
    ``stop_training`` mid-epoch: the epoch is closed with an evaluation of ``val`` then),
    test_loss and test_<metric> (of the ``test`` batches if given: for curves only), the lr of
    the epoch's last step and seconds. ``max_steps``: stop training there."""

    def __init__(self, val, test=None, max_steps=None, csv_path=None, log=print, metric="accuracy"):
        self.val, self.test, self.max_steps, self.log, self.m = val, test, max_steps, log, metric
        self.fields = ("epoch", "step", "train_loss", f"train_{metric}", "val_loss", f"val_{metric}",
                       "test_loss", f"test_{metric}", "lr", "seconds")
        self.csv = npnet.CSVLogger(csv_path, fields=self.fields) if csv_path else None
        self.history, self.stop_reason = [], None
        self._sums, self._t = [0.0, 0.0, 0], time.perf_counter()

    def on_train_begin(self, learner) -> None:
        self._t = time.perf_counter()

    def on_log(self, learner, rec):
        if "loss" in rec:                                              # a training step
            B = learner.runner.last_output.shape[0]
            self._sums = [self._sums[0] + rec["loss"] * B, self._sums[1] + rec["metric"] * B, self._sums[2] + B]
            self._lr = rec["lr"]
            if self.max_steps is not None and learner.step >= self.max_steps:
                learner.stop_training, self.stop_reason = True, f"steps {self.max_steps}"
            if not learner.stop_training:
                return
            ev = learner.evaluate(self.val)                            # stopped mid-epoch: close it
            rec["eval_loss"], rec["eval_metric"] = ev["loss"], ev["metric"]
        if "eval_loss" not in rec:
            return
        loss_sum, metric_sum, n = self._sums                           # sums of value x batch size
        m = self.m
        e = {"epoch": len(self.history) + 1, "step": learner.step, "train_loss": loss_sum / n,
             f"train_{m}": metric_sum / n, "val_loss": rec["eval_loss"], f"val_{m}": rec["eval_metric"], "lr": self._lr}
        if self.test is not None:
            ev = learner.evaluate(self.test)
            e["test_loss"], e[f"test_{m}"] = ev["loss"], ev["metric"]
        e["seconds"] = time.perf_counter() - self._t
        self.history.append(e)
        if self.csv is not None:
            self.csv.on_log(learner, e)
        self.log(f"epoch {e['epoch']:3d}  train loss {e['train_loss']:.4f} {m} {e[f'train_{m}']:.4f}"
                 f"  val {m} {e[f'val_{m}']:.4f}" + (f"  test {m} {e[f'test_{m}']:.4f}" if self.test else "")
                 + f"  {e['seconds']:.1f}s")
        self._sums, self._t = [0.0, 0.0, 0], time.perf_counter()


class Run:
    """One run folder and its clock.

    ``Run(args)`` creates ``args.out`` (default ``runs/<task>-<timestamp>``) and starts the
    wall clock; :meth:`write_config` writes config.json; :meth:`train` fits with the Learner
    (metrics.csv through ``npnet.CSVLogger``); :meth:`finish` saves the checkpoint and
    summary.json and prints the one-line summary.
    """

    def __init__(self, args, folder: bool = True):
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.args = args
        self.learner = None
        self.quiet = bool(args.quiet) or not folder
        self.dir = None
        self.stopped_early = False
        self.train_s = 0.0
        if folder:                            # folder=False: a sweep worker, nothing written
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.dir = args.out or os.path.join("runs", f"{args.task}-{stamp}")
            os.makedirs(self.dir, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write_config(self, **extra) -> dict:
        cfg = {k: v for k, v in vars(self.args).items()}
        cfg.update(extra)
        cfg.update({"npnet_version": npnet.__version__, "commit": _git_commit(),
                    "python": sys.version.split()[0], "numpy": np.__version__,
                    "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        write_json(self.path("config.json"), cfg)
        return cfg

    # -- training -------------------------------------------------------------------
    def make_learner(self, model, loss, metric, log_every: int = 10, runner_class=npnet.SequenceRunner):
        """The Learner of the command line; ``runner_class`` (a SequenceRunner subclass) computes
        the gradients of its training step differently (e.g. sine's free-running unroll)."""
        a = self.args
        self.learner = npnet.Learner(model, loss, a.optimizer, lr=a.lr, bptt=a.bptt,
                                     clip=a.clip if a.clip > 0 else None, metric=metric,
                                     progress=not self.quiet, log_every=log_every, tensorboard=False,
                                     runner_class=runner_class)
        return self.learner

    def total_steps(self) -> int:
        a = self.args
        return a.epochs * a.epoch_size if a.epochs else a.steps

    def callbacks(self, learner, higher_is_better: bool = True) -> list:
        """Stop at --target (unless --no-early-stop), the --lr-decay schedule, metrics.csv."""
        a = self.args
        self.target = None
        if a.target is not None and not a.no_early_stop:
            self.target = TargetReached(a.target, higher_is_better)
        cbs = [self.target, lr_schedule(learner.optimizer, a.lr_decay, self.total_steps())]
        if self.dir is not None:
            cbs.append(npnet.CSVLogger(self.path("metrics.csv")))
        return [cb for cb in cbs if cb is not None]

    def train(self, model, loss, metric, batches, eval_batches, higher_is_better: bool = True,
              log_every: int = 10, runner_class=npnet.SequenceRunner, callbacks=()):
        """Fit on ``batches(rng, num_batches)`` (a task generator) with early stopping on --target.

        ``runner_class``: a SequenceRunner subclass for a custom unroll; ``callbacks`` run before the stop/schedule/CSV ones (so they may add keys to a
        record). Returns the Learner (its ``history`` holds the records of metrics.csv).
        """
        a = self.args
        learner = self.make_learner(model, loss, metric, log_every, runner_class)
        per_pass = a.epoch_size if a.epochs else None
        stream = Stream(lambda rng: batches(rng, per_pass), seed_rng(a.seed, "train"))
        kw = {"epochs": a.epochs} if a.epochs else {"steps": a.steps}
        callbacks = list(callbacks) + self.callbacks(learner, higher_is_better)
        t0 = time.perf_counter()
        learner.fit(stream, eval_batches=eval_batches, eval_every=a.eval_every, callbacks=callbacks, **kw)
        self.train_s = time.perf_counter() - t0
        self.stopped_early = self.target is not None and self.target.reached
        return learner

    # -- the end --------------------------------------------------------------------
    def finish(self, model, headline: str, value: float, baseline: float, baseline_name: str,
               fmt: str = ".4f", checkpoint_extra: dict | None = None, **extra) -> dict:
        """Checkpoint, summary.json, and the one-line summary. Returns the summary dict.

        ``checkpoint_extra``: more JSON-able entries for the checkpoint's extra data (e.g. a vocabulary)."""
        step = self.learner.step if self.learner is not None else 0
        opt = self.learner.optimizer if self.learner is not None else None
        npnet.save_checkpoint(self.path("checkpoint.npz"), model, opt, step=step,
                              extra={"task": self.args.task, headline: float(value), **(checkpoint_extra or {})})
        wall = self.elapsed()
        summary = {headline: float(value), "headline": headline, "baseline": float(baseline),
                   "baseline_name": baseline_name, "wall_s": round(wall, 2), "steps": int(step),
                   "train_s": round(self.train_s, 2),
                   "cpu_s": round(time.process_time() - self.cpu0, 2),
                   "stopped_early": bool(self.stopped_early),
                   "cell": self.args.cell, "hidden": self.args.hidden,
                   "params": int(model.num_params), "seed": self.args.seed, **extra}
        write_json(self.path("summary.json"), summary)
        print(f"{self.args.task}: {headline} {value:{fmt}} ({baseline_name} {baseline:{fmt}}) "
              f"{self.args.cell} H={self.args.hidden}, {step} steps, {wall:.1f} s -> {self.dir}",
              flush=True)
        return summary
