"""Optimisers that update a model's parameter arrays in place: SGD, Adam, RMSprop, Adagrad.

Each follows the algorithm PyTorch documents for ``torch.optim`` (same defaults,
same order of operations), works on a dict name -> ndarray (``model.params``),
keeps its state in arrays of the parameter's dtype, and never rebinds a
parameter: layers read ``self.params`` on every call, so updates take effect.
It knows nothing of models, losses or checkpoint files (see :mod:`npnet.checkpoint`).
"""
from __future__ import annotations

import math

import numpy as np

from ..layer import NpnetError

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad", "get", "from_config"]


def _check_number(name: str, value, low: float, high: float | None = None,
                  low_open: bool = False, high_open: bool = True) -> float:
    """Return ``value`` as a float, or raise an NpnetError naming the allowed range.

    Strings and bools are refused (``float("0.01")`` would accept a string: a config
    file read without conversion must fail here, not train with a surprise).
    """
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise NpnetError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NpnetError(f"{name} must be a number, got {value!r}") from None
    lo_ok = v > low if low_open else v >= low
    hi_ok = True if high is None else (v < high if high_open else v <= high)
    if not (math.isfinite(v) and lo_ok and hi_ok):
        lo = f"{'(' if low_open else '['}{low}"
        hi = f"{high}{')' if high_open else ']'}" if high is not None else "inf)"
        raise NpnetError(f"{name} must be in {lo}, {hi}, got {value!r}")
    return v


class Optimizer:
    """Base class: the parameter dict, per-parameter state arrays, state (de)serialisation.

    Parameters
    ----------
    params : dict str -> ndarray
        The arrays to update (typically ``model.params``); each must be a
        writeable float32/float64 ndarray. The dict is kept by reference.
    lr : float > 0
        Learning rate; ``opt.lr`` may be reassigned between steps (schedules).

    State
    -----
    ``self.t`` counts the steps taken. ``self.state[kind][name]`` holds one
    array per parameter (same shape and dtype) for every ``kind`` listed in
    ``self.state_kinds``; ``state_dict()`` flattens them to ``"kind/name"``.
    """

    state_kinds: tuple = ()
    hyperparams: tuple = ("lr",)

    def __init__(self, params: dict, lr: float):
        if not isinstance(params, dict):
            raise NpnetError(f"params must be a dict name -> ndarray (e.g. model.params), "
                             f"got {type(params).__name__}")
        for name, p in params.items():
            if not isinstance(name, str):
                raise NpnetError(f"parameter names must be strings, got {name!r}")
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
                what = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
                raise NpnetError(f"parameter {name!r} must be a float32 or float64 ndarray, got {what}")
            if not p.flags.writeable:
                raise NpnetError(f"parameter {name!r} is read-only; optimisers update in place")
        self.params = params
        self.lr = lr
        self.t = 0
        self.state = {kind: {name: np.zeros_like(p) for name, p in params.items()}
                      for kind in self.state_kinds}

    # -- hyperparameters --------------------------------------------------
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        # A schedule may anneal to exactly 0 (which freezes the parameters), so the
        # setter accepts 0; the constructor insists on lr > 0 (see _validate).
        self._lr = _check_number("lr", value, 0.0)

    def get_config(self) -> dict:
        """JSON-able hyperparameters, with the class name under ``"class"``."""
        cfg = {"class": type(self).__name__}
        for k in self.hyperparams:
            v = getattr(self, k)
            cfg[k] = list(v) if isinstance(v, tuple) else v
        return cfg

    # -- stepping ---------------------------------------------------------
    def _check_grads(self, grads: dict) -> None:
        if not isinstance(grads, dict):
            raise NpnetError(f"grads must be a dict name -> ndarray, got {type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing = sorted(set(self.params) - set(grads))
            extra = sorted(set(grads) - set(self.params))
            raise NpnetError(f"grads must have the same keys as params; missing {missing}, unexpected {extra}")
        for name, p in self.params.items():
            g = grads[name]
            if not isinstance(g, np.ndarray) or g.shape != p.shape:
                shape = g.shape if isinstance(g, np.ndarray) else type(g).__name__
                raise NpnetError(f"gradient {name!r} must have shape {p.shape}, got {shape}")

    def _grad(self, name: str, g: np.ndarray, p: np.ndarray, wd: float) -> np.ndarray:
        """The gradient in the parameter's dtype, plus weight decay wd * p.

        Never modifies the caller's array: with weight decay a new array is made.
        """
        g = g.astype(p.dtype, copy=False)
        if wd != 0.0:
            g = g + wd * p                                   # new array; grads[name] untouched
        return g

    def step(self, grads: dict) -> None:
        """Update every parameter in place from the same-keyed ``grads`` dict."""
        self._check_grads(grads)
        self.t += 1
        for name, p in self.params.items():
            self._update(name, p, grads[name])

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    # -- state ------------------------------------------------------------
    def state_dict(self) -> dict:
        """Flat dict of numeric arrays: ``"t"`` (0-d int64) and ``"<kind>/<param name>"`` copies."""
        d = {"t": np.array(self.t, dtype=np.int64)}
        for kind in self.state_kinds:
            for name, a in self.state[kind].items():
                d[f"{kind}/{name}"] = a.copy()
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore the state written by :meth:`state_dict` (copied into the existing arrays).

        Every key must be present with the right shape; values are cast to the
        parameter's dtype. Raises a ValueError naming the offending key.
        """
        if not isinstance(d, dict):
            raise NpnetError(f"state must be a dict name -> ndarray, got {type(d).__name__}")
        expected = {"t"} | {f"{k}/{n}" for k in self.state_kinds for n in self.params}
        if set(d) != expected:
            missing = sorted(expected - set(d))
            extra = sorted(set(d) - expected)
            raise NpnetError(f"{type(self).__name__} state does not match its parameters; "
                             f"missing {missing}, unexpected {extra}")
        t = np.asarray(d["t"])
        if t.shape != () or t.dtype.kind not in "iu" or int(t) < 0:
            raise NpnetError(f"state 't' must be a 0-d non-negative integer array, got {t!r}")
        for kind in self.state_kinds:
            for name, dst in self.state[kind].items():
                src = np.asarray(d[f"{kind}/{name}"])
                if src.shape != dst.shape or src.dtype.kind != "f":
                    raise NpnetError(f"state {kind + '/' + name!r} must be a float array of shape "
                                     f"{dst.shape}, got {src.dtype} {src.shape}")
        for kind in self.state_kinds:                         # all checked: now copy
            for name, dst in self.state[kind].items():
                np.copyto(dst, d[f"{kind}/{name}"], casting="same_kind")
        self.t = int(t)

    def __repr__(self) -> str:
        cfg = self.get_config()
        cfg.pop("class")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Equations (PyTorch ``torch.optim.SGD``, dampening 0)::

        g   = grad + weight_decay * p
        buf = momentum * buf + g                  (buf starts at 0, so buf_1 = g)
        d   = g + momentum * buf   if nesterov
              buf                  if momentum > 0
              g                    otherwise
        p  -= lr * d

    State: ``buf`` (one array per parameter, zeros while momentum is 0).
    """

    state_kinds = ("buf",)
    hyperparams = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _check_number("momentum", momentum, 0.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise NpnetError("nesterov=True requires momentum > 0")
        super().__init__(params, _check_number("lr", lr, 0.0, low_open=True))

    def _update(self, name, p, g):
        g = self._grad(name, g, p, self.weight_decay)
        if self.momentum == 0.0:
            p -= self.lr * g
            return
        buf = self.state["buf"][name]
        buf *= self.momentum
        buf += g
        if self.nesterov:
            p -= self.lr * (g + self.momentum * buf)
        else:
            p -= self.lr * buf


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction and L2 weight decay added to the gradient.

    Equations (PyTorch ``torch.optim.Adam``, amsgrad off), step t = 1, 2, ...::

        g  = grad + weight_decay * p
        m  = beta1 * m + (1 - beta1) * g
        v  = beta2 * v + (1 - beta2) * g^2
        p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State: ``m`` and ``v`` per parameter, and the step count ``t``.
    """

    state_kinds = ("m", "v")
    hyperparams = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise NpnetError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (_check_number("betas[0]", b1, 0.0, 1.0), _check_number("betas[1]", b2, 0.0, 1.0))
        self.eps = _check_number("eps", eps, 0.0, low_open=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        super().__init__(params, _check_number("lr", lr, 0.0, low_open=True))

    def step(self, grads: dict) -> None:
        self._check_grads(grads)
        self.t += 1
        b1, b2 = self.betas
        self._step_size = self.lr / (1.0 - b1 ** self.t)
        self._bc2_sqrt = math.sqrt(1.0 - b2 ** self.t)
        for name, p in self.params.items():
            self._update(name, p, grads[name])

    def _update(self, name, p, g):
        g = self._grad(name, g, p, self.weight_decay)
        b1, b2 = self.betas
        m, v = self.state["m"][name], self.state["v"][name]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        denom = np.sqrt(v)                                   # same shape/dtype as p
        denom /= self._bc2_sqrt
        denom += self.eps
        np.divide(m, denom, out=denom)
        denom *= self._step_size
        p -= denom


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e) with optional momentum and L2 weight decay.

    Equations (PyTorch ``torch.optim.RMSprop``, centered off)::

        g   = grad + weight_decay * p
        v   = alpha * v + (1 - alpha) * g^2
        buf = momentum * buf + g / (sqrt(v) + eps);  p -= lr * buf    if momentum > 0
        p  -= lr * g / (sqrt(v) + eps)                                 otherwise

    State: ``v`` (the running mean of squares) and ``buf`` per parameter.
    """

    state_kinds = ("v", "buf")
    hyperparams = ("lr", "alpha", "eps", "momentum", "weight_decay")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        self.alpha = _check_number("alpha", alpha, 0.0, 1.0)
        self.eps = _check_number("eps", eps, 0.0, low_open=True)
        self.momentum = _check_number("momentum", momentum, 0.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        super().__init__(params, _check_number("lr", lr, 0.0, low_open=True))

    def _update(self, name, p, g):
        g = self._grad(name, g, p, self.weight_decay)
        v = self.state["v"][name]
        v *= self.alpha
        v += (1.0 - self.alpha) * (g * g)
        d = np.sqrt(v)
        d += self.eps
        np.divide(g, d, out=d)                               # g / (sqrt(v) + eps)
        if self.momentum > 0.0:
            buf = self.state["buf"][name]
            buf *= self.momentum
            buf += d
            d = buf
        p -= self.lr * d


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) with L2 weight decay.

    Equations (PyTorch ``torch.optim.Adagrad``, lr_decay 0, initial accumulator 0)::

        g    = grad + weight_decay * p
        sum += g^2
        p   -= lr * g / (sqrt(sum) + eps)

    State: ``sum`` per parameter.
    """

    state_kinds = ("sum",)
    hyperparams = ("lr", "eps", "weight_decay")

    def __init__(self, params, lr=1e-2, eps=1e-10, weight_decay=0.0):
        self.eps = _check_number("eps", eps, 0.0, low_open=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        super().__init__(params, _check_number("lr", lr, 0.0, low_open=True))

    def _update(self, name, p, g):
        g = self._grad(name, g, p, self.weight_decay)
        s = self.state["sum"][name]
        s += g * g
        d = np.sqrt(s)
        d += self.eps
        np.divide(g, d, out=d)
        p -= self.lr * d


_CLASSES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(name: str, params: dict, **kwargs) -> Optimizer:
    """Build an optimiser by name ("sgd", "adam", "rmsprop", "adagrad"; case-insensitive)."""
    if isinstance(name, Optimizer):
        raise NpnetError("optim.get expects a name; got an optimiser instance")
    key = str(name).lower()
    if key not in _CLASSES:
        raise NpnetError(f"unknown optimiser {name!r}; expected one of {sorted(_CLASSES)}")
    return _CLASSES[key](params, **kwargs)


def from_config(params: dict, config: dict) -> Optimizer:
    """Rebuild an optimiser from ``get_config()`` output (state is restored separately)."""
    if not isinstance(config, dict) or "class" not in config:
        raise NpnetError(f"optimiser config must be a dict with a 'class' key, got {config!r}")
    kwargs = {k: v for k, v in config.items() if k != "class"}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    # A schedule may have annealed lr to exactly 0 (the setter allows it, the constructor
    # does not): build with lr=1 and set the saved 0 afterwards.
    zero_lr = isinstance(kwargs.get("lr"), (int, float)) and not isinstance(kwargs["lr"], bool) \
        and kwargs["lr"] == 0
    if zero_lr:
        kwargs["lr"] = 1.0
    try:
        opt = get(config["class"], params, **kwargs)
    except TypeError as exc:                                 # unknown hyperparameter name
        raise NpnetError(f"bad config for optimiser {config['class']!r}: {exc}") from None
    if zero_lr:
        opt.lr = 0.0
    return opt
