"""SequenceModel: read-in layer, a stack of recurrent cells (optionally bidirectional), read-out layer.

The model composes existing layers and routes gradients between them; it owns no
weights of its own. It follows the cell contract (fprop/bprop over whole sequences,
step for closed loops), so the gradient checker, the runner and checkpoints use it
like any cell. It knows nothing about losses, optimisers or training loops.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer, NpnetError, ShapeError, as_size, check_input
from .linear import LinearLayer
from .cells.base import as_dropout_rate, dropout_multiplier
from .cells.rnn import BasicRNNCell
from .sequential import LinkedParams, check_layer, layer_config, layer_from_config

CELL_TYPES = ("lstm", "gru", "rnn", "irnn")
REVERSE_READ_OUTS = ("final", "last_step")


def make_cell(kind: str, input_size: int, hidden_size: int, dtype, rng, **kwargs):
    """Build one cell by name: "lstm", "gru", "rnn" (tanh) or "irnn" (ReLU, identity W_h)."""
    if kind == "lstm":
        from .cells.lstm import LSTMCell
        return LSTMCell(input_size, hidden_size, dtype=dtype, rng=rng, **kwargs)
    if kind == "gru":
        from .cells.gru import GRUCell
        return GRUCell(input_size, hidden_size, dtype=dtype, rng=rng, **kwargs)
    if kind == "rnn":
        return BasicRNNCell(input_size, hidden_size, dtype=dtype, rng=rng, **kwargs)
    if kind == "irnn":
        kw = {"nonlinearity": "relu", "recurrent_init": "identity", **kwargs}
        return BasicRNNCell(input_size, hidden_size, dtype=dtype, rng=rng, **kw)
    raise NpnetError(f"cell must be one of {CELL_TYPES} (or a list of them), got {kind!r}")


_LinkedParams = LinkedParams                 # the old private name


def reverse_index(mask: np.ndarray | None, B: int, T: int) -> np.ndarray:
    """Per-row permutation P (B, T) that reverses each row's real steps among themselves.

    Without a mask this is t -> T-1-t. With a mask whose real steps sit at
    p_0 < ... < p_{n-1}, P maps p_k -> p_{n-1-k} and leaves padded steps in
    place (for a prefix mask: reverse the valid prefix, keep the padding at the
    end, as PyTorch packed sequences). P is an involution, so the same gather
    undoes it and is its own adjoint: y = x[P]  <=>  dx = dy[P].
    """
    if mask is None:
        return np.broadcast_to(np.arange(T - 1, -1, -1), (B, T))
    order = np.argsort(~mask, axis=1, kind="stable")          # (B, T) real steps first, in time order
    n = mask.sum(axis=1, keepdims=True)                        # (B, 1) real steps per row
    k = np.arange(T)[None, :]                                  # rank within the row
    src = np.where(k < n, n - 1 - k, k)                        # (B, T) rank k takes rank n-1-k
    P = np.empty((B, T), dtype=np.intp)                        # (B, T)
    np.put_along_axis(P, order, np.take_along_axis(order, src, axis=1), axis=1)
    return P


def _gather_time(a: np.ndarray, P: np.ndarray) -> np.ndarray:
    """a (B, T, F) -> a[b, P[b, t]] (B, T, F)."""
    return np.take_along_axis(a, P[:, :, None], axis=1)


class SequenceModel(Layer):
    """read-in -> L recurrent layers (each optionally bidirectional) -> read-out.

    Equations (x (B, T, D) or (B, T, ...); h^0 = x, x W_in + b_in, or read_in(x_t) at every step)::

        forward:   h^l, s^l_T = cell_l(h^{l-1}, s^l_0)                 (B, T, H_l)
                   bidirectional: h^l = [cell_l(h^{l-1}) , R cell_l'(R h^{l-1})]   (B, T, 2 H_l)
                   with R the per-row reversal of the real steps (see reverse_index)
                   input_dropout (training): h^0 <- h^0 * v / (1 - p_in), v ~ Bernoulli(1 - p_in) of
                   shape (B, 1, F): one mask per sequence, the same at every step (Keras ``dropout``)
                   dropout (training, l < L): h^l <- h^l * u^l / (1 - p),  u^l ~ Bernoulli(1 - p)
                   recurrent_dropout (training): inside each cell, see RecurrentCell
                   output_dropout (training): the read-out's input (B, T, F) or (B, F) times
                   w / (1 - p_out), w ~ Bernoulli(1 - p_out) per element
                   y = h^L W_out + b_out           at every step (return_sequences=True)
                   y_b = h^L_{b, t_b} W_out + b_out with t_b the last real step of row b
                   bidirectional, reverse_read_out="final" (the default):
                   y_b = [fwd^L_{b, t_b}, rev^L_{b, f_b}] W_out + b_out with f_b the first real
                   step of row b: the reverse cell's final state, after reading the whole row
        backward:  the same chain in reverse: dh^L = dy W_out^T (scattered to t_b; the reverse
                   half to f_b with reverse_read_out="final"),
                   dh^L *= w / (1 - p_out), dh^l *= u^l / (1 - p), split [dh_fwd, dh_bwd], dh_bwd -> R dh_bwd,
                   each cell's bprop gives dh^{l-1} (summed over directions), and
                   dh^0 *= v / (1 - p_in), read-in: dx = dh^0 W_in^T. Parameter gradients add into grads.

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int or list of int (H per layer)
    num_layers : int (L)
    cell : str or list of str
        "lstm", "gru", "rnn" (tanh BasicRNNCell) or "irnn" (ReLU BasicRNNCell with
        identity W_h); a list gives one type per layer (a mixed stack).
    output_size : int or None (V)
        Read-out LinearLayer size; None: the top layer's outputs are returned.
    read_in : int, a layer, or None
        int R: an input LinearLayer (D -> R) applied before the first cell. A layer object
        (anything with fprop/bprop/params/grads, e.g. an :class:`npnet.Sequential` of
        Conv2D, MaxPool2D, ReLU, Flatten and LinearLayer): applied to every time step at
        once, x (B, T, ...) reshaped to (B*T, ...), its output (B*T, F) reshaped to
        (B, T, F); its weights are shared over time, so their gradients add up over all
        B*T inputs. With a layer, ``input_size`` is F, the width the read-in yields (x's
        per-step shape is the layer's business), and the layer's dtype must be the model's.
        A layer with ``takes_indices = True`` (``npnet.Embedding(V, E)``, input_size=E) takes x as
        (B, T) integer ids, uncast. None: no read-in.
    return_sequences : bool
        True: outputs at every step (B, T, V). False: only at each row's last real
        step (B, V) (the last True of its mask row, or T-1 without a mask).
    bidirectional : bool
        Every layer also runs a reverse-direction cell over each row's real steps;
        the two outputs are concatenated (2 H feeds the next layer).
    reverse_read_out : "final" or "last_step"
        Bidirectional with ``return_sequences=False`` only: which reverse-direction output the
        read-out sees. "final" (default): the reverse cell's final state, its output at each
        row's first real step, after it has read the whole row (Keras ``Bidirectional``,
        PyTorch ``h_n[-1]``); the forward half is the output at the last real step. "last_step":
        both halves at the last real step, where the reverse cell has read only that one step
        (npnet's only read-out before this option; a saved config without the key loads as "last_step", so a
        checkpoint keeps the read-out it was trained with).
    dropout : float in [0, 1)
        Inverted dropout on the outputs of every layer but the last, in training mode
        only, drawn from the model's ``rng`` (PyTorch's ``dropout`` of nn.LSTM).
    input_dropout : float in [0, 1)
        Dropout on the first recurrent layer's inputs (after the read-in: the features the cells
        read, e.g. an Embedding's vectors), training mode only, ONE mask (B, 1, F) per sequence
        shared by all steps and both directions, as Keras ``LSTM(dropout=p)``.
    output_dropout : float in [0, 1)
        Dropout on the top recurrent layer's outputs before the read-out (the picked (B, F) with
        ``return_sequences=False``), training mode only, per element (as a Keras ``Dropout`` layer
        placed after the recurrent layer).
    recurrent_dropout : float in [0, 1)
        Shorthand for ``cell_kwargs={"recurrent_dropout": p}`` on every layer: variational dropout
        on h_{t-1} in each cell's recurrent term (see :class:`npnet.cells.base.RecurrentCell`).
    dtype, rng : see :class:`npnet.layer.Layer`
        Sub-layers are initialised from ``rng``; every dropout mask is drawn from it afterwards
        (the cells share the model's Generator), so one Generator state, saved by
        ``Learner.save``, makes a resumed run draw the same masks.
    cell_kwargs : dict, list of dict or None
        Extra constructor arguments for every cell (or one dict per layer),
        e.g. ``{"forget_bias": 1.0}``; must be JSON-able for checkpoints.

    Call
    ----
    ``out, state = fprop(x, state=None, mask=None)``; ``dx, dstate0 = bprop(dout, dstate=None)``.
    ``state`` is a list with one entry per cell in :meth:`recurrent_cells` order
    (layer 0, [layer 0 reverse], layer 1, ...), each in the cell's own structure
    (h, or (h, c) for the LSTM). ``params``/``grads`` are flat dicts named
    "read_in.W", "cells.0.W_x", "cells.0_reverse.W_x", "read_out.b", ... (a layer read-in's
    own names follow "read_in.", e.g. "read_in.0.W" for a Sequential).

    Cache: the input and output dropout multipliers; per layer the dropout multiplier (B, T, F)
    and the reversal index (B, T);
    the last-step index (B,) when ``return_sequences`` is False (and the first-step index (B,)
    for the reverse half with ``reverse_read_out="final"``). The sub-layers keep
    their own caches.
    """

    def __init__(self, input_size: int, hidden_size, num_layers: int = 1, cell="lstm",
                 output_size: int | None = None, read_in=None,
                 return_sequences: bool = True, bidirectional: bool = False, dropout: float = 0.0,
                 dtype=np.float64, rng=None, cell_kwargs=None, reverse_read_out: str = "final",
                 input_dropout: float = 0.0, output_dropout: float = 0.0, recurrent_dropout: float = 0.0):
        super().__init__(dtype, rng)
        L = as_size(num_layers, "num_layers")
        kinds = [cell] * L if isinstance(cell, str) else list(cell)
        sizes = list(hidden_size) if isinstance(hidden_size, (list, tuple, np.ndarray)) else [hidden_size] * L
        kws = [cell_kwargs or {}] * L if not isinstance(cell_kwargs, (list, tuple)) else list(cell_kwargs)
        rates = {k: as_dropout_rate(v, k) for k, v in (("input_dropout", input_dropout),
                 ("output_dropout", output_dropout), ("recurrent_dropout", recurrent_dropout))}
        for what, lst in (("cell", kinds), ("hidden_size", sizes), ("cell_kwargs", kws)):
            if len(lst) != L:
                raise NpnetError(f"{what} as a list needs one entry per layer ({L}), got {len(lst)}")
        for k in kinds:
            if k not in CELL_TYPES:
                raise NpnetError(f"cell must be one of {CELL_TYPES} (or a list of them), got {k!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise NpnetError(f"dropout must be in [0, 1), got {dropout}")
        if not isinstance(reverse_read_out, str) or reverse_read_out not in REVERSE_READ_OUTS:
            raise NpnetError(f"reverse_read_out must be one of {REVERSE_READ_OUTS}, got {reverse_read_out!r}")

        self.input_size = as_size(input_size, "input_size")
        self.hidden_sizes = [as_size(h, "hidden_size") for h in sizes]
        self.num_layers = L
        self.cell_types = kinds
        self.cell_kwargs = [_with_recurrent_dropout(k, rates["recurrent_dropout"]) for k in kws]
        self.input_dropout, self.output_dropout = rates["input_dropout"], rates["output_dropout"]
        self.recurrent_dropout = rates["recurrent_dropout"]
        self.output_size = None if output_size is None else as_size(output_size, "output_size")
        layer_in = self._is_layer_read_in(read_in)
        self.read_in_size = None if read_in is None or layer_in else as_size(read_in, "read_in")
        self.return_sequences = bool(return_sequences)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.reverse_read_out = reverse_read_out
        self.training = True
        self._config = {"input_size": self.input_size,
                        "hidden_size": hidden_size if isinstance(hidden_size, (int, np.integer)) else list(sizes),
                        "num_layers": L, "cell": cell if isinstance(cell, str) else list(kinds),
                        "output_size": self.output_size, "read_in": self.read_in_size,
                        "return_sequences": self.return_sequences, "bidirectional": self.bidirectional,
                        "dropout": self.dropout, "dtype": self.dtype.name,
                        "cell_kwargs": cell_kwargs if not isinstance(cell_kwargs, tuple) else list(cell_kwargs)}
        if self.bidirectional and not self.return_sequences:   # the only models it changes: other
            self._config["reverse_read_out"] = reverse_read_out  # configs stay as before, so old files match
        self._config.update({k: v for k, v in rates.items() if v > 0.0})   # likewise: only when on
        for k in ("input_size", "hidden_size", "num_layers", "output_size", "read_in"):
            v = self._config[k]
            if isinstance(v, np.integer):
                self._config[k] = int(v)

        self.read_in = read_in if layer_in else None
        self.read_in_is_layer = layer_in
        self._build_layers()
        self.params, self.grads = LinkedParams(), LinkedParams()
        for prefix, layer in self._named_layers():
            self.params.link(prefix, layer.params)
            self.grads.link(prefix, layer.grads)

    def _is_layer_read_in(self, read_in) -> bool:
        """Whether ``read_in`` is a layer object (else an int size or None); refuses a non-layer or another dtype."""
        if read_in is None or isinstance(read_in, (int, np.integer)):
            return False
        check_layer(read_in, "read_in")
        if getattr(read_in, "dtype", None) is not None and np.dtype(read_in.dtype) != self.dtype:
            raise NpnetError(f"read_in layer has dtype {np.dtype(read_in.dtype)}, the model {self.dtype}; "
                             "build both with the same dtype")
        return True

    def _build_layers(self) -> None:
        """The int read-in, the cells (and reverse cells) and the read-out, drawn from ``rng`` in that order."""
        dirs, kinds, feat = 2 if self.bidirectional else 1, self.cell_types, self.input_size
        if self.read_in_size is not None:
            self.read_in = LinearLayer(feat, self.read_in_size, dtype=self.dtype, rng=self.rng)
            feat = self.read_in_size
        self.cells, self.cells_reverse = [], []
        for l in range(self.num_layers):
            self.cells.append(make_cell(kinds[l], feat, self.hidden_sizes[l], self.dtype, self.rng,
                                        **self.cell_kwargs[l]))
            if self.bidirectional:
                self.cells_reverse.append(make_cell(kinds[l], feat, self.hidden_sizes[l], self.dtype,
                                                    self.rng, **self.cell_kwargs[l]))
            feat = dirs * self.hidden_sizes[l]
        self.features = feat                                   # width of the top layer's output
        self.read_out = None
        if self.output_size is not None:
            self.read_out = LinearLayer(feat, self.output_size, dtype=self.dtype, rng=self.rng)

    # -- structure ----------------------------------------------------------
    def _named_layers(self) -> list:
        out = [("read_in", self.read_in)] if self.read_in is not None else []
        out += [(f"cells.{s[1:]}", c) for s, c in self.recurrent_cells()]
        if self.read_out is not None:
            out.append(("read_out", self.read_out))
        return out

    def recurrent_cells(self) -> list:
        """[(suffix, cell)] in state order: ("l0", c), ("l0_reverse", c'), ("l1", c), ..."""
        out = []
        for l, c in enumerate(self.cells):
            out.append((f"l{l}", c))
            if self.bidirectional:
                out.append((f"l{l}_reverse", self.cells_reverse[l]))
        return out

    def get_config(self) -> dict:
        """Constructor arguments; a layer read-in as ``{"class": ..., "config": ...}``."""
        cfg = dict(self._config)
        if self.read_in_is_layer:
            cfg["read_in"] = layer_config(self.read_in)
        return cfg

    @staticmethod
    def upgrade_config(config: dict) -> dict:
        """A saved config as this version reads it: a bidirectional last-step model saved before
        ``reverse_read_out`` existed gets "last_step", the read-out it was trained with."""
        config = dict(config)
        if config.get("bidirectional") and not config.get("return_sequences", True):
            config.setdefault("reverse_read_out", "last_step")
        return config

    @classmethod
    def from_config(cls, config: dict) -> "SequenceModel":
        """Rebuild from :meth:`get_config`. A config without "reverse_read_out" (saved before
        it existed) gets "last_step" where it matters (bidirectional, return_sequences=False), the
        read-out it was trained with."""
        config = cls.upgrade_config(config)
        if isinstance(config.get("read_in"), dict):
            config["read_in"] = layer_from_config(config["read_in"])
        return cls(**config)

    def train(self) -> "SequenceModel":
        """Training mode: every dropout active (the cells and a layer read-in are switched too)."""
        self.training = True
        if self.read_in_is_layer and hasattr(self.read_in, "train"):
            self.read_in.train()
        for _, c in self.recurrent_cells():
            c.train()
        return self

    def eval(self) -> "SequenceModel":
        """Evaluation mode: every dropout is the identity (the cells and a layer read-in are switched too)."""
        self.training = False
        if self.read_in_is_layer and hasattr(self.read_in, "eval"):
            self.read_in.eval()
        for _, c in self.recurrent_cells():
            c.eval()
        return self

    def _dropout_multiplier(self, p: float, shape: tuple):
        """u / (1 - p) with u ~ Bernoulli(1 - p) of ``shape`` from the model's rng, or None (p = 0 or
        evaluation mode): :func:`npnet.cells.base.dropout_multiplier`, the scheme of every mask (the cells' too)."""
        if not self.training or p == 0.0:
            return None
        return dropout_multiplier(self.rng, p, shape, self.dtype)

    def init_state(self, batch_size: int) -> list:
        """Zero state: one entry per cell, in :meth:`recurrent_cells` order."""
        return [c.init_state(batch_size) for _, c in self.recurrent_cells()]

    def clear_cache(self) -> None:
        """Drop the caches of the last fprop (after inference), here and in every sub-layer."""
        self._cache = None
        for _, layer in self._named_layers():
            if hasattr(layer, "clear_cache"):
                layer.clear_cache()

    def _split_state(self, state, what: str) -> list:
        n = len(self.cells) * (2 if self.bidirectional else 1)
        if state is None:
            return [None] * n
        if not isinstance(state, (list, tuple)) or len(state) != n:
            raise ShapeError(f"{what} must be a list with one entry per cell ({n}: "
                             f"{[s for s, _ in self.recurrent_cells()]}) or None")
        return list(state)

    def _check_mask(self, mask, B: int, T: int):
        if mask is None:
            return None
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (B, T):
            got = f"{mask.dtype} {mask.shape}" if isinstance(mask, np.ndarray) else type(mask).__name__
            raise ShapeError(f"mask must be a bool array of shape ({B}, {T}), got {got}")
        return mask

    # -- the read-in ---------------------------------------------------------------
    @property
    def takes_indices(self) -> bool:
        """Whether x is integer ids (B, T) handed to the read-in uncast (an Embedding read-in)."""
        return self.read_in_is_layer and bool(getattr(self.read_in, "takes_indices", False))

    def _check_x(self, x) -> np.ndarray:
        if self.takes_indices:                   # ids: the read-in checks their dtype and range
            x = np.asarray(x)
            if x.ndim < 2:
                raise ShapeError(f"x must have shape (B, T) of integer ids (the read-in is "
                                 f"{type(self.read_in).__name__}), got {x.shape}")
        elif self.read_in_is_layer:
            x = check_input(x, "x", -1, None, self.dtype)
            if x.ndim < 3:
                raise ShapeError(f"x must have shape (B, T, ...) (the read-in layer takes each step's "
                                 f"(...)), got {x.shape}")
        else:
            x = check_input(x, "x", 3, self.input_size, self.dtype)
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ShapeError(f"x must have B >= 1 and T >= 1, got shape {x.shape}")
        return x

    def _check_read_in_output(self, z, N: int, given: str) -> np.ndarray:
        if np.shape(z) != (N, self.input_size):
            raise ShapeError(f"the read_in layer must map {given} to ({N}, {self.input_size}) "
                             f"(input_size = the features it yields), got shape {np.shape(z)}")
        return z

    def _read_in_fprop(self, x: np.ndarray) -> np.ndarray:
        """x (B, T, D) or (B, T, ...) -> h^0 (B, T, F); a layer read-in sees all B*T steps at once."""
        if not self.read_in_is_layer:
            return self.read_in.fprop(x) if self.read_in is not None else x
        B, T = x.shape[:2]
        z = self.read_in.fprop(x.reshape(B * T, *x.shape[2:]))                # (B*T, F)
        return self._check_read_in_output(z, B * T, "x reshaped to (B*T, ...)").reshape(B, T, -1)

    # -- the last-step read-out -------------------------------------------------
    def _read_out_steps(self, mask, B: int, T: int):
        """(last (B,), first (B,) or None): the steps the read-out reads with return_sequences=False.

        ``last``: each row's last real step (T-1 without a mask). ``first``: each row's first real
        step, where the top layer's reverse half is read with reverse_read_out="final" (else None).
        Both None with return_sequences=True.
        """
        if self.return_sequences:
            return None, None
        if mask is not None and not mask.any(axis=1).all():
            raise ShapeError("with return_sequences=False every mask row needs at least one True step; "
                             f"rows {np.flatnonzero(~mask.any(axis=1)).tolist()} have none")
        if mask is None:
            last, first = np.full(B, T - 1), np.zeros(B, dtype=np.intp)      # (B,), (B,)
        else:
            last = T - 1 - np.argmax(mask[:, ::-1], axis=1)                   # (B,) last True of each row
            first = np.argmax(mask, axis=1)                                   # (B,) first True of each row
        if not (self.bidirectional and self.reverse_read_out == "final"):
            first = None
        return last, first

    def _pick_steps(self, h: np.ndarray, last: np.ndarray, first) -> np.ndarray:
        """h (B, T, F) -> (B, F): h[b, last_b], or [fwd h[b, last_b, :H], rev h[b, first_b, H:]]."""
        rows = np.arange(h.shape[0])
        if first is None:
            return h[rows, last]                                              # (B, F)
        H = self.hidden_sizes[-1]
        return np.concatenate([h[rows, last, :H], h[rows, first, H:]], axis=1)   # (B, 2H)

    def _scatter_steps(self, dh: np.ndarray, last: np.ndarray, first, T: int) -> np.ndarray:
        """The adjoint of :meth:`_pick_steps`: dh (B, F) -> (B, T, F), zero at the steps not read."""
        B = dh.shape[0]
        rows = np.arange(B)
        full = np.zeros((B, T, self.features), self.dtype)                    # (B, T, F)
        if first is None:
            full[rows, last] = dh
        else:
            H = self.hidden_sizes[-1]
            full[rows, last, :H] = dh[:, :H]
            full[rows, first, H:] = dh[:, H:]                                 # other columns: no overlap
        return full

    # -- forward / backward ---------------------------------------------------
    def fprop(self, x, state=None, mask=None):
        """x (B, T, D) (a layer read-in: (B, T, ...)), state list or None, mask (B, T) bool or None
        -> (out, state list).

        out is (B, T, V) with ``return_sequences`` else (B, V) (V = the top layer's
        width when there is no read-out).
        """
        x = self._check_x(x)
        B, T = x.shape[:2]
        mask = self._check_mask(mask, B, T)
        states = self._split_state(state, "state")
        last, first = self._read_out_steps(mask, B, T)

        h = self._read_in_fprop(x)                                          # (B, T, R)
        drop_in = self._dropout_multiplier(self.input_dropout, (B, 1, h.shape[2]))   # (B, 1, R): per sequence
        if drop_in is not None:
            h = h * drop_in                            # new array: h may be the caller's x
        P = reverse_index(mask, B, T) if self.bidirectional else None       # (B, T)
        drop = []
        new_states = []
        i = 0
        for l, c in enumerate(self.cells):
            out, s = c.fprop(h, states[i], mask)                            # (B, T, H)
            new_states.append(s)
            i += 1
            if self.bidirectional:
                out_r, s_r = self.cells_reverse[l].fprop(_gather_time(h, P), states[i], mask)
                new_states.append(s_r)
                i += 1
                out = np.concatenate([out, _gather_time(out_r, P)], axis=2)   # (B, T, 2H)
            u = self._dropout_multiplier(self.dropout, out.shape) if l < self.num_layers - 1 else None
            if u is not None:
                out = out * u                          # (B, T, F) new array: out may view a cell's cache
            drop.append(u)
            h = out
        if last is not None:
            h = self._pick_steps(h, last, first)                               # (B, F)
        drop_out = self._dropout_multiplier(self.output_dropout, h.shape)     # (B, T, F) or (B, F)
        if drop_out is not None:
            h = h * drop_out
        y = self.read_out.fprop(h) if self.read_out is not None else h
        self._cache = {"drop": drop, "drop_in": drop_in, "drop_out": drop_out, "P": P, "last": last,
                       "first": first, "BT": (B, T), "x_shape": x.shape}
        return y, new_states

    def bprop(self, dout, dstate=None):
        """dout like fprop's out, dstate list (entries may be None) -> (dx like x, dstate0 list)."""
        cache = self._take_cache()
        B, T = cache["BT"]
        last, P = cache["last"], cache["P"]
        F = self.features if self.read_out is None else self.output_size
        want = (B, T, F) if last is None else (B, F)
        dout = check_input(dout, "dout", -1, None, self.dtype)
        if dout.shape != want:
            raise ShapeError(f"dout must have shape {want}, got {dout.shape}")
        dstates = self._split_state(dstate, "dstate")

        dh = self.read_out.bprop(dout) if self.read_out is not None else dout
        if cache["drop_out"] is not None:
            dh = dh * cache["drop_out"]                                        # new array: dout is the caller's
        if last is not None:
            dh = self._scatter_steps(dh, last, cache["first"], T)             # (B, T, F)
        dstate0 = [None] * len(dstates)
        for l in range(self.num_layers - 1, -1, -1):
            u = cache["drop"][l]
            if u is not None:
                dh = dh * u                                                    # new array
            if self.bidirectional:
                H = self.hidden_sizes[l]
                i = 2 * l
                dx, dstate0[i] = self.cells[l].bprop(dh[:, :, :H], dstates[i])
                dx_r, dstate0[i + 1] = self.cells_reverse[l].bprop(_gather_time(dh[:, :, H:], P),
                                                                   dstates[i + 1])
                dx += _gather_time(dx_r, P)
            else:
                dx, dstate0[l] = self.cells[l].bprop(dh, dstates[l])
            dh = dx
        if cache["drop_in"] is not None:
            dh = dh * cache["drop_in"]
        if self.read_in_is_layer:                       # (B, T, F) -> (B*T, F) -> (B*T, ...) -> x's shape
            dh = self.read_in.bprop(dh.reshape(B * T, -1)).reshape(cache["x_shape"])
        elif self.read_in is not None:
            dh = self.read_in.bprop(dh)
        return dh, dstate0

    def predict(self, x, mask=None, batch_size: int | None = None) -> np.ndarray:
        """The output for ``x`` in evaluation mode (no dropout), ``batch_size`` rows at a time.

        x (B, T, D) (ids (B, T) for an Embedding read-in), mask (B, T) bool or None, batch_size
        int >= 1 or None (all B rows in one fprop). Every row starts from the zero state, so the
        result does not depend on ``batch_size``. Returns fprop's ``out`` for all B rows; no
        cache is left behind and the train/eval mode is restored, also after an error. As
        ``keras.Model.predict`` (PyTorch: ``model.eval()`` and ``torch.no_grad()``).
        """
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
            raise NpnetError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
        x = self._check_x(x)
        B, T = x.shape[:2]
        mask = self._check_mask(mask, B, T)
        if mask is not None and not self.return_sequences and not mask.any(axis=1).all():
            raise ShapeError("with return_sequences=False every mask row needs at least one True step; "
                             f"rows {np.flatnonzero(~mask.any(axis=1)).tolist()} have none")   # rows of x, not of a batch
        n = B if batch_size is None else int(batch_size)
        was_training = self.training
        self.eval()
        try:
            outs = []
            for s in range(0, B, n):                                          # rows s .. s+n-1
                out, _ = self.fprop(x[s:s + n], None, None if mask is None else mask[s:s + n])
                self.clear_cache()
                outs.append(out)
        finally:
            self.clear_cache()
            if was_training:
                self.train()
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def step(self, x_t, state=None):
        """One time step without caching or dropout (closed-loop generation).

        x_t (B, D) (a layer read-in: (B, ...)), state list or None -> (y_t (B, V), state list).
        Unidirectional only.
        """
        if self.bidirectional:
            raise NpnetError("step() runs one time step forward; a bidirectional model needs the whole sequence")
        states = self._split_state(state, "state")
        if self.read_in_is_layer:
            x_t = np.asarray(x_t) if self.takes_indices else check_input(x_t, "x_t", -1, None, self.dtype)
            h = self._check_read_in_output(_forward(self.read_in, x_t), x_t.shape[0], "x_t (B, ...)")
        else:
            x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
            h = self.read_in.forward(x_t) if self.read_in is not None else x_t
        new_states = []
        for c, s in zip(self.cells, states):
            h, s = c.step(h, s)
            new_states.append(s)
        y = self.read_out.forward(h) if self.read_out is not None else h
        return y, new_states


def _with_recurrent_dropout(kwargs: dict, p: float) -> dict:
    """A layer's cell_kwargs with the ``recurrent_dropout`` shorthand merged in (a conflict is refused)."""
    kwargs = dict(kwargs)
    if p > 0.0:
        if kwargs.get("recurrent_dropout", p) != p:
            raise NpnetError(f"recurrent_dropout={p} and cell_kwargs recurrent_dropout="
                             f"{kwargs['recurrent_dropout']} disagree; give it once")
        kwargs["recurrent_dropout"] = p
    return kwargs


def _forward(layer, x):
    """A layer's forward map without a cache left behind (fprop then clear_cache without ``forward``)."""
    if hasattr(layer, "forward"):
        return layer.forward(x)
    y = layer.fprop(x)
    if hasattr(layer, "clear_cache"):
        layer.clear_cache()
    return y


__all__ = ["SequenceModel", "make_cell", "reverse_index"]
