"""Embedding: integer ids -> rows of a learned table (torch.nn.Embedding, keras.layers.Embedding).

The read-in of a token model: ``SequenceModel(read_in=npnet.Embedding(V, E), input_size=E)``
takes (B, T) integer input. The backward pass adds rows of dy into the table without a Python
loop over tokens (np.add.at on the flattened table, the fastest of five ways measured in
benchmarks/bench_embedding.py); the plain 2-D ``np.add.at`` stays beside it as the reference.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer, NpnetError, ShapeError, check_input
from .sequential import register_layer


def accumulate_rows_reference(dW: np.ndarray, ids: np.ndarray, dy: np.ndarray) -> None:
    """dW[ids[n]] += dy[n] for every n, repeated ids adding up (the plain reference: np.add.at).

    dW (V, E), ids (N,) ints in [0, V), dy (N, E).
    """
    np.add.at(dW, ids, dy)


def accumulate_rows(dW: np.ndarray, ids: np.ndarray, dy: np.ndarray, skip: int | None = None) -> None:
    """The same sum as :func:`accumulate_rows_reference`, 3-5x faster: ``np.add.at`` on the
    flattened table with 1-D indices ``id * E + e``, which takes NumPy's fast path for ``ufunc.at``
    (the 2-D form does not). Every element receives its terms in the same order n = 0 .. N-1, so
    the result is bit-identical to the reference (tested). Measured against sort + reduceat,
    unique + bincount, bincount per column and a one-hot product: benchmarks/bench_embedding.py.

    dW (V, E) C-contiguous, ids (N,) ints in [0, V), dy (N, E); ``skip``: a row left untouched
    (padding_idx): its value is kept and put back, so not even rounding reaches it.
    """
    E = dW.shape[1]
    kept = None if skip is None else dW[skip].copy()                  # (E,)
    flat = (ids[:, None] * E + np.arange(E)).reshape(-1)              # (N*E,) index of dW.flat
    np.add.at(dW.reshape(-1), flat, dy.reshape(-1))                   # reshape: a view (contiguous)
    if kept is not None:
        dW[skip] = kept


@register_layer                   # checkpoints rebuild an Embedding read-in from its config
class Embedding(Layer):
    """A lookup table of V vectors of size E, indexed by integer ids.

    Equations (ids of any shape S, W (V, E))::

        forward:   y[s] = W[ids[s]]                                   y: S + (E,)
        backward:  dW[v] += sum over {s : ids[s] = v} of dy[s]        (repeated ids add up)
                   dW[padding_idx] is never changed (as PyTorch: the padding row gets no gradient)
                   d ids: ids are discrete, so there is no gradient; bprop returns zeros of
                   ids' shape (in the layer dtype) so that a model can reshape it like any dx
                   (PyTorch returns None).

    Parameters
    ----------
    num_embeddings : int (V), the number of ids
    embedding_dim : int (E), the size of each vector
    padding_idx : int or None
        This row is initialised to zeros and never receives a gradient (a negative value counts
        from the end, as PyTorch: -1 is V-1). None: no padding row.
    dtype, rng : see :class:`npnet.layer.Layer`; W ~ N(0, 1) as ``torch.nn.Embedding``.

    Input: integer (signed or unsigned) ids in [0, V); anything else raises ShapeError.
    Params: ``W`` (V, E) (PyTorch's ``nn.Embedding.weight``, same layout).

    Cache: the flattened ids (N,) and their shape; dW needs nothing else.
    """

    # SequenceModel hands a read-in with this flag its input uncast: (B, T) integer ids, reshaped to (B*T,).
    takes_indices = True

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise NpnetError(f"{name} must be an int >= 1, got {v!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        V = self.num_embeddings
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)) \
                    or not -V <= padding_idx < V:
                raise NpnetError(f"padding_idx must be an int in [-{V}, {V}) or None, got {padding_idx!r}")
            padding_idx = int(padding_idx) % V
        self.padding_idx = padding_idx
        W = self.rng.standard_normal((V, self.embedding_dim))            # (V, E)
        if padding_idx is not None:
            W[padding_idx] = 0.0
        self.add_param("W", W)

    def get_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "dtype": self.dtype.name}

    def check_ids(self, ids, name: str = "ids") -> np.ndarray:
        """Return ``ids`` as an integer ndarray, or raise ShapeError naming what was expected."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise ShapeError(f"{name} must be an integer array of ids in [0, {self.num_embeddings}) "
                             f"(Embedding's input), got dtype {ids.dtype}")
        if ids.ndim == 0:
            raise ShapeError(f"{name} must have at least 1 dimension, got a scalar")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            bad = ids[(ids < 0) | (ids >= self.num_embeddings)]
            raise ShapeError(f"{name} must lie in [0, {self.num_embeddings}) (num_embeddings), "
                             f"got {bad.size} id(s) outside, e.g. {int(bad.flat[0])}")
        return ids

    def fprop(self, ids) -> np.ndarray:
        """ids (...) ints -> y (..., E); caches the ids for bprop."""
        ids = self.check_ids(ids)
        self._cache = (ids.reshape(-1).astype(np.intp, copy=False), ids.shape)
        return self.forward(ids)

    def forward(self, ids) -> np.ndarray:
        """The lookup alone: no cache (for inference and closed loops)."""
        ids = self.check_ids(ids)
        return self.params["W"][ids]                                       # (..., E) a copy

    def bprop(self, dy) -> np.ndarray:
        """dy (..., E) -> zeros like ids (no gradient for ids); adds into grads['W']."""
        flat, shape = self._take_cache()
        dy = check_input(dy, "dy", -1, self.embedding_dim, self.dtype)
        if dy.shape != shape + (self.embedding_dim,):
            raise ShapeError(f"dy must have shape {shape + (self.embedding_dim,)}, got {dy.shape}")
        accumulate_rows(self.grads["W"], flat, dy.reshape(-1, self.embedding_dim), skip=self.padding_idx)
        return np.zeros(shape, self.dtype)


__all__ = ["Embedding", "accumulate_rows", "accumulate_rows_reference"]
