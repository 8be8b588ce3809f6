"""Exchange weights with Keras's layout: keras.layers.SimpleRNN / LSTM / GRU (both reset_after
forms) for a cell, and for a SequenceModel the stack of Keras layers it corresponds to.

Pure NumPy: never imports keras, tensorflow or jax; anything ``np.asarray`` reads (a Keras
Variable too) is accepted, plain NumPy arrays are returned. Imported into npnet.interop, so
users call ``npnet.interop.keras_weights``; it does not import npnet.interop itself.
docs/interop.md has the tables and a worked round trip.
"""
from __future__ import annotations

import numpy as np

from .cells.gru import GRUCell
from .cells.lstm import LSTMCell
from .cells.rnn import BasicRNNCell
from .embedding import Embedding
from .layer import NpnetError
from .linear import LinearLayer

__all__ = ["keras_weights", "load_keras_weights"]

# Keras's kernel is x @ kernel with kernel (D, G*H): npnet's W_x layout, no transpose. Gate orders:
# LSTM i, f, c, o (npnet's i, f, g, o: the same); GRU z, r, h (npnet's r, z, n: the first two
# swapped). Each permutation is its own inverse, so it maps both ways.
_ORDER = {"rnn": [0], "lstm": [0, 1, 2, 3], "gru": [1, 0, 2]}
_KERAS_NAME = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def _kind(cell) -> str:
    for cls, kind in ((BasicRNNCell, "rnn"), (LSTMCell, "lstm"), (GRUCell, "gru")):
        if isinstance(cell, cls):
            return kind
    raise NpnetError(f"no Keras layout for {type(cell).__name__}: expected a BasicRNNCell, LSTMCell, "
                     "GRUCell or SequenceModel")


def _gates(a: np.ndarray, kind: str, H: int) -> np.ndarray:
    """Gate blocks (last axis, G*H long) from npnet's order to Keras's or back; a new array."""
    blocks = np.split(np.asarray(a), len(_ORDER[kind]), axis=-1)
    return np.concatenate([blocks[k] for k in _ORDER[kind]], axis=-1)


def _keras_layer_name(cell, kind: str) -> str:
    """How to build the matching Keras layer, for messages: 'keras.layers.GRU(4, reset_after=False)'."""
    extra = {"rnn": f", activation={getattr(cell, 'nonlinearity', 'tanh')!r}",
             "gru": f", reset_after={getattr(cell, 'reset_after', True)}", "lstm": ""}[kind]
    return f"keras.layers.{_KERAS_NAME[kind]}({cell.hidden_size}{extra})"


def _cell_weights(cell, grads: bool) -> list:
    """[kernel, recurrent_kernel, bias] of one cell in Keras's layout (new arrays)."""
    kind, H = _kind(cell), cell.hidden_size
    src = cell.grads if grads else cell.params
    kernel, recurrent, b = (_gates(src[k], kind, H).copy() for k in ("W_x", "W_h", "b"))
    if kind == "gru" and cell.reset_after:
        # Keras keeps an input bias bias[0] and a recurrent bias bias[1]; npnet's b is their sum on
        # r and z, and b_hn is bias[1]'s h block. Values: bias[1] = [0, 0, b_hn]. Gradients: both
        # enter r and z only through the sum, so bias[1] gets [db_z, db_r, db_hn] (what autograd gives).
        recurrent_b = np.zeros_like(src["b"])                        # (3H,) npnet order r, z, n
        recurrent_b[2 * H:] = src["b_hn"]
        if grads:
            recurrent_b[:2 * H] = src["b"][:2 * H]
        b = np.stack([b, _gates(recurrent_b, kind, H)])              # (2, 3H)
    return [kernel, recurrent, b]


def _dense_weights(layer, grads: bool) -> list:
    src = layer.grads if grads else layer.params
    return [src["W"].copy()] + ([src["b"].copy()] if "b" in src else [])


def _model_layers(model) -> list:
    """[(name, kind, object)] in Keras's layer order: read-in, one entry per recurrent layer
    (kind "rnn" with the list of its cells: forward, then backward if bidirectional), read-out."""
    out = []
    if model.read_in is not None:
        if not isinstance(model.read_in, (LinearLayer, Embedding)):
            raise NpnetError(f"no Keras layout for a read_in {type(model.read_in).__name__}: expected a "
                             "LinearLayer (keras.layers.Dense), an Embedding (keras.layers.Embedding) or none")
        kind = "embedding" if isinstance(model.read_in, Embedding) else "dense"
        out.append(("read_in", kind, model.read_in))
    for l, cell in enumerate(model.cells):
        cells = [cell] + ([model.cells_reverse[l]] if model.bidirectional else [])
        out.append((f"layer {l}", "rnn", cells))
    if model.read_out is not None:
        out.append(("read_out", "dense", model.read_out))
    return out


def _is_model(target) -> bool:
    return all(hasattr(target, a) for a in ("cells", "cells_reverse", "read_in", "read_out", "bidirectional"))


def keras_weights(target, grads: bool = False) -> list:
    """What Keras's ``layer.get_weights()`` returns for the Keras twin of ``target``.

    Mapping (G = 1 SimpleRNN, 4 LSTM (i, f, c, o = npnet's i, f, g, o), 3 GRU (Keras z, r, h =
    npnet's r, z, n with the first two swapped); no transposes)::

        kernel           = W_x in Keras's gate order            (D, G*H)
        recurrent_kernel = W_h in Keras's gate order            (H, G*H)
        bias             = b in Keras's gate order              (G*H,)   SimpleRNN, LSTM, GRU(reset_after=False)
        GRU(reset_after=True): bias = [b, [0, 0, b_hn]] in Keras's gate order   (2, 3H)

    For a SequenceModel: one list per Keras layer, in order: read-in (``Dense``: [kernel (D, R),
    bias (R,)], no bias entry for a bias-free LinearLayer; ``Embedding``: [embeddings (V, E)]),
    each recurrent layer ([kernel, recurrent_kernel, bias], or for a bidirectional layer the forward
    cell's three then the backward cell's, as ``keras.layers.Bidirectional.get_weights()`` orders
    them), read-out (``Dense``). Keras's ``model.get_weights()`` is these lists concatenated.

    Parameters
    ----------
    target : BasicRNNCell, LSTMCell, GRUCell or SequenceModel
    grads : bool
        The gradients in the same layout instead (GRU reset_after=True: bias[1] gets
        [db_z, db_r, db_hn], since the two biases enter r and z only through their sum).

    Returns
    -------
    list of ndarray (a cell), or list of lists of ndarray (a SequenceModel); new arrays.
    """
    if not _is_model(target):
        return _cell_weights(target, grads)
    out = []
    for _, kind, obj in _model_layers(target):
        if kind == "rnn":
            out.append([w for cell in obj for w in _cell_weights(cell, grads)])
        else:
            out.append(_dense_weights(obj, grads))
    return out


def _array(value, what: str, shape: tuple) -> np.ndarray:
    """value as a float64 array, refused unless real, of ``shape`` and finite."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise NpnetError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise NpnetError(f"{what} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise NpnetError(f"{what} contains NaN or inf")
    return arr.astype(np.float64)


def _check_gru_bias(cell, bias, what: str) -> None:
    """A GRU bias of the other reset_after form gets a message naming the form it implies."""
    H, shape = cell.hidden_size, np.shape(bias)
    if cell.reset_after and shape == (3 * H,):
        raise NpnetError(f"{what} has shape {shape}: that is Keras's GRU(reset_after=False) (one bias per "
                         f"gate), but this GRUCell has reset_after=True, which needs bias (2, {3 * H}); build "
                         "npnet.GRUCell(..., reset_after=False) to load it")
    if not cell.reset_after and shape == (2, 3 * H):
        raise NpnetError(f"{what} has shape {shape}: that is Keras's GRU(reset_after=True) (input and "
                         f"recurrent biases), but this GRUCell has reset_after=False, which needs bias "
                         f"({3 * H},); build npnet.GRUCell(..., reset_after=True) to load it")


def _as_list(weights, what: str) -> list:
    if isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__len__"):
        raise NpnetError(f"{what} must be a list of arrays as Keras's get_weights() returns, "
                         f"got {type(weights).__name__}")
    return list(weights)


def _plan_cell(cell, weights, what: str):
    """Validate one cell's Keras weights; return the function that writes them."""
    kind, H, D = _kind(cell), cell.hidden_size, cell.input_size
    G = len(_ORDER[kind])
    twin = _keras_layer_name(cell, kind)
    bias_shape = (2, G * H) if kind == "gru" and cell.reset_after else (G * H,)
    weights = _as_list(weights, what)
    if len(weights) not in (2, 3):
        raise NpnetError(f"{what} must be [kernel {(D, G * H)}, recurrent_kernel {(H, G * H)}, bias {bias_shape}] "
                         f"as {twin}.get_weights() returns (no bias with use_bias=False), got {len(weights)} arrays")
    if len(weights) == 3 and kind == "gru":
        _check_gru_bias(cell, weights[2], f"{what} bias")
    kernel = _array(weights[0], f"{what} kernel ({twin})", (D, G * H))
    recurrent = _array(weights[1], f"{what} recurrent_kernel ({twin})", (H, G * H))
    bias = (_array(weights[2], f"{what} bias ({twin})", bias_shape) if len(weights) == 3
            else np.zeros(bias_shape))                               # use_bias=False: zero biases

    def write():
        p = cell.params
        np.copyto(p["W_x"], _gates(kernel, kind, H), casting="unsafe")
        np.copyto(p["W_h"], _gates(recurrent, kind, H), casting="unsafe")
        if bias.ndim == 2:                                           # GRU reset_after=True
            input_b, recurrent_b = _gates(bias[0], kind, H), _gates(bias[1], kind, H)   # npnet order r, z, n
            input_b[:2 * H] += recurrent_b[:2 * H]                   # r, z: the two biases add up (float64)
            np.copyto(p["b"], input_b, casting="unsafe")
            np.copyto(p["b_hn"], recurrent_b[2 * H:], casting="unsafe")
        else:
            np.copyto(p["b"], _gates(bias, kind, H), casting="unsafe")
    return write


def _plan_dense(layer, kind: str, weights, what: str):
    """Validate a Dense / Embedding layer's weights; return the function that writes them."""
    W = layer.params["W"]
    has_b = "b" in layer.params
    want = ("[embeddings {}]".format(W.shape) if kind == "embedding" else
            f"[kernel {W.shape}" + (f", bias {layer.params['b'].shape}]" if has_b else "] (no bias: use_bias=False)"))
    weights = _as_list(weights, what)
    if len(weights) != 1 + has_b:
        keras = "keras.layers.Embedding" if kind == "embedding" else "keras.layers.Dense"
        raise NpnetError(f"{what} must be {want} as {keras}.get_weights() returns, got {len(weights)} arrays")
    vals = [_array(w, f"{what} {name}", layer.params[k].shape)
            for w, name, k in zip(weights, ("embeddings" if kind == "embedding" else "kernel", "bias"), ("W", "b"))]

    def write():
        for k, v in zip(("W", "b"), vals):
            np.copyto(layer.params[k], v, casting="unsafe")
    return write


def load_keras_weights(target, weights) -> None:
    """Copy Keras weights (what ``layer.get_weights()`` returns) into ``target`` in place.

    The inverse of :func:`keras_weights` (see its mapping): a GRU(reset_after=True)'s two biases
    become ``b = bias[0] + [bias[1]_r, bias[1]_z, 0]`` and ``b_hn = bias[1]_h`` (npnet's order), summed
    in float64. A cell takes [kernel, recurrent_kernel, bias] ([kernel, recurrent_kernel] from a
    layer built with ``use_bias=False``: zero biases). A SequenceModel takes one list per Keras layer
    in :func:`keras_weights`'s order (Keras's ``model.get_weights()``, flat, is split the same way).

    The activation is not part of Keras's weights: build a BasicRNNCell with the SimpleRNN's
    activation, and a GRUCell with its reset_after (a bias of the other form is refused with a
    message naming the setting it implies). Values are cast to the cell's dtype and copied into
    the existing ``params`` arrays; everything is validated before anything is written.

    Raises
    ------
    NpnetError
        A wrong count of arrays, a wrong shape (the message names the Keras layer expected),
        non-real or non-finite values.
    """
    if not _is_model(target):
        _plan_cell(target, weights, f"weights for {type(target).__name__}")()
        return
    layers = _model_layers(target)
    groups = _as_list(weights, "weights for a SequenceModel")
    if groups and all(hasattr(g, "shape") for g in groups):         # flat, as model.get_weights()
        sizes = [len(w) for w in keras_weights(target)]
        if len(groups) != sum(sizes):
            raise NpnetError(f"a flat list of weights for this SequenceModel must hold {sum(sizes)} arrays "
                             f"({sizes} per layer), got {len(groups)}")
        groups = [groups[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))]
    names = [name for name, _, _ in layers]
    if len(groups) != len(layers):
        raise NpnetError(f"weights for this SequenceModel must be one list per Keras layer {names}, "
                         f"got {len(groups)} lists")
    writes = []
    for (name, kind, obj), group in zip(layers, groups):
        if kind != "rnn":
            writes.append(_plan_dense(obj, kind, group, f"weights of {name}"))
            continue
        group = _as_list(group, f"weights of {name}")
        if len(obj) == 2 and len(group) % 2:
            raise NpnetError(f"weights of bidirectional {name} must be the forward layer's arrays then the "
                             f"backward layer's (as Bidirectional.get_weights()), got {len(group)} arrays")
        half = len(group) // len(obj)
        for k, cell in enumerate(obj):
            direction = ("forward", "backward")[k] if len(obj) == 2 else ""
            writes.append(_plan_cell(cell, group[k * half:(k + 1) * half], f"weights of {name} {direction}".rstrip()))
    for write in writes:                                             # everything valid: now write in place
        write()
