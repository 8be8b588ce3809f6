"""npnet: recurrent neural networks in pure NumPy with hand-written backpropagation through time."""
import importlib as _importlib
import sys as _sys

from .layer import Layer, NpnetError, ShapeError, NotForwardedError
from .linear import LinearLayer
from .embedding import Embedding
from .sampling import sample
from .ngram import CharNGram
from .cells import RecurrentCell, BasicRNNCell, LSTMCell, GRUCell
from .gradcheck import gradcheck, rel_error
from . import init, activations
from .conv import Conv2D, MaxPool2D, Flatten
from .relu import ReLU
from .sequential import Sequential
from .losses import MSELoss, SoftmaxCrossEntropyLoss
from . import interop
from . import data
from .data import tasks, datasets, pad_sequences
from .training import optim, sweep
from .training.clip import clip_grad_norm, clip_grad_value, check_finite
from .training.checkpoint import save_checkpoint, load_checkpoint, CheckpointError
from .model import SequenceModel
from .training.runner import SequenceRunner
from .training.learner import Learner
from .training.callbacks import Callback, EarlyStopping, TimeLimit, CSVLogger, TensorBoardLogger
from .training import lr_scheduler as _lr_scheduler

__version__ = "0.1.0"

# Modules that moved into subpackages stay importable under their old names
# (``import npnet.optim``, ``from npnet.lstm import LSTMCell``, ...): each old name is
# the very module object of its new home, so classes and state are shared.
_MOVED = {
    "cell": "cells.base", "rnn": "cells.rnn", "lstm": "cells.lstm", "gru": "cells.gru",
    "runner": "training.runner", "learner": "training.learner", "optim": "training.optim",
    "clip": "training.clip", "checkpoint": "training.checkpoint", "sweep": "training.sweep",
    "tasks": "data.tasks", "datasets": "data.datasets",
}
for _old, _new in _MOVED.items():
    _sys.modules[f"{__name__}.{_old}"] = globals()[_old] = _importlib.import_module(f".{_new}", __name__)
del _old, _new
# PyTorch's spelling: ``npnet.optim.lr_scheduler`` (``from npnet.optim.lr_scheduler import StepLR``).
optim.lr_scheduler = _lr_scheduler
_sys.modules[f"{__name__}.optim.lr_scheduler"] = _lr_scheduler
