"""The recurrent cells: the fast kernels (rnn, lstm, gru), their shared base and the textbook reference."""
from .base import RecurrentCell
from .rnn import BasicRNNCell
from .lstm import LSTMCell
from .gru import GRUCell

__all__ = ["RecurrentCell", "BasicRNNCell", "LSTMCell", "GRUCell"]
