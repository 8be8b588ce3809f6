"""Exchange recurrent weights with PyTorch's layout (nn.RNN/LSTM/GRU and their *Cell modules).

Pure NumPy: this module never imports torch. It accepts anything ``np.asarray``
understands (torch tensors are read through ``.detach().cpu().numpy()``) and
returns plain NumPy arrays. See docs/interop.md for the tables and other layouts.
"""
from __future__ import annotations

import numpy as np

from .cells.gru import GRUCell
from .layer import NpnetError
from .cells.lstm import LSTMCell
from .cells.rnn import BasicRNNCell

__all__ = ["load_torch_state_dict", "torch_state_dict", "cell_kind", "reorder_gates",
           "embedding_state_dict", "load_embedding_state_dict"]

# npnet layout: x @ W_x with W_x (D, G*H), gate blocks side by side in PyTorch's order.
# PyTorch layout: x @ weight_ih.T with weight_ih (G*H, D), same gate order.
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}
_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def cell_kind(cell) -> str:
    """'rnn', 'lstm' or 'gru' for a BasicRNNCell, LSTMCell or GRUCell (subclasses too)."""
    GRUCell.require_pytorch_form(cell)                 # no PyTorch layout for GRUCell(reset_after=False)
    for cls, kind in ((BasicRNNCell, "rnn"), (LSTMCell, "lstm"), (GRUCell, "gru")):
        if isinstance(cell, cls):
            return kind
    raise NpnetError(f"no PyTorch layout for {type(cell).__name__}: expected a BasicRNNCell, LSTMCell or "
                     "GRUCell, or an object with recurrent_cells() returning (suffix, cell) pairs")


def reorder_gates(a, order, hidden_size: int, axis: int = -1) -> np.ndarray:
    """Permute gate blocks: block k of the result is block ``order[k]`` of ``a``.

    ``a`` holds G blocks of ``hidden_size`` side by side along ``axis`` (G*H long).
    For example CS231n's LSTM order (i, f, o, g) to npnet's (i, f, g, o) is
    ``reorder_gates(Wx, [0, 1, 3, 2], H)``; Keras' GRU (z, r, h) to (r, z, n) is
    ``[1, 0, 2]``. Returns a new array.
    """
    a = np.asarray(a)
    H = int(hidden_size)
    if a.shape[axis] != len(order) * H or sorted(order) != list(range(len(order))):
        raise NpnetError(f"reorder_gates: axis {axis} of shape {a.shape} must hold {len(order)} blocks of "
                         f"{H} and order must be a permutation of 0..{len(order) - 1}, got {list(order)}")
    blocks = np.split(a, len(order), axis=axis)
    return np.concatenate([blocks[k] for k in order], axis=axis)


def _cells(target, suffix):
    """[(suffix, cell)]: the target's own list if it has recurrent_cells(), else the cell itself."""
    if hasattr(target, "recurrent_cells"):
        pairs = list(target.recurrent_cells())
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise NpnetError("recurrent_cells() must return (suffix, cell) pairs such as "
                                 f"('l0', cell), got {pair!r}")
        return pairs
    return [(suffix, target)]


def _key(prefix: str, name: str, suffix: str | None) -> str:
    return f"{prefix}{name}_{suffix}" if suffix else f"{prefix}{name}"


def _as_numpy(value, key: str) -> np.ndarray:
    """A torch tensor or array-like as a NumPy array (no torch import)."""
    if hasattr(value, "detach"):                       # torch.Tensor, duck-typed
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise NpnetError(f"{key} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _expected_shapes(cell, kind: str) -> dict:
    G, H, D = _GATES[kind], cell.hidden_size, cell.input_size
    return {"weight_ih": (G * H, D), "weight_hh": (G * H, H), "bias_ih": (G * H,), "bias_hh": (G * H,)}


def _find(state_dict, prefix: str, name: str, suffix: str | None, single: bool):
    """The key under which ``name`` is stored: '<name>_<suffix>', or for a lone cell also '<name>'."""
    candidates = [_key(prefix, name, suffix)]
    if single:                                         # nn.RNNCell / nn.LSTMCell / nn.GRUCell names
        candidates.append(_key(prefix, name, None))
    for k in candidates:
        if k in state_dict:
            return k
    return None


def load_torch_state_dict(target, state_dict, prefix: str = "", strict: bool = True) -> list:
    """Copy PyTorch weights into a cell (or every cell of a model) in place.

    Mapping (G = 1 RNN, 4 LSTM (i, f, g, o), 3 GRU (r, z, n); H hidden, D input)::

        W_x = weight_ih.T                 (D, G*H)   from weight_ih (G*H, D)
        W_h = weight_hh.T                 (H, G*H)   from weight_hh (G*H, H)
        b   = bias_ih + bias_hh           (G*H,)     RNN, LSTM
        GRU: b    = [b_ir + b_hr, b_iz + b_hz, b_in]  (3H,)
             b_hn = bias_hh[2H:3H]                     (H,)   (kept apart: it sits inside r * (...))

    Parameters
    ----------
    target : BasicRNNCell, LSTMCell, GRUCell, or an object with ``recurrent_cells()``
        returning ``[(suffix, cell), ...]`` such as ``[("l0", c0), ("l0_reverse", c1), ("l1", c2)]``.
        A lone cell reads ``weight_ih_l0`` (nn.RNN/LSTM/GRU) or ``weight_ih`` (nn.*Cell);
        a model's cells read ``weight_ih_<suffix>`` etc.
    state_dict : mapping name -> array or torch tensor
    prefix : str
        Prepended to every key, e.g. ``"rnn."`` for a submodule of a larger torch model.
    strict : bool
        If true, keys that start with ``prefix`` but are not consumed raise ValueError
        (e.g. a second layer, projections ``weight_hr_l0``).

    Values are cast to the cell's dtype and copied into the existing ``params``
    arrays (their identity is kept, so optimisers holding them stay valid).
    Everything is validated before anything is written. The nonlinearity of an
    nn.RNN is not part of its state dict: build the BasicRNNCell with the same one.

    Returns
    -------
    list of str
        The keys that were used.

    Raises
    ------
    ValueError (NpnetError)
        A key is missing (the message names it and the shape expected), has the wrong
        shape or non-finite values, or (strict) a key is left over.
    """
    if not hasattr(state_dict, "keys"):
        raise NpnetError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
    pairs = _cells(target, "l0")
    single = not hasattr(target, "recurrent_cells")
    plan, used = [], []
    for suffix, cell in pairs:
        kind = cell_kind(cell)
        shapes = _expected_shapes(cell, kind)
        vals = {}
        for name in _NAMES:
            key = _find(state_dict, prefix, name, suffix, single)
            if key is None:
                alt = f" (or {_key(prefix, name, None)!r})" if single else ""
                raise NpnetError(f"state_dict has no key {_key(prefix, name, suffix)!r}{alt}: expected an array "
                                 f"of shape {shapes[name]} for {type(cell).__name__}({cell.input_size}, "
                                 f"{cell.hidden_size})")
            arr = _as_numpy(state_dict[key], key)
            if arr.shape != shapes[name]:
                raise NpnetError(f"{key} must have shape {shapes[name]} for {type(cell).__name__}"
                                 f"({cell.input_size}, {cell.hidden_size}), got {arr.shape}")
            if not np.isfinite(arr).all():
                raise NpnetError(f"{key} contains NaN or inf")
            vals[name] = arr.astype(np.float64)        # sum the biases in float64, cast once at the end
            used.append(key)
        plan.append((cell, kind, vals))
    if strict:
        extra = sorted(k for k in state_dict.keys()
                       if isinstance(k, str) and k.startswith(prefix) and k not in used)
        if extra:
            raise NpnetError(f"state_dict has keys that no npnet cell takes: {extra}; "
                             "pass strict=False to ignore them or a prefix to select a submodule")

    for cell, kind, v in plan:                          # everything valid: now write in place
        H = cell.hidden_size
        p = cell.params
        np.copyto(p["W_x"], v["weight_ih"].T, casting="unsafe")
        np.copyto(p["W_h"], v["weight_hh"].T, casting="unsafe")
        if kind == "gru":
            b = v["bias_ih"].copy()                     # (3H,) [b_ir, b_iz, b_in]
            b[: 2 * H] += v["bias_hh"][: 2 * H]         # r and z: the two biases add up
            np.copyto(p["b"], b, casting="unsafe")
            np.copyto(p["b_hn"], v["bias_hh"][2 * H:], casting="unsafe")
        else:
            np.copyto(p["b"], v["bias_ih"] + v["bias_hh"], casting="unsafe")
    return used


def torch_state_dict(target, grads: bool = False, prefix: str = "", suffix: str | None = "l0") -> dict:
    """The weights (or, with ``grads=True``, their gradients) under PyTorch's names.

    Mapping (inverse of :func:`load_torch_state_dict`; npnet keeps one bias)::

        weight_ih = W_x.T     weight_hh = W_h.T
        bias_ih   = b         bias_hh   = 0                      RNN, LSTM
        bias_ih   = b         bias_hh   = [0, 0, b_hn]           GRU

    so ``bias_ih + bias_hh`` reproduces the network exactly. With ``grads=True``
    the same names hold the gradients ``grads[...]``; since bias_ih and bias_hh
    enter only through their sum, both carry dL/db (GRU: bias_hh gets
    [dL/db_r, dL/db_z, dL/db_hn]) -- exactly what PyTorch's autograd gives.

    Parameters
    ----------
    target : cell, or object with ``recurrent_cells()`` (see :func:`load_torch_state_dict`)
    grads : bool
        Return gradients instead of values.
    prefix : str
        Prepended to every key.
    suffix : str or None
        For a lone cell: ``"l0"`` gives nn.RNN/LSTM/GRU names (``weight_ih_l0``),
        None gives nn.RNNCell/LSTMCell/GRUCell names (``weight_ih``). Ignored for
        a model, whose cells carry their own suffixes.

    Returns
    -------
    dict name -> ndarray (new float arrays of the cell dtype, in PyTorch's key order)
    """
    out = {}
    for sfx, cell in _cells(target, suffix):
        kind = cell_kind(cell)
        H = cell.hidden_size
        src = cell.grads if grads else cell.params
        b = src["b"]
        if kind == "gru":
            if grads:
                bhh = b.copy()
                bhh[2 * H:] = src["b_hn"]
            else:
                bhh = np.zeros_like(b)
                bhh[2 * H:] = src["b_hn"]
        else:
            bhh = b.copy() if grads else np.zeros_like(b)
        out[_key(prefix, "weight_ih", sfx)] = src["W_x"].T.copy()
        out[_key(prefix, "weight_hh", sfx)] = src["W_h"].T.copy()
        out[_key(prefix, "bias_ih", sfx)] = b.copy()
        out[_key(prefix, "bias_hh", sfx)] = bhh
    return out


# -- Embedding <-> nn.Embedding: the same (V, E) table, no transpose ----------------------------
def embedding_state_dict(embedding, grads: bool = False, prefix: str = "") -> dict:
    """An npnet.Embedding's table (or its gradient) as ``nn.Embedding``'s ``{prefix + "weight": W}``.

    Mapping: ``weight = W`` (V, E), the same layout (row v is id v's vector), a new array.
    """
    W = (embedding.grads if grads else embedding.params)["W"]
    return {f"{prefix}weight": W.copy()}


def load_embedding_state_dict(embedding, state_dict, prefix: str = "", strict: bool = True) -> list:
    """Copy ``nn.Embedding``'s ``weight`` (V, E) into an npnet.Embedding in place; returns the keys used.

    The shape must be the embedding's (V, E); values are cast to its dtype. A padding row is
    loaded as given (PyTorch does not zero it on load either) and still gets no gradient.
    With ``strict``, a key other than ``prefix + "weight"`` starting with ``prefix`` is an error.
    """
    key = f"{prefix}weight"
    if key not in state_dict:
        raise NpnetError(f"state_dict has no {key!r} (nn.Embedding's table); keys: {sorted(state_dict)}")
    w = _as_numpy(state_dict[key], key)
    want = embedding.params["W"].shape
    if w.shape != want:
        raise NpnetError(f"{key} must have shape {want} (num_embeddings, embedding_dim), got {w.shape}")
    if strict:
        extra = sorted(k for k in state_dict if k.startswith(prefix) and k != key)
        if extra:
            raise NpnetError(f"unexpected keys for an Embedding: {extra} (strict=False ignores them)")
    np.copyto(embedding.params["W"], w, casting="unsafe")
    return [key]


from .keras_interop import keras_weights, load_keras_weights  # noqa: E402
