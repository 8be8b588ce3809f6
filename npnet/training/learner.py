"""Learner: the training loop around a SequenceRunner: data passes, evaluation, callbacks, checkpoints.

It drives ``runner.train_step`` over batches from Python iterables, records a history,
calls the callbacks and learning-rate schedulers of ``fit`` (npnet.training.callbacks,
npnet.optim.lr_scheduler), plots the curves, and saves/resumes runs bit for bit (model,
optimiser, step, RNG states, callback states).
The maths of a step lives in npnet.runner; this file holds only the bookkeeping.
"""
from __future__ import annotations

import copy
import itertools
import math
import os
import time

import numpy as np

from . import optim as optim_mod
from .callbacks import CSV_FIELDS, Callback, CSVLogger, LambdaCallback, TensorBoardLogger, tensorboard_available
from .checkpoint import load_checkpoint, save_checkpoint
from .lr_scheduler import LRScheduler, ReduceLROnPlateau
from ..layer import NpnetError, as_size
from ..plotting import plot_learning_curve
from ..losses import MSELoss, SoftmaxCrossEntropyLoss
from .runner import SequenceRunner
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


def _endless(data) -> bool:
    """Whether ``data`` says it never ends: an ``endless`` attribute that is True (npnet's task
    generators without ``num_batches``), or itertools.count, cycle, or repeat without times."""
    if getattr(data, "endless", False) is True or isinstance(data, (itertools.count, itertools.cycle)):
        return True
    if isinstance(data, itertools.repeat):
        try:
            data.__length_hint__()
        except TypeError:                                       # repeat(x): no length, no end
            return True
    return False


def _check_not_endless(data, what: str) -> None:
    if _endless(data):
        raise NpnetError(f"train_batches {what} an endless stream: fit would never finish a pass over it; "
                         "give fit(..., steps=n) (epochs count passes, and an endless pass has no end)")


def _has_len(data) -> bool:
    try:
        len(data)
    except TypeError:
        return False
    return True


def _pack(obj, arrays: dict, name: str):
    """A callback state made JSON-able: ndarrays go to ``arrays`` (by name), inf/nan are spelled out."""
    if isinstance(obj, np.ndarray):
        arrays[name] = obj
        return {"__ndarray__": name}
    if isinstance(obj, dict):
        return {str(k): _pack(v, arrays, f"{name}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, f"{name}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    return obj


def _unpack(obj, arrays: dict):
    """The inverse of :func:`_pack`."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return np.array(arrays[obj["__ndarray__"]], copy=True)
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


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
        A shorthand for the loggers: ``CSVLogger(out_dir/metrics.csv)`` (appended to
        across fits and resumes) and, when tensorboardX is installed (and ``tensorboard``),
        ``TensorBoardLogger(out_dir/tensorboard)``, called after the callbacks of ``fit``.
    progress : bool
        A tqdm progress bar (quiet with False, or when tqdm is missing).
    log_every : int
        Steps between history/CSV records (evaluations are always recorded).
    tensorboard : bool
        With ``out_dir``, also write TensorBoard events when tensorboardX is installed.
    runner_class : SequenceRunner or a subclass
        The runner to build; a subclass overriding ``compute_gradients`` trains a
        custom unroll through the same step, loop, callbacks and checkpoints.

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
    history : list of dicts, one per logged step, with keys from ``CSV_FIELDS``
        (``lr`` is the learning rate the step used);
    stop_training : bool, set by a callback to end the current ``fit`` after the record.
    """

    def __init__(self, model, loss, optimizer="adam", bptt=None, clip=5.0, clip_mode="norm",
                 stateful=False, metric=None, out_dir=None, progress=True, log_every=1,
                 lr=None, optimizer_kwargs=None, tensorboard=True, runner_class=SequenceRunner):
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
        as_size(log_every, "log_every")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        if not (isinstance(runner_class, type) and issubclass(runner_class, SequenceRunner)):
            raise NpnetError(f"runner_class must be SequenceRunner or a subclass, got {runner_class!r}")
        self.runner = runner_class(model, loss, optimizer, bptt=bptt, clip=clip, clip_mode=clip_mode,
                                   stateful=stateful)
        self.metric = metric
        self.out_dir = out_dir
        self.progress = bool(progress)
        self.log_every = int(log_every)
        self.tensorboard = bool(tensorboard)
        self.stop_training = False
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []
        self._pass = None            # iterator of the current data pass
        self._pass_pos = 0           # batches taken from it
        self._pass_rng = None        # the data Generator's state at the start of the pass
        self._pass_data = None       # the data object the pass belongs to
        self._resume = None          # data position restored by resume(), applied by fit()
        self._resume_callbacks = None  # callback states restored by resume(), loaded by fit()
        self._resume_lr = None
        self._hooks, self._schedulers, self._plateau, self._stateful = [], [], [], []
        self._bar, self._postfix = None, {}
        self._eval_batches = self._eval_every = None
        self._loggers = []           # the loggers out_dir stands for
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            self._loggers.append(CSVLogger(os.path.join(out_dir, "metrics.csv")))
            if self.tensorboard and tensorboard_available():
                self._loggers.append(TensorBoardLogger(os.path.join(out_dir, "tensorboard")))

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
        callbacks : list of :class:`npnet.Callback` objects, learning-rate schedulers from
            :mod:`npnet.optim.lr_scheduler` (stepped after every optimiser step;
            ``ReduceLROnPlateau`` after every evaluation, with the eval loss), and plain
            functions ``fn(learner, record)`` returning True to stop. A callback stops the
            training with ``learner.stop_training = True``.

        Returns ``self.history``.
        """
        epochs = self._check_fit_args(steps, epochs, eval_every)
        if steps is None:
            _check_not_endless(train_batches, "is")
        hooks = self._setup_callbacks(callbacks)
        target = None if steps is None else self.step + int(steps)
        passes_left = None if epochs is None else int(epochs)
        self._eval_batches, self._eval_every = eval_batches, eval_every
        self._start_data(train_batches)
        self.stop_training = False
        for cb in hooks:
            cb.on_train_begin(self)
        self._bar = self._progress_bar(train_batches, target, passes_left)
        try:
            self._run(train_batches, target, passes_left)
            if not self.stop_training and eval_batches is not None and eval_every is None and epochs is None:
                self._log({"step": self.step, "epoch": self.epoch}, evaluate=True)
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
        for cb in hooks:
            cb.on_train_end(self)
        return self.history

    @staticmethod
    def _check_fit_args(steps, epochs, eval_every):
        """Validate fit's arguments; return ``epochs`` (1 when neither steps nor epochs is given)."""
        if steps is not None and epochs is not None:
            raise NpnetError("give steps or epochs, not both")
        steps = None if steps is None else as_size(steps, "steps", 0)          # 2.5 steps: refused
        epochs = None if epochs is None else as_size(epochs, "epochs", 0)
        if eval_every is not None:
            as_size(eval_every, "eval_every (or None)")
        return 1 if steps is None and epochs is None else epochs

    def _setup_callbacks(self, callbacks) -> list:
        """Sort fit's callbacks into hooks and schedulers; restore their states after a resume.

        Returns the Callback objects to call (the user's, functions wrapped, then the
        loggers ``out_dir`` adds).
        """
        hooks, self._schedulers, self._plateau, self._stateful = [], [], [], []
        for cb in list(callbacks or []):
            if isinstance(cb, ReduceLROnPlateau):
                self._plateau.append(cb)
            elif isinstance(cb, LRScheduler):
                self._schedulers.append(cb)
            elif isinstance(cb, Callback):
                hooks.append(cb)
                if type(cb).state_dict is Callback.state_dict:       # keeps no state (a logger, ...)
                    continue
            elif callable(cb):
                hooks.append(LambdaCallback(cb))
                continue
            else:
                raise NpnetError(f"callbacks must be npnet.Callback objects, lr schedulers or functions "
                                 f"(learner, record) -> bool, got {type(cb).__name__}")
            self._stateful.append(cb)
        if self._resume_callbacks:                     # a resumed run: continue its callbacks
            self._load_callback_states(self._resume_callbacks)
        self._resume_callbacks = None
        self._hooks = hooks + self._loggers
        return self._hooks

    def _load_callback_states(self, states: list) -> None:
        """Load the saved states into fit's stateful callbacks (same classes, same order)."""
        saved = [s["class"] for s in states]
        given = [type(cb).__name__ for cb in self._stateful]
        if saved != given:
            raise NpnetError(f"the checkpoint holds the states of the callbacks {saved}, but fit got {given}; "
                             "pass callbacks of the same classes in the same order to continue the run")
        for cb, s in zip(self._stateful, states):
            cb.load_state_dict(s["state"])
        self.optimizer.lr = self._resume_lr           # a scheduler's constructor may have changed it

    def _start_data(self, train_batches) -> None:
        """Forget a pass over other data; apply the data position restored by resume()."""
        if self._pass_data is not train_batches:
            self._pass = None
        if self._resume is None:
            return
        restore, self._resume = self._resume, None
        if restore["open"]:
            self._new_pass(train_batches, restore)
        elif restore["rng"] is not None:                           # between passes: rewind only
            rng = self._data_rng(train_batches)
            if rng is None:
                raise NpnetError("the checkpoint holds a data Generator state but train_batches has no "
                                 "np.random.Generator attribute 'rng'; pass the same kind of Stream")
            _set_rng_state(rng, restore["rng"])

    def _run(self, train_batches, target, passes_left) -> None:
        """The loop: batches until the step target, the pass count, the data or a callback ends it."""
        while not self.stop_training:
            if target is not None and self.step >= target:
                break
            if passes_left is not None and passes_left <= 0:
                break
            if self._pass is None:
                if not self._new_pass(train_batches):
                    break
                if target is None:                                 # a Stream whose passes never end
                    _check_not_endless(self._pass, "yields")
            batch = self._next_batch(train_batches)
            if batch is not None:
                self._train_on(batch)
            elif passes_left is not None:                          # end of a pass
                passes_left -= 1
                if self._eval_batches is not None and self._eval_every is None:
                    self._log({"step": self.step, "epoch": self.epoch}, evaluate=True)

    def _train_on(self, batch) -> None:
        """One optimiser step, the schedulers' steps, and a record when one is due."""
        x, y, mask = _unpack_batch(batch)
        lr = float(self.optimizer.lr)                              # the lr this step uses
        t0 = time.perf_counter()
        value = self.runner.train_step(x, y, mask)
        seconds = time.perf_counter() - t0
        self.step += 1
        for sched in self._schedulers:
            sched.step()
        if self._bar is not None:
            self._bar.update(1)
            self._postfix["loss"] = f"{value:.4g}"
            self._bar.set_postfix(self._postfix, refresh=False)
        every = self._eval_every
        do_eval = self._eval_batches is not None and every is not None and self.step % int(every) == 0
        if self.step % self.log_every == 0 or do_eval:
            rec = {"step": self.step, "epoch": self.epoch, "loss": value,
                   "grad_norm": self.runner.grad_norms[-1], "lr": lr, "seconds": seconds}
            if self.metric is not None:
                rec["metric"] = float(self.metric(self.runner.last_output, y, self._loss_mask(mask)))
            self._log(rec, evaluate=do_eval)

    def _loss_mask(self, mask):
        return mask if getattr(self.model, "return_sequences", True) else None

    def _log(self, rec: dict, evaluate: bool) -> None:
        """Evaluate if asked, append the record, step ReduceLROnPlateau, call the callbacks."""
        if evaluate:
            ev = self.evaluate(self._eval_batches)
            rec["eval_loss"] = ev["loss"]
            if ev["metric"] is not None:
                rec["eval_metric"] = ev["metric"]
            for sched in self._plateau:
                sched.step(rec["eval_loss"])
            self._show_eval(rec)
        self.history.append(rec)
        for cb in self._hooks:
            cb.on_log(self, rec)

    def _show_eval(self, rec: dict) -> None:
        """Put the latest eval loss/metric beside the training loss on the progress bar."""
        for k in ("eval_loss", "eval_metric"):
            if k in rec:
                self._postfix[k] = f"{rec[k]:.4g}"
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=True)

    def _progress_bar(self, data, target, passes_left):
        """A tqdm bar whose total is the steps to go, when ``steps`` is given or the data has a len()."""
        self._postfix = {}
        if not self.progress:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        total = None
        if target is not None:
            total = target - self.step
        elif passes_left is not None and _has_len(data):
            open_pass = self._pass is not None and self._pass_data is data
            total = passes_left * len(data) - (self._pass_pos if open_pass else 0)
        desc = "train" if passes_left is None else f"train ({passes_left} epochs)"
        return tqdm(total=total, desc=desc, unit="step", leave=False)

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
        """Save a PNG of the loss (train, eval) and metric curves against the step (matplotlib Agg).

        The folder of ``path`` is created if missing. Raises NpnetError when nothing has been
        recorded yet (before the first ``fit``).
        """
        if not self.history:
            raise NpnetError("nothing to plot: the history is empty; call fit() first")
        plot_learning_curve(self.history, path, dpi=100)

    # -- checkpoints --------------------------------------------------------------
    def save(self, path) -> None:
        """Checkpoint the model, optimiser, step and everything a bit-exact resume needs.

        ``extra["learner"]`` holds: epoch, history, the runner's options, grad norms and
        carried state, the model's dropout Generator state, the data position (the
        data Generator's state at the start of the current pass and the batches taken),
        and the state of every Callback and scheduler of the current (or last) ``fit``
        (their arrays, e.g. EarlyStopping's best parameters, as ``extra/callbacks.<i>...``).
        """
        rng = getattr(self.model, "rng", None)
        arrays = {}
        callbacks = [{"class": type(cb).__name__, "state": _pack(cb.state_dict(), arrays, f"callbacks.{i}")}
                     for i, cb in enumerate(self._stateful)]
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
            "callbacks": callbacks,
        }}
        save_checkpoint(path, self.model, self.optimizer, self.step, extra, arrays=arrays)

    def _data_position(self) -> dict:
        """Where the data stand: the open pass's start state and batches taken, or the next pass's start."""
        if self._pass is not None:
            return {"open": True, "rng": self._pass_rng, "pos": self._pass_pos}
        rng = self._data_rng(self._pass_data) if self._pass_data is not None else None
        return {"open": False, "rng": _rng_state(rng) if rng is not None else None, "pos": 0}

    @classmethod
    def resume(cls, path, loss, metric=None, allow_nonfinite=False, **kwargs) -> "Learner":
        """Rebuild a Learner from :meth:`save`'s checkpoint; the next ``fit`` continues the run exactly.

        ``loss`` and ``metric`` are given again (they hold no state); the runner options
        default to the saved ones and ``kwargs`` (out_dir, progress, ...) are passed on.
        Call ``fit`` with the same kind of ``train_batches`` (e.g. a Stream built the
        same way): its Generator is rewound to the saved pass start and replayed to the
        saved position. Give that ``fit`` the same callbacks and schedulers (new objects
        of the same classes, in the same order, schedulers built on ``learner.optimizer``):
        their saved states are loaded into them, and the optimiser's lr is set back to the
        saved one, before the first step. NaN or inf in the saved parameters or optimiser
        state is refused (CheckpointError) unless ``allow_nonfinite``.
        """
        ck = load_checkpoint(path, allow_nonfinite=allow_nonfinite)
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
        learner._resume_callbacks = [{"class": c["class"], "state": _unpack(c["state"], ck.arrays)}
                                     for c in info.get("callbacks", [])]
        learner._resume_lr = float(ck.optimizer.lr)
        return learner
