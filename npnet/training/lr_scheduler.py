"""Learning-rate schedulers with PyTorch's names, arguments and formulas (``torch.optim.lr_scheduler``).

Each wraps an npnet optimiser (anything with a settable ``lr``) and changes ``optimizer.lr``
when ``step()`` is called. Importable as ``npnet.optim.lr_scheduler``. In
``Learner.fit(callbacks=[...])`` the Learner calls ``step()`` after every optimiser step
(``ReduceLROnPlateau.step(eval_loss)`` after every evaluation), so ``step_size``,
``T_max`` and ``total_iters`` count optimiser steps. Outside a Learner, call ``step()``
yourself, as in PyTorch.
"""
from __future__ import annotations

import math

from ..layer import NpnetError

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "LinearLR",
           "ReduceLROnPlateau"]


class LRScheduler:
    """Base class, as PyTorch's ``LRScheduler``: ``last_epoch`` counts ``step()`` calls.

    On construction (``last_epoch=-1``) the optimiser's current lr becomes the base lr
    (kept on the optimiser as ``initial_lr``, so a second scheduler on the same
    optimiser starts from the same base, as in PyTorch) and ``step()`` is called once,
    setting the lr for step 0. Subclasses give ``get_lr()``: the lr for ``last_epoch``,
    computed like PyTorch's chainable form from the optimiser's current lr where PyTorch
    does so (so several schedulers on one optimiser compose as in PyTorch).

    ``state_dict()`` holds every attribute but the optimiser; ``get_last_lr()`` is the
    list ``[lr]`` (npnet optimisers have one parameter group).
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not hasattr(optimizer, "lr"):
            raise NpnetError(f"a scheduler needs an optimiser with an lr attribute, got {type(optimizer).__name__}")
        if last_epoch != -1:
            raise NpnetError("only last_epoch=-1 is supported; restore a schedule with load_state_dict()")
        self.optimizer = optimizer
        if getattr(optimizer, "initial_lr", None) is None:
            optimizer.initial_lr = float(optimizer.lr)
        self.base_lrs = [float(optimizer.initial_lr)]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> list:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step (``last_epoch += 1``) and set the optimiser's lr."""
        self._step_count += 1
        self.last_epoch += 1
        lr = float(self.get_lr()[0])
        self.optimizer.lr = lr
        self._last_lr = [float(self.optimizer.lr)]

    def get_last_lr(self) -> list:
        """The lr set by the last ``step()``, as a one-element list (PyTorch: one per param group)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        unknown = sorted(set(state) - set(self.state_dict()))
        if unknown:
            raise NpnetError(f"{type(self).__name__}.load_state_dict: unknown keys {unknown}")
        self.__dict__.update({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in state.items()})

    def _lr(self) -> float:
        return float(self.optimizer.lr)


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps: lr_t = base_lr * gamma ** (t // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) != step_size or step_size < 1:
            raise NpnetError(f"step_size must be an int >= 1, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [self._lr()]
        return [self._lr() * self.gamma]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every step: lr_t = base_lr * gamma ** t."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [self._lr()]
        return [self._lr() * self.gamma]


class CosineAnnealingLR(LRScheduler):
    """Cosine from base_lr down to ``eta_min`` over ``T_max`` steps (SGDR without restarts)::

        lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    computed in PyTorch's recursive form; after ``T_max`` the lr rises again (the cosine
    continues), as in PyTorch.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if int(T_max) != T_max or T_max < 1:
            raise NpnetError(f"T_max must be an int >= 1, got {T_max!r}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, lo, lr = self.last_epoch, self.T_max, self.eta_min, self._lr()
        if t == 0:
            return [lr]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (self.base_lrs[0] - lo) * (1 - math.cos(math.pi / T)) / 2]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - lo) + lo]


class LambdaLR(LRScheduler):
    """lr_t = base_lr * lr_lambda(t), for any function ``lr_lambda(step) -> factor``.

    As in PyTorch, ``state_dict()`` does not contain the function (a lambda cannot be
    saved): build the scheduler with the same function before loading its state.
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        if not callable(lr_lambda):
            raise NpnetError(f"lr_lambda must be a function step -> factor, got {type(lr_lambda).__name__}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.base_lrs[0] * self.lr_lambda(self.last_epoch)]

    def state_dict(self):
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambda"}


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from ``start_factor`` to ``end_factor`` over ``total_iters`` steps::

        lr_t = base_lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)

    computed in PyTorch's recursive form; constant after ``total_iters``.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if not (0 < start_factor <= 1) or not (0 <= end_factor <= 1):
            raise NpnetError(f"start_factor must be in (0, 1] and end_factor in [0, 1], "
                             f"got {start_factor!r}, {end_factor!r}")
        if int(total_iters) != total_iters or total_iters < 1:
            raise NpnetError(f"total_iters must be an int >= 1, got {total_iters!r}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, s, e, n = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return [self._lr() * s]
        if t > n:
            return [self._lr()]
        return [self._lr() * (1.0 + (e - s) / (n * s + (t - 1) * (e - s)))]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when ``step(value)`` has not improved for ``patience`` calls.

    PyTorch's arguments and rules: ``mode`` "min"/"max"; improvement beyond ``threshold``,
    relative (``threshold_mode="rel"``: better than best * (1 -/+ threshold)) or absolute
    ("abs": best -/+ threshold); after a reduction, ``cooldown`` calls are ignored; the lr
    never goes below ``min_lr`` and changes smaller than ``eps`` are skipped. In a Learner,
    ``step(eval_loss)`` is called after every evaluation.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise NpnetError(f"mode must be 'min'/'max' and threshold_mode 'rel'/'abs', "
                             f"got {mode!r}, {threshold_mode!r}")
        if not 0 <= factor < 1:
            raise NpnetError(f"factor must be in [0, 1), got {factor!r}")
        if not hasattr(optimizer, "lr"):
            raise NpnetError(f"a scheduler needs an optimiser with an lr attribute, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps = int(cooldown), float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0
        self._last_lr = [float(optimizer.lr)]

    def _is_better(self, a: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            return a < (self.best * (1.0 - self.threshold) if rel else self.best - self.threshold)
        return a > (self.best * (1.0 + self.threshold) if rel else self.best + self.threshold)

    def step(self, metrics) -> None:
        """Record one value of the monitored quantity (e.g. the eval loss) and maybe reduce the lr."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [float(self.optimizer.lr)]
