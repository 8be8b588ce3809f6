"""Learner: the training loop around a SequenceRunner: data passes, evaluation, logging, checkpoints.

It drives ``runner.train_step`` over batches from Python iterables, records a history,
writes metrics.csv (and TensorBoard events when tensorboardX is installed), plots the
curves, and saves/resumes runs bit for bit (model, optimiser, step, RNG states).
The maths of a step lives in npnet.runner; this file holds only the bookkeeping.
"""
from __future__ import annotations

import copy
import csv
import math
import os
import time

import numpy as np

from . import optim as optim_mod
from .checkpoint import load_checkpoint, save_checkpoint
from ..layer import NpnetError
from ..losses import MSELoss, SoftmaxCrossEntropyLoss
from .runner import SequenceRunner

CSV_FIELDS = ("step", "epoch", "loss", "metric", "grad_norm", "eval_loss", "eval_metric", "lr", "seconds")
_LOSSES = {"mse": MSELoss, "ce": SoftmaxCrossEntropyLoss, "cross_entropy": SoftmaxCrossEntropyLoss}


# -- metrics ---------------------------------------------------------------------
def accuracy(pred, y, mask=None) -> float:
    """Fraction of scored positions whose argmax over the last axis equals the integer target."""
    hit = np.argmax(pred, axis=-1) == np.asarray(y)
    return float(hit[mask].mean() if mask is not None else hit.mean())


def mse(pred, y, mask=None) -> float:
    """Mean squared error over the scored positions (and the last axis)."""
    sq = np.mean((np.asarray(pred, np.float64) - y) ** 2, axis=-1)
    return float(sq[mask].mean() if mask is not None else sq.mean())


_METRICS = {"accuracy": accuracy, "mse": mse}


def _unpack_batch(batch):
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise NpnetError(f"a batch must be a tuple (x, y) or (x, y, mask), got {type(batch).__name__}"
                         + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
    return (batch[0], batch[1], batch[2] if len(batch) == 3 else None)


def _rng_state(rng) -> dict:
    return copy.deepcopy(rng.bit_generator.state)


def _set_rng_state(rng, state: dict) -> None:
    if type(rng.bit_generator).__name__ != state["bit_generator"]:
        raise NpnetError(f"cannot restore a {state['bit_generator']} state into a "
                         f"{type(rng.bit_generator).__name__} generator")
    rng.bit_generator.state = state


def _state_to_json(state):
    if state is None:
        return None
    return [[a.tolist() for a in s] if isinstance(s, tuple) else s.tolist() for s in state]


def _state_from_json(obj, dtype):
    if obj is None:
        return None
    out = []
    for s in obj:
        a = np.asarray(s, dtype=dtype)
        out.append(tuple(np.asarray(p, dtype=dtype) for p in s) if a.ndim == 3 else a)
    return out


class Learner:
    """Fit a sequence model on batches of (x, y) or (x, y, mask).

    Parameters
    ----------
    model : SequenceModel
    loss : a loss object, or "mse" / "ce" (built in the model's dtype)
    optimizer : an optimiser over ``model.params``, or a name for :func:`npnet.optim.get`
        ("adam", "sgd", ...), built with ``lr`` (and ``optimizer_kwargs``).
    bptt, clip, clip_mode, stateful : passed to :class:`npnet.runner.SequenceRunner`.
        In stateful mode the carried state is reset at the start of every data pass.
    metric : callable(pred, y, mask) -> float, "accuracy", "mse" or None
    out_dir : str or None
        Folder for metrics.csv (appended to across fits and resumes) and, when
        tensorboardX is installed, TensorBoard event files in ``out_dir/tensorboard``.
    progress : bool
        A tqdm progress bar (quiet with False, or when tqdm is missing).
    log_every : int
        Steps between history/CSV records (evaluations are always recorded).

    Data
    ----
    ``train_batches`` may be a :class:`npnet.data.Stream` (a seeded generator factory:
    its Generator's state is checkpointed, so resumed runs are bit-identical), any
    re-iterable (a list: the same order every pass), a zero-argument callable returning
    an iterator, or a one-shot iterator (a single pass). One pass = one epoch.
    Evaluation batches should be a fixed collection (e.g. ``npnet.data.take(stream, n)``).

    Attributes
    ----------
    runner : the SequenceRunner; step : optimiser steps so far; epoch : passes completed;
    history : list of dicts, one per logged step, with keys from ``CSV_FIELDS``.
    """

    def __init__(self, model, loss, optimizer="adam", bptt=None, clip=5.0, clip_mode="norm",
                 stateful=False, metric=None, out_dir=None, progress=True, log_every=1,
                 lr=None, optimizer_kwargs=None, tensorboard=True):
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise NpnetError(f"loss must be a loss object or one of {sorted(_LOSSES)}, got {loss!r}")
            loss = _LOSSES[loss](dtype=model.dtype)
        if isinstance(optimizer, str):
            kw = dict(optimizer_kwargs or {})
            if lr is not None:
                kw["lr"] = lr
            optimizer = optim_mod.get(optimizer, model.params, **kw)
        elif lr is not None or optimizer_kwargs:
            raise NpnetError("lr and optimizer_kwargs apply only when optimizer is given by name")
        if isinstance(metric, str):
            if metric not in _METRICS:
                raise NpnetError(f"metric must be a callable or one of {sorted(_METRICS)}, got {metric!r}")
            metric = _METRICS[metric]
        if int(log_every) < 1:
            raise NpnetError(f"log_every must be >= 1, got {log_every}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.runner = SequenceRunner(model, loss, optimizer, bptt=bptt, clip=clip, clip_mode=clip_mode,
                                     stateful=stateful)
        self.metric = metric
        self.out_dir = out_dir
        self.progress = bool(progress)
        self.log_every = int(log_every)
        self.tensorboard = bool(tensorboard)
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self._pass = None            # iterator of the current data pass
        self._pass_pos = 0           # batches taken from it
        self._pass_rng = None        # the data Generator's state at the start of the pass
        self._pass_data = None       # the data object the pass belongs to
        self._resume = None          # data position restored by resume(), applied by fit()
        self._tb = None
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)

    # -- data passes ---------------------------------------------------------
    @staticmethod
    def _data_rng(data):
        rng = getattr(data, "rng", None)
        return rng if isinstance(rng, np.random.Generator) else None

    def _new_pass(self, data, restore=None):
        """Start a pass over ``data``; with ``restore`` rewind to a saved position first."""
        rng = self._data_rng(data)
        if restore is not None and restore.get("rng") is not None:
            if rng is None:
                raise NpnetError("the checkpoint holds a data Generator state but train_batches has no "
                                 "np.random.Generator attribute 'rng'; pass the same kind of Stream")
            _set_rng_state(rng, restore["rng"])
        self._pass_rng = _rng_state(rng) if rng is not None else None
        if callable(data) and not hasattr(data, "__iter__"):
            it = iter(data())
        else:
            it = iter(data)
            if it is data and self._pass_data is data and restore is None:
                return False                                     # a one-shot iterator is spent
        self._pass, self._pass_pos, self._pass_data = it, 0, data
        if restore is not None:                                  # an open pass: no state reset
            for _ in range(restore["pos"]):                      # replay to the saved position
                next(it)
            self._pass_pos = restore["pos"]
        elif self.runner.stateful:
            self.runner.reset_state()
        return True

    def _next_batch(self, data):
        """The next batch, or None at the end of a pass (then epoch += 1 and the pass is closed)."""
        try:
            batch = next(self._pass)
        except StopIteration:
            self._pass = None
            if self._pass_pos == 0:
                raise NpnetError("train_batches yielded no batch in a whole pass") from None
            self.epoch += 1
            return None
        self._pass_pos += 1
        return batch

    # -- training ---------------------------------------------------------------
    def fit(self, train_batches, steps=None, epochs=None, eval_batches=None, eval_every=None,
            callbacks=None):
        """Train for ``steps`` more optimiser steps or ``epochs`` more passes (default: 1 epoch).

        eval_batches : fixed collection of batches evaluated every ``eval_every`` steps, or
            (eval_every=None) once at the end of the fit (and, with ``epochs``, after every pass).
        callbacks : list of callable(learner, record) called after every logged record;
            returning True stops training.

        Returns ``self.history``.
        """
        if steps is not None and epochs is not None:
            raise NpnetError("give steps or epochs, not both")
        if steps is None and epochs is None:
            epochs = 1
        if (steps is not None and int(steps) < 0) or (epochs is not None and int(epochs) < 0):
            raise NpnetError(f"steps and epochs must be >= 0, got steps={steps}, epochs={epochs}")
        if eval_every is not None and int(eval_every) < 1:
            raise NpnetError(f"eval_every must be >= 1 or None, got {eval_every}")
        callbacks = list(callbacks or [])
        target = None if steps is None else self.step + int(steps)
        passes_left = None if epochs is None else int(epochs)
        if self._pass_data is not train_batches:
            self._pass = None
        if self._resume is not None:
            restore, self._resume = self._resume, None
            if restore["open"]:
                self._new_pass(train_batches, restore)
            elif restore["rng"] is not None:                       # between passes: rewind only
                rng = self._data_rng(train_batches)
                if rng is None:
                    raise NpnetError("the checkpoint holds a data Generator state but train_batches has no "
                                     "np.random.Generator attribute 'rng'; pass the same kind of Stream")
                _set_rng_state(rng, restore["rng"])
        bar = self._progress_bar(target, passes_left)
        stop = False
        try:
            while not stop:
                if target is not None and self.step >= target:
                    break
                if passes_left is not None and passes_left <= 0:
                    break
                if self._pass is None and not self._new_pass(train_batches):
                    break
                batch = self._next_batch(train_batches)
                if batch is None:                                  # end of a pass
                    if passes_left is not None:
                        passes_left -= 1
                        if eval_batches is not None and eval_every is None:
                            stop = self._log({"step": self.step, "epoch": self.epoch},
                                             eval_batches, callbacks)
                    continue
                x, y, mask = _unpack_batch(batch)
                t0 = time.perf_counter()
                value = self.runner.train_step(x, y, mask)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}", refresh=False)
                do_eval = eval_batches is not None and eval_every is not None and self.step % int(eval_every) == 0
                if self.step % self.log_every == 0 or do_eval:
                    rec = {"step": self.step, "epoch": self.epoch, "loss": value,
                           "grad_norm": self.runner.grad_norms[-1], "lr": float(self.optimizer.lr),
                           "seconds": time.perf_counter() - t0}
                    if self.metric is not None:
                        rec["metric"] = float(self.metric(self.runner.last_output, y, self._loss_mask(mask)))
                    stop = self._log(rec, eval_batches if do_eval else None, callbacks)
            if (not stop and eval_batches is not None and eval_every is None and epochs is None):
                self._log({"step": self.step, "epoch": self.epoch}, eval_batches, callbacks)
        finally:
            if bar is not None:
                bar.close()
            if self._tb is not None:
                self._tb.flush()
        return self.history

    def _loss_mask(self, mask):
        return mask if getattr(self.model, "return_sequences", True) else None

    def _log(self, rec: dict, eval_batches, callbacks) -> bool:
        if eval_batches is not None:
            ev = self.evaluate(eval_batches)
            rec["eval_loss"] = ev["loss"]
            if ev["metric"] is not None:
                rec["eval_metric"] = ev["metric"]
        self.history.append(rec)
        self._write(rec)
        return any(cb(self, rec) is True for cb in callbacks)

    def _progress_bar(self, target, passes_left):
        if not self.progress:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        total = None if target is None else target - self.step
        return tqdm(total=total, desc="train" if passes_left is None else f"train ({passes_left} epochs)",
                    unit="step", leave=False)

    # -- logging ----------------------------------------------------------------
    def _write(self, rec: dict) -> None:
        if self.out_dir is None:
            return
        path = os.path.join(self.out_dir, "metrics.csv")
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: rec.get(k, "") for k in CSV_FIELDS})
        tb = self._writer()
        if tb is not None:
            for k in ("loss", "metric", "grad_norm", "eval_loss", "eval_metric", "lr"):
                if k in rec:
                    tb.add_scalar(("eval/" if k.startswith("eval_") else "train/") + k, rec[k], rec["step"])

    def _writer(self):
        """A tensorboardX SummaryWriter in out_dir/tensorboard, or None when not installed."""
        if self._tb is None and self.tensorboard and self.out_dir is not None:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                self.tensorboard = False
                return None
            self._tb = SummaryWriter(os.path.join(self.out_dir, "tensorboard"))
        return self._tb

    # -- evaluation and inference -------------------------------------------------
    def evaluate(self, batches) -> dict:
        """Mean loss (and metric) over ``batches``, weighted by scored positions. Eval mode, no updates.

        Returns ``{"loss": float, "metric": float or None}``.
        """
        tot_loss = tot_metric = 0.0
        count = 0
        for batch in batches:
            x, y, mask = _unpack_batch(batch)
            value = self.runner.eval_step(x, y, mask)
            lm = self._loss_mask(mask)
            out = self.runner.last_output
            n = int(np.count_nonzero(lm)) if lm is not None else int(np.prod(out.shape[:-1]))
            tot_loss += n * value
            if self.metric is not None:
                tot_metric += n * float(self.metric(out, y, lm))
            count += n
        if count == 0:
            raise NpnetError("evaluate() got no batches (or nothing scored)")
        return {"loss": tot_loss / count, "metric": tot_metric / count if self.metric is not None else None}

    def predict(self, x, mask=None, state=None):
        """Model output for ``x`` in evaluation mode (no dropout), without caches left behind."""
        was = getattr(self.model, "training", False)
        self.model.eval()
        try:
            out, _ = self.model.fprop(x, state, mask)
        finally:
            if was:
                self.model.train()
        self.model.clear_cache()
        return out

    def plot(self, path) -> None:
        """Save a PNG of the loss (train, eval) and metric curves against the step (matplotlib Agg)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        has_metric = any("metric" in r or "eval_metric" in r for r in self.history)
        fig = Figure(figsize=(10 if has_metric else 5, 3.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2 if has_metric else 1, squeeze=False)[0]
        panels = [("loss", axes[0])] + ([("metric", axes[1])] if has_metric else [])
        for key, ax in panels:
            for k, label in ((key, "train"), ("eval_" + key, "eval")):
                pts = [(r["step"], r[k]) for r in self.history if k in r]
                if pts:
                    s, v = zip(*pts)
                    ax.plot(s, v, "-" if label == "train" else "o-", label=label, lw=1)
            ax.set_xlabel("step")
            ax.set_ylabel(key)
            if key == "loss" and any(r.get("loss", 1) > 0 for r in self.history):
                ax.set_yscale("log")
            ax.legend(loc="best")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)

    # -- checkpoints --------------------------------------------------------------
    def save(self, path) -> None:
        """Checkpoint the model, optimiser, step and everything a bit-exact resume needs.

        ``extra["learner"]`` holds: epoch, history, the runner's options, grad norms and
        carried state, the model's dropout Generator state, and the data position (the
        data Generator's state at the start of the current pass and the batches taken).
        """
        rng = getattr(self.model, "rng", None)
        extra = {"learner": {
            "epoch": self.epoch,
            "history": [{k: v for k, v in r.items() if not (isinstance(v, float) and not math.isfinite(v))}
                        for r in self.history],
            "runner": {"bptt": self.runner.bptt, "clip": self.runner.clip, "clip_mode": self.runner.clip_mode,
                       "stateful": self.runner.stateful, "steps": self.runner.steps,
                       "grad_norms": [g if math.isfinite(g) else None for g in self.runner.grad_norms],
                       "state": _state_to_json(self.runner.state)},
            "model_rng": _rng_state(rng) if isinstance(rng, np.random.Generator) else None,
            "data": self._data_position(),
        }}
        save_checkpoint(path, self.model, self.optimizer, self.step, extra)

    def _data_position(self) -> dict:
        """Where the data stand: the open pass's start state and batches taken, or the next pass's start."""
        if self._pass is not None:
            return {"open": True, "rng": self._pass_rng, "pos": self._pass_pos}
        rng = self._data_rng(self._pass_data) if self._pass_data is not None else None
        return {"open": False, "rng": _rng_state(rng) if rng is not None else None, "pos": 0}

    @classmethod
    def resume(cls, path, loss, metric=None, **kwargs) -> "Learner":
        """Rebuild a Learner from :meth:`save`'s checkpoint; the next ``fit`` continues the run exactly.

        ``loss`` and ``metric`` are given again (they hold no state); the runner options
        default to the saved ones and ``kwargs`` (out_dir, progress, ...) are passed on.
        Call ``fit`` with the same kind of ``train_batches`` (e.g. a Stream built the
        same way): its Generator is rewound to the saved pass start and replayed to the
        saved position.
        """
        ck = load_checkpoint(path)
        info = (ck.extra or {}).get("learner")
        if info is None:
            raise NpnetError(f"{path!r} is not a Learner checkpoint (no extra['learner'])")
        r = info["runner"]
        for k in ("bptt", "clip", "clip_mode", "stateful"):
            kwargs.setdefault(k, r[k])
        learner = cls(ck.model, loss, ck.optimizer, metric=metric, **kwargs)
        learner.step, learner.epoch = int(ck.step), int(info["epoch"])
        learner.history = [dict(h) for h in info["history"]]
        learner.runner.steps = int(r["steps"])
        learner.runner.grad_norms = [float("nan") if g is None else g for g in r["grad_norms"]]
        learner.runner.state = _state_from_json(r["state"], ck.model.dtype)
        if info["model_rng"] is not None:
            _set_rng_state(ck.model.rng, info["model_rng"])
        learner._resume = dict(info["data"])
        return learner
