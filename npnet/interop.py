"""Exchange weights with PyTorch's layout: cells (nn.RNN/LSTM/GRU and their *Cell modules),
Embedding (nn.Embedding) and a whole SequenceModel (read_in / rnn / read_out submodules).

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
           "embedding_state_dict", "load_embedding_state_dict", "torch_module_spec", "MODEL_PREFIXES",
           "keras_weights", "load_keras_weights"]

# A SequenceModel's torch twin holds three submodules under these names (docs/interop.md):
# read_in (nn.Linear or nn.Embedding), rnn (nn.RNN / nn.LSTM / nn.GRU), read_out (nn.Linear).
MODEL_PREFIXES = {"read_in": "read_in.", "rnn": "rnn.", "read_out": "read_out."}

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


def _plan_cells(pairs, state_dict, prefix: str, single: bool):
    """Validate the cells' four arrays each -> ([(cell, kind, {name: float64 array})], keys used).

    A module built with ``bias=False`` has no bias key at all: when no cell finds a bias key,
    the biases load as zeros; a bias key missing for only some cells is an error.
    """
    no_bias = not any(_find(state_dict, prefix, n, sfx, single) for sfx, _ in pairs for n in _NAMES[2:])
    plan, used = [], []
    for suffix, cell in pairs:
        kind = cell_kind(cell)
        shapes = _expected_shapes(cell, kind)
        vals = {}
        for name in _NAMES:
            if no_bias and name.startswith("bias"):
                vals[name] = np.zeros(shapes[name])
                continue
            key = _find(state_dict, prefix, name, suffix, single)
            if key is None:
                alt = f" (or {_key(prefix, name, None)!r})" if single else ""
                raise NpnetError(f"state_dict has no key {_key(prefix, name, suffix)!r}{alt}: expected an array "
                                 f"of shape {shapes[name]} for {type(cell).__name__}({cell.input_size}, "
                                 f"{cell.hidden_size}) (a module built with bias=False has no bias key at all)")
            vals[name] = _checked(state_dict, key, shapes[name], f"{type(cell).__name__}"
                                  f"({cell.input_size}, {cell.hidden_size})")
            used.append(key)
        plan.append((cell, kind, vals))
    return plan, used


def _checked(state_dict, key: str, shape: tuple, what: str) -> np.ndarray:
    """state_dict[key] as float64, refused unless of ``shape`` and finite."""
    arr = _as_numpy(state_dict[key], key)
    if arr.shape != shape:
        raise NpnetError(f"{key} must have shape {shape} for {what}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise NpnetError(f"{key} contains NaN or inf")
    return arr.astype(np.float64)                      # sum the biases in float64, cast once at the end


def _write_cells(plan) -> None:
    for cell, kind, v in plan:
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


def _check_leftovers(state_dict, prefix: str, used: list) -> None:
    extra = sorted(k for k in state_dict.keys() if isinstance(k, str) and k.startswith(prefix) and k not in used)
    if extra:
        raise NpnetError(f"state_dict has keys that no npnet cell takes (nor a read-in or read-out): {extra}; "
                         "pass strict=False to ignore them or a prefix to select a submodule")


def load_torch_state_dict(target, state_dict, prefix: str = "", strict: bool = True,
                          cells_only: bool = False) -> list:
    """Copy PyTorch weights into a cell, every cell of a model, or a whole SequenceModel, in place.

    Mapping (G = 1 RNN, 4 LSTM (i, f, g, o), 3 GRU (r, z, n); H hidden, D input)::

        W_x = weight_ih.T                 (D, G*H)   from weight_ih (G*H, D)
        W_h = weight_hh.T                 (H, G*H)   from weight_hh (G*H, H)
        b   = bias_ih + bias_hh           (G*H,)     RNN, LSTM
        GRU: b    = [b_ir + b_hr, b_iz + b_hz, b_in]  (3H,)
             b_hn = bias_hh[2H:3H]                     (H,)   (kept apart: it sits inside r * (...))
        no bias key at all (a module built with bias=False): b = 0 (GRU: b_hn = 0 too)

    A SequenceModel (unless ``cells_only``) reads its torch twin's whole state dict (see
    :func:`torch_module_spec` and docs/interop.md)::

        read_in.weight  (R, D) -> read_in W = weight.T    read_in.bias (R,) -> b  (nn.Linear)
        read_in.weight  (V, E) -> the Embedding's W         (nn.Embedding, the same layout)
        rnn.<cell keys>  as above, suffixes l0, l0_reverse, l1, ...
        read_out.weight (V, F) -> read_out W = weight.T   read_out.bias (V,) -> b
        an nn.Linear without bias (bias=False): npnet's b = 0

    Parameters
    ----------
    target : BasicRNNCell, LSTMCell, GRUCell, a SequenceModel, or an object with ``recurrent_cells()``
        returning ``[(suffix, cell), ...]`` such as ``[("l0", c0), ("l0_reverse", c1), ("l1", c2)]``.
        A lone cell reads ``weight_ih_l0`` (nn.RNN/LSTM/GRU) or ``weight_ih`` (nn.*Cell);
        a model's cells read ``weight_ih_<suffix>`` etc.
    state_dict : mapping name -> array or torch tensor
    prefix : str
        Prepended to every key, e.g. ``"rnn."`` for a submodule of a larger torch model.
    strict : bool
        If true, keys that start with ``prefix`` but are not consumed raise ValueError
        (e.g. a second layer, projections ``weight_hr_l0``).
    cells_only : bool
        For a SequenceModel: read only its cells, under an nn.LSTM/GRU/RNN's own names
        (``weight_ih_l0``, ...; the behaviour before whole-model export). Other targets: ignored.

    Values are cast to the layer's dtype and copied into the existing ``params``
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
    if _whole_model(target, cells_only):
        return _load_model(target, state_dict, prefix, strict)
    plan, used = _plan_cells(_cells(target, "l0"), state_dict, prefix, not hasattr(target, "recurrent_cells"))
    if strict:
        _check_leftovers(state_dict, prefix, used)
    _write_cells(plan)                                  # everything valid: now write in place
    return used


def _cell_state_dict(target, grads: bool, prefix: str, suffix) -> dict:
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


def torch_state_dict(target, grads: bool = False, prefix: str = "", suffix: str | None = "l0",
                     cells_only: bool = False, bias: bool = True) -> dict:
    """The weights (or, with ``grads=True``, their gradients) under PyTorch's names.

    Mapping (inverse of :func:`load_torch_state_dict`; npnet keeps one bias)::

        weight_ih = W_x.T     weight_hh = W_h.T
        bias_ih   = b         bias_hh   = 0                      RNN, LSTM
        bias_ih   = b         bias_hh   = [0, 0, b_hn]           GRU
        SequenceModel: read_in.weight = W.T, read_in.bias = b (nn.Linear) or read_in.weight = W
                       (nn.Embedding); rnn.<the cells' keys>; read_out.weight = W.T, read_out.bias = b

    so ``bias_ih + bias_hh`` reproduces the network exactly, and a SequenceModel's dict loads
    into its torch twin (docs/interop.md) with one ``load_state_dict``. With ``grads=True``
    the same names hold the gradients ``grads[...]``; since bias_ih and bias_hh
    enter only through their sum, both carry dL/db (GRU: bias_hh gets
    [dL/db_r, dL/db_z, dL/db_hn]) -- exactly what PyTorch's autograd gives.

    Parameters
    ----------
    target : cell, SequenceModel, or object with ``recurrent_cells()`` (see :func:`load_torch_state_dict`)
    grads : bool
        Return gradients instead of values.
    prefix : str
        Prepended to every key.
    suffix : str or None
        For a lone cell: ``"l0"`` gives nn.RNN/LSTM/GRU names (``weight_ih_l0``),
        None gives nn.RNNCell/LSTMCell/GRUCell names (``weight_ih``). Ignored for
        a model, whose cells carry their own suffixes.
    cells_only : bool
        For a SequenceModel: only its cells, under an nn.LSTM/GRU/RNN's own names (no ``rnn.``).
    bias : bool
        False: leave every bias key out, for a torch module built with ``bias=False``; refused
        (ValueError naming the key) unless those biases are all zero. With ``grads=True`` the
        bias gradients are simply left out.

    Returns
    -------
    dict name -> ndarray (new float arrays of the layer dtype, in PyTorch's key order)
    """
    if _whole_model(target, cells_only):
        out = _model_state_dict(target, grads, prefix)
    else:
        out = _cell_state_dict(target, grads, prefix, suffix)
    if not bias:
        for key in [k for k in out if _is_bias_key(k[len(prefix):])]:
            if not grads and np.any(out[key] != 0):
                raise NpnetError(f"{key} is not zero (max |value| {np.max(np.abs(out[key])):.3g}): a torch module "
                                 "built with bias=False cannot hold it; export with bias=True")
            del out[key]
    return out


def _is_bias_key(name: str) -> bool:
    """bias_ih_l0, bias_hh (cells), read_out.bias, rnn.bias_ih_l1_reverse, ..."""
    last = name.rsplit(".", 1)[-1]
    return last == "bias" or last.startswith("bias_ih") or last.startswith("bias_hh")


# -- a whole SequenceModel <-> its torch twin (read_in, rnn, read_out) ---------------------------
def _whole_model(target, cells_only: bool) -> bool:
    from .model import SequenceModel                   # not at import time: model -> cells -> ...
    return isinstance(target, SequenceModel) and not cells_only


_TORCH_RNN = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def torch_module_spec(model) -> dict:
    """The PyTorch twin of a SequenceModel, as a JSON-able dict (docs/interop.md builds it).

    Returns ``{"read_in": None | {"type": "Linear", "in_features", "out_features", "bias"} |
    {"type": "Embedding", "num_embeddings", "embedding_dim", "padding_idx"},
    "rnn": {"type": "LSTM" | "GRU" | "RNN", "input_size", "hidden_size", "num_layers",
    "bidirectional", "dropout", "nonlinearity" (RNN only)}, "read_out": None | {"type": "Linear", ...},
    "return_sequences", "reverse_read_out"}``. Raises ValueError (NpnetError) for a model no
    such module matches: a read-in other than a LinearLayer or Embedding, or a stack whose layers
    differ in cell type, nonlinearity or hidden size (export its cells with ``cells_only=True``).
    """
    from .embedding import Embedding
    from .linear import LinearLayer
    kinds = [cell_kind(c) for c in model.cells]
    acts = {getattr(c, "nonlinearity", None) for c in model.cells}
    if len(set(kinds)) > 1 or len(acts) > 1 or len(set(model.hidden_sizes)) > 1:
        raise NpnetError(f"no single nn.RNN/LSTM/GRU matches this stack (cells {model.cell_types}, hidden sizes "
                         f"{model.hidden_sizes}): export the cells with cells_only=True and the linear layers "
                         "by hand (nn.Linear weight = W.T, bias = b)")

    def linear(layer):
        return {"type": "Linear", "in_features": layer.in_features, "out_features": layer.out_features,
                "bias": layer.bias}

    r = model.read_in
    if r is None:
        read_in = None
    elif isinstance(r, Embedding):
        read_in = {"type": "Embedding", "num_embeddings": r.num_embeddings, "embedding_dim": r.embedding_dim,
                   "padding_idx": r.padding_idx}
    elif isinstance(r, LinearLayer):
        read_in = linear(r)
    else:
        raise NpnetError(f"no PyTorch mapping for a {type(r).__name__} read-in: whole-model export takes a "
                         "LinearLayer (nn.Linear) or an Embedding (nn.Embedding); export the cells with "
                         "cells_only=True")
    rnn = {"type": _TORCH_RNN[kinds[0]], "input_size": model.cells[0].input_size,
           "hidden_size": model.hidden_sizes[0], "num_layers": model.num_layers,
           "bidirectional": model.bidirectional, "dropout": model.dropout if model.num_layers > 1 else 0.0}
    if kinds[0] == "rnn":
        rnn["nonlinearity"] = acts.pop()
    return {"read_in": read_in, "rnn": rnn, "read_out": None if model.read_out is None else linear(model.read_out),
            "return_sequences": model.return_sequences, "reverse_read_out": model.reverse_read_out}


def _linear_state_dict(layer, grads: bool, prefix: str) -> dict:
    src = layer.grads if grads else layer.params
    out = {f"{prefix}weight": src["W"].T.copy()}        # nn.Linear: weight (out, in)
    if layer.bias:
        out[f"{prefix}bias"] = src["b"].copy()
    return out


def _model_state_dict(model, grads: bool, prefix: str) -> dict:
    spec = torch_module_spec(model)                     # refuses a model without a torch twin
    out = {}
    if spec["read_in"] is not None:
        p = prefix + MODEL_PREFIXES["read_in"]
        out |= (embedding_state_dict(model.read_in, grads, p) if spec["read_in"]["type"] == "Embedding"
                else _linear_state_dict(model.read_in, grads, p))
    out |= _cell_state_dict(model, grads, prefix + MODEL_PREFIXES["rnn"], None)
    if model.read_out is not None:
        out |= _linear_state_dict(model.read_out, grads, prefix + MODEL_PREFIXES["read_out"])
    return out


def _plan_linear(layer, state_dict, prefix: str, what: str):
    """Validate an nn.Linear's weight (and bias, if any) for a LinearLayer -> (write, keys used)."""
    D, V = layer.in_features, layer.out_features
    name = f"the {what} LinearLayer({D}, {V}{'' if layer.bias else ', bias=False'})"
    key, bkey = f"{prefix}weight", f"{prefix}bias"
    if key not in state_dict:
        raise NpnetError(f"state_dict has no key {key!r}: expected nn.Linear's weight of shape ({V}, {D}) for {name}")
    w, used = _checked(state_dict, key, (V, D), name), [key]
    b = np.zeros(V)                                     # an nn.Linear(bias=False): npnet's bias is zero
    if bkey in state_dict:
        if not layer.bias:
            raise NpnetError(f"{bkey} cannot be loaded: {name} has no bias")
        b = _checked(state_dict, bkey, (V,), name)
        used.append(bkey)

    def write():
        np.copyto(layer.params["W"], w.T, casting="unsafe")
        if layer.bias:
            np.copyto(layer.params["b"], b, casting="unsafe")
    return write, used


def _plan_embedding(layer, state_dict, prefix: str):
    key = f"{prefix}weight"
    want = layer.params["W"].shape
    if key not in state_dict:
        raise NpnetError(f"state_dict has no key {key!r}: expected nn.Embedding's weight of shape {want}")
    w = _checked(state_dict, key, want, f"the read_in Embedding{want}")
    return (lambda: np.copyto(layer.params["W"], w, casting="unsafe")), [key]


def _load_model(model, state_dict, prefix: str, strict: bool) -> list:
    """A whole SequenceModel from its torch twin's state dict: validate everything, then write."""
    spec = torch_module_spec(model)
    rnn = prefix + MODEL_PREFIXES["rnn"]
    if f"{rnn}weight_ih_l0" not in state_dict and f"{prefix}weight_ih_l0" in state_dict:
        raise NpnetError(f"state_dict has {prefix + 'weight_ih_l0'!r} but no {rnn + 'weight_ih_l0'!r}: it looks like an "
                         "nn.LSTM/GRU/RNN's own state dict; load it with cells_only=True (the whole model reads "
                         "its torch twin's keys read_in.*, rnn.*, read_out.*)")
    writes, used = [], []
    if spec["read_in"] is not None:
        p = prefix + MODEL_PREFIXES["read_in"]
        w, u = (_plan_embedding(model.read_in, state_dict, p) if spec["read_in"]["type"] == "Embedding"
                else _plan_linear(model.read_in, state_dict, p, "read_in"))
        writes.append(w)
        used += u
    plan, u = _plan_cells(model.recurrent_cells(), state_dict, rnn, False)
    used += u
    if model.read_out is not None:
        w, u = _plan_linear(model.read_out, state_dict, prefix + MODEL_PREFIXES["read_out"], "read_out")
        writes.append(w)
        used += u
    if strict:
        _check_leftovers(state_dict, prefix, used)
    _write_cells(plan)                                  # everything valid: now write in place
    for w in writes:
        w()
    return used


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
