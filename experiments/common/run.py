"""The run folder (config.json, metrics.csv, summary.json, checkpoint.npz), its clock, and the
one training call every Learner-based script makes (:meth:`Run.train`)."""
from __future__ import annotations

import csv
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
    """The experiments' one CSV writer for tables that are not a training log (those go through
    ``npnet.CSVLogger``): ``rows`` are dicts (columns ``fields``, default the first row's keys)
    or sequences (then ``fields`` is the header)."""
    rows = list(rows)
    if fields is None:
        fields = list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        if rows and not isinstance(rows[0], dict):
            w = csv.writer(f)
            w.writerow(fields)
        else:
            w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore", restval="")
            w.writeheader()
        w.writerows(rows)


class Run:
    """One run folder and its clock.

    ``Run(args)`` creates ``args.out`` (default ``runs/<task>-<timestamp>``) and starts the
    wall clock; :meth:`write_config` writes config.json; :meth:`train` fits with the Learner
    (which appends metrics.csv); :meth:`finish` saves the checkpoint and
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
    def make_learner(self, model, loss, metric, log_every: int = 10):
        a = self.args
        self.learner = npnet.Learner(model, loss, a.optimizer, lr=a.lr, bptt=a.bptt,
                                     clip=a.clip if a.clip > 0 else None, metric=metric,
                                     out_dir=self.dir, progress=not self.quiet, log_every=log_every,
                                     tensorboard=False)
        return self.learner

    def train(self, model, loss, metric, batches, eval_batches, higher_is_better: bool = True,
              log_every: int = 10):
        """Fit on ``batches(rng, num_batches)`` (a task generator) with early stopping on --target.

        Returns the Learner (its ``history`` holds the records also written to metrics.csv).
        """
        a = self.args
        learner = self.make_learner(model, loss, metric, log_every)
        per_pass = a.epoch_size if a.epochs else None
        stream = Stream(lambda rng: batches(rng, per_pass), seed_rng(a.seed, "train"))
        self.stopped_early = False

        def early_stop(lrn, rec):
            if a.target is None or a.no_early_stop or "eval_metric" not in rec:
                return False
            m = rec["eval_metric"]
            hit = m >= a.target if higher_is_better else m <= a.target
            if hit:
                self.stopped_early = True
            return hit

        total = a.epochs * a.epoch_size if a.epochs else a.steps

        def decay(lrn, rec):                               # lr_t = lr * lr_decay ** (t / total)
            if a.lr_decay != 1.0:
                lrn.optimizer.lr = a.lr * a.lr_decay ** (min(lrn.step, total) / total)
            return False

        kw = {"epochs": a.epochs} if a.epochs else {"steps": a.steps}
        self.train_t0 = time.perf_counter()
        learner.fit(stream, eval_batches=eval_batches, eval_every=a.eval_every, callbacks=[early_stop, decay], **kw)
        self.train_s = time.perf_counter() - self.train_t0
        return learner

    # -- the end --------------------------------------------------------------------
    def finish(self, model, headline: str, value: float, baseline: float, baseline_name: str,
               fmt: str = ".4f", **extra) -> dict:
        """Checkpoint, summary.json, and the one-line summary. Returns the summary dict."""
        step = self.learner.step if self.learner is not None else 0
        opt = self.learner.optimizer if self.learner is not None else None
        npnet.save_checkpoint(self.path("checkpoint.npz"), model, opt, step=step,
                              extra={"task": self.args.task, headline: float(value)})
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
