"""The model of the command line, the seeded random streams, and scoring some steps of a sequence
but not others (the memory task's recall steps)."""
from __future__ import annotations

import numpy as np

import npnet


# -- the model ---------------------------------------------------------------------
GATES = {"lstm": 4, "gru": 3, "rnn": 1, "relu": 1, "irnn": 1}
# The command line's cell names that are not SequenceModel cell types: (cell type, cell kwargs).
# "relu" is the plain ReLU RNN: BasicRNNCell's default random init (Glorot W_x, orthogonal W_h),
# unlike "irnn" (ReLU with W_h = I, Le et al. 2015); "rnn" stays the tanh RNN.
CELL_ALIASES = {"relu": ("rnn", {"nonlinearity": "relu"})}


def cell_args(cell: str) -> dict:
    """SequenceModel keyword arguments for a command-line cell name: {"cell": ..., "cell_kwargs": ...}."""
    kind, kwargs = CELL_ALIASES.get(cell, (cell, None))
    return {"cell": kind, "cell_kwargs": None if kwargs is None else dict(kwargs)}


def count_params(cell: str, input_size: int, hidden: int, layers: int, output_size: int | None) -> int:
    """Parameters of a SequenceModel: per layer G (D H + H H + H) (+ H for GRU's b_hn), plus read-out."""
    n, d = 0, input_size
    for _ in range(layers):
        n += GATES[cell] * (d * hidden + hidden * hidden + hidden) + (hidden if cell == "gru" else 0)
        d = hidden
    if output_size is not None:
        n += hidden * output_size + output_size
    return n


def matched_hidden(cell: str, input_size: int, ref_hidden: int, layers: int, output_size: int | None) -> int:
    """The H for ``cell`` whose parameter count is closest to an LSTM with ``ref_hidden`` units."""
    want = count_params("lstm", input_size, ref_hidden, layers, output_size)
    return min(range(1, 8 * ref_hidden + 64),
               key=lambda h: abs(count_params(cell, input_size, h, layers, output_size) - want))


def build_model(args, input_size: int, output_size: int | None, return_sequences: bool = True):
    """The SequenceModel of the command line (applies --match-params to args.hidden)."""
    if args.match_params:
        args.hidden = matched_hidden(args.cell, input_size, args.hidden, args.layers, output_size)
    return npnet.SequenceModel(input_size, args.hidden, num_layers=args.layers, **cell_args(args.cell),
                               output_size=output_size, return_sequences=return_sequences,
                               dtype=args.dtype, rng=seed_rng(args.seed, "model"))


_STREAMS = {"model": 0, "train": 1, "eval": 2, "test": 3}


def seed_rng(seed: int, stream: str) -> np.random.Generator:
    """Independent generators per use (model init, training data, held-out batch, test set)."""
    return np.random.default_rng([seed, _STREAMS[stream]])


# -- scored positions without a padding mask --------------------------------------------
UNSCORED = -1


def ScoredCrossEntropy(dtype=np.float64):
    """Cross-entropy over the scored steps only, where the *targets* say which steps count.

    A model's ``mask`` means padding (the state is carried through a masked step and its
    input ignored), so a task's score mask must not be passed as the model's mask: the
    memory task would hide the very symbols to be stored. Instead the targets hold
    ``UNSCORED`` (-1) on the steps that are not scored, which the library loss ignores.
    """
    return npnet.SoftmaxCrossEntropyLoss(dtype=dtype, ignore_index=UNSCORED)


def scored_targets(y: np.ndarray, score_mask: np.ndarray) -> np.ndarray:
    """Class targets with UNSCORED where ``score_mask`` is False."""
    return np.where(score_mask, y, UNSCORED)


def scored_accuracy(pred, y, mask=None) -> float:
    """Accuracy of argmax(pred) over the steps whose target is not UNSCORED."""
    scored = np.asarray(y) != UNSCORED
    if mask is not None:
        scored &= mask
    return float((np.argmax(pred, axis=-1) == y)[scored].mean())
