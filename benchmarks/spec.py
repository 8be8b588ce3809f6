"""What the benchmark measures: the cells, the (B, T, D, H) configurations, the dtypes.

A ``Case`` is one (cell, configuration, dtype) triple; every measuring function takes one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    npnet_class: str      # the class exported by npnet
    gates: int            # G: gate blocks in W_x (D, G H)
    torch_class: str      # torch.nn module with the same equations
    label: str            # the name in the tables


CELLS = {
    "rnn": CellSpec("BasicRNNCell", 1, "RNN", "RNN tanh"),
    "lstm": CellSpec("LSTMCell", 4, "LSTM", "LSTM"),
    "gru": CellSpec("GRUCell", 3, "GRU", "GRU"),
}
LABEL = {name: spec.label for name, spec in CELLS.items()}
# name -> (B, T, D, H)
CONFIGS = {
    "A": (32, 100, 32, 128),
    "B": (64, 100, 128, 256),
    "C": (64, 50, 256, 512),
    "D": (1, 1000, 16, 64),
    "E": (32, 100, 256, 256),   # the char-LM's second LSTM layer (bench_train.py); not in the default tables
}
DTYPES = ("float32", "float64")
NONLINEARITY = "tanh"     # the RNN cell benchmarked (PyTorch's nn.RNN default)


@dataclass(frozen=True)
class Case:
    """One measurement: a cell name, a configuration name and a dtype name."""
    cell: str
    config: str
    dtype: str

    @property
    def shape(self) -> tuple:
        """(B, T, D, H)."""
        return CONFIGS[self.config]

    @property
    def gates(self) -> int:
        return CELLS[self.cell].gates

    def row(self) -> dict:
        """The identifying fields every result row starts with."""
        B, T, D, H = self.shape
        return {"cell": self.cell, "config": self.config, "B": B, "T": T, "D": D, "H": H,
                "dtype": self.dtype}


def flops(cfg: tuple, G: int) -> tuple:
    """(forward, forward+backward) flop counts: 2 T B (D+H) G H forward, backward about twice."""
    B, T, D, H = cfg
    f = 2.0 * T * B * (D + H) * G * H
    return f, 3.0 * f
