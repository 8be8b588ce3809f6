"""npnet: recurrent neural networks in pure NumPy with hand-written backpropagation through time."""
from .layer import Layer, NpnetError, ShapeError, NotForwardedError
from .linear import LinearLayer
from .cell import RecurrentCell
from .rnn import BasicRNNCell
from .gradcheck import gradcheck, rel_error
from . import init, activations

__version__ = "0.1.0"
from .gru import GRUCell
from .lstm import LSTMCell
from . import tasks
from .conv import Conv2D, MaxPool2D, Flatten
from .losses import MSELoss, SoftmaxCrossEntropyLoss
from . import interop
from . import datasets
from . import optim
from .clip import clip_grad_norm, clip_grad_value, check_finite
from .checkpoint import save_checkpoint, load_checkpoint, CheckpointError
from .model import SequenceModel
from .runner import SequenceRunner
from .learner import Learner
from .data import pad_sequences
