"""Callbacks: objects the Learner calls during ``fit`` (Keras / PyTorch Lightning style).

A callback sees the training through three hooks and may stop it; its state goes into
the Learner's checkpoints so that a resumed run continues exactly. Here: the base class,
EarlyStopping, TimeLimit, and the two loggers (CSV file, TensorBoard events).
The learning-rate schedulers live in :mod:`npnet.optim.lr_scheduler`.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from ..layer import NpnetError
from ..tables import write_csv

__all__ = ["Callback", "EarlyStopping", "TimeLimit", "CSVLogger", "TensorBoardLogger", "CSV_FIELDS"]

CSV_FIELDS = ("step", "epoch", "loss", "metric", "grad_norm", "eval_loss", "eval_metric", "lr", "seconds")


class Callback:
    """Base class: override the hooks you need; every hook does nothing by default.

    Hooks (``learner`` is the :class:`npnet.Learner` running ``fit``)::

        on_train_begin(learner)        once, when fit() starts
        on_log(learner, record)        after every logged record (a dict: step, epoch, loss,
                                       grad_norm, lr, seconds, and metric / eval_loss /
                                       eval_metric when available)
        on_train_end(learner)          once, when fit() ends normally (also after a stop;
                                       not when an exception escapes)

    Set ``learner.stop_training = True`` in a hook to end ``fit`` after the current record.

    State: ``state_dict()`` returns what the callback must remember across a checkpoint
    (a dict of JSON-able values and numeric ndarrays); ``load_state_dict(d)`` puts it
    back. ``Learner.save`` stores the state of every Callback passed to ``fit``;
    after ``Learner.resume``, the next ``fit`` must get callbacks of the same classes in
    the same order and loads their states before training.
    """

    def on_train_begin(self, learner) -> None:
        pass

    def on_log(self, learner, record: dict) -> None:
        pass

    def on_train_end(self, learner) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        if d:
            raise NpnetError(f"{type(self).__name__} keeps no state but got {sorted(d)}")


class LambdaCallback(Callback):
    """Wrap a plain function ``fn(learner, record) -> True to stop`` (the pre-Callback style)."""

    def __init__(self, fn):
        self.fn = fn

    def on_log(self, learner, record):
        if self.fn(learner, record) is True:
            learner.stop_training = True


class EarlyStopping(Callback):
    """Stop when the monitored value has not improved for ``patience`` records that carry it.

    Parameters
    ----------
    monitor : str, a record key ("eval_loss", "eval_metric", "loss", ...)
    mode : "min" or "max", whether smaller or larger values are better
    patience : int >= 0, records with the monitored key and no improvement before stopping
        (0: stop at the first one that does not improve)
    min_delta : float >= 0, an improvement must beat the best by more than this
    restore_best : bool, at the end of fit put the parameters of the best record back
        into the model (a copy is kept at every improvement)

    Like Keras's ``EarlyStopping`` (``restore_best_weights``) and Lightning's: records
    without the key (training steps between evaluations) are ignored; the state (best
    value and step, records waited, the best parameters) carries over between ``fit``
    calls with the same object and through checkpoints. Raises :class:`NpnetError` at the
    end of fit if no record had the monitored key (pass ``eval_batches`` to ``fit``).

    Attributes: ``best``, ``best_step``, ``wait``, ``stopped_step`` (None until it stops).
    """

    def __init__(self, monitor="eval_loss", mode="min", patience=3, min_delta=0.0, restore_best=True):
        if mode not in ("min", "max"):
            raise NpnetError(f"mode must be 'min' or 'max', got {mode!r}")
        if int(patience) != patience or patience < 0:
            raise NpnetError(f"patience must be an int >= 0, got {patience!r}")
        if not (math.isfinite(float(min_delta)) and float(min_delta) >= 0):
            raise NpnetError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        self.monitor, self.mode = str(monitor), mode
        self.patience, self.min_delta, self.restore_best = int(patience), float(min_delta), bool(restore_best)
        self.best, self.best_step, self.wait, self.stopped_step = None, None, 0, None
        self.best_params = None
        self._seen, self._records = False, 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, learner):
        self._seen, self._records = False, 0

    def on_log(self, learner, record):
        self._records += 1
        if self.monitor not in record:
            return
        self._seen = True
        value = float(record[self.monitor])
        if self._improved(value):
            self.best, self.best_step, self.wait = value, int(record["step"]), 0
            if self.restore_best:
                self.best_params = {k: np.array(v, copy=True) for k, v in learner.model.params.items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_step = int(record["step"])
            learner.stop_training = True

    def on_train_end(self, learner):
        if not self._seen and self._records:
            raise NpnetError(f"EarlyStopping monitors {self.monitor!r} but no record of this fit had it; "
                             "pass eval_batches to fit (for eval_loss / eval_metric) or monitor another key")
        if self.restore_best and self.best_params is not None:
            for k, dst in learner.model.params.items():
                np.copyto(dst, self.best_params[k])

    def state_dict(self):
        d = {"best": self.best, "best_step": self.best_step, "wait": self.wait, "stopped_step": self.stopped_step}
        if self.best_params is not None:
            d["best_params"] = dict(self.best_params)
        return d

    def load_state_dict(self, d):
        self.best, self.best_step = d["best"], d["best_step"]
        self.wait, self.stopped_step = int(d["wait"]), d["stopped_step"]
        bp = d.get("best_params")
        self.best_params = None if bp is None else {k: np.array(v, copy=True) for k, v in bp.items()}


class TimeLimit(Callback):
    """Stop once the training time, summed over every ``fit`` with this object, reaches ``seconds``.

    The clock is checked at every logged record (so the run may overshoot by up to
    ``log_every`` steps). The elapsed time is saved in checkpoints: after a resume the
    limit counts the time already spent (like Lightning's ``Timer``).
    ``clock`` is a zero-argument function returning seconds (default ``time.monotonic``).
    """

    def __init__(self, seconds, clock=time.monotonic):
        if not (math.isfinite(float(seconds)) and float(seconds) > 0):
            raise NpnetError(f"seconds must be a finite number > 0, got {seconds!r}")
        self.seconds, self.clock = float(seconds), clock
        self.elapsed = 0.0                    # seconds of training before the current fit
        self._start = None

    def _now_elapsed(self) -> float:
        return self.elapsed + (self.clock() - self._start if self._start is not None else 0.0)

    def on_train_begin(self, learner):
        self._start = self.clock()

    def on_log(self, learner, record):
        if self._now_elapsed() >= self.seconds:
            learner.stop_training = True

    def on_train_end(self, learner):
        self.elapsed, self._start = self._now_elapsed(), None

    def state_dict(self):
        return {"elapsed": self._now_elapsed()}

    def load_state_dict(self, d):
        self.elapsed = float(d["elapsed"])
        if self._start is not None:
            self._start = self.clock()


class CSVLogger(Callback):
    """Append one row per logged record to the CSV file ``path`` (columns ``CSV_FIELDS``).

    The header is written when the file is new or empty; later fits and resumed runs
    append to the same file. Missing values are empty cells.
    """

    def __init__(self, path, fields=CSV_FIELDS):
        self.path, self.fields = os.fspath(path), tuple(fields)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise NpnetError(f"CSVLogger: the folder of {self.path!r} does not exist")

    def on_log(self, learner, record):
        write_csv(self.path, [record], self.fields, append=True)


class TensorBoardLogger(Callback):
    """Write every logged value as a TensorBoard scalar (``train/loss``, ``eval/eval_loss``, ...).

    Needs tensorboardX (``pip install tensorboardX``, or ``pip install npnet[tensorboard]``);
    without it the constructor raises :class:`NpnetError`. Events go to ``log_dir``; the
    writer is created at the first record and flushed at the end of every fit.
    """

    KEYS = ("loss", "metric", "grad_norm", "eval_loss", "eval_metric", "lr")

    def __init__(self, log_dir):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise NpnetError("TensorBoardLogger needs tensorboardX: pip install tensorboardX "
                             "(or pip install npnet[tensorboard])") from None
        self.log_dir, self._writer_cls, self.writer = os.fspath(log_dir), SummaryWriter, None

    def on_log(self, learner, record):
        if self.writer is None:
            self.writer = self._writer_cls(self.log_dir)
        for k in self.KEYS:
            if k in record:
                self.writer.add_scalar(("eval/" if k.startswith("eval_") else "train/") + k,
                                       record[k], record["step"])

    def on_train_end(self, learner):
        if self.writer is not None:
            self.writer.flush()


def tensorboard_available() -> bool:
    """Whether tensorboardX can be imported."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True
