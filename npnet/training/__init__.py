"""What trains a model: the runner (the one training step), the Learner loop, optimisers,
clipping, callbacks, learning-rate schedulers, checkpoints and sweeps."""
from . import optim
from .clip import clip_grad_norm, clip_grad_value, check_finite
from .checkpoint import save_checkpoint, load_checkpoint, CheckpointError
from .runner import SequenceRunner
from .learner import Learner
from .callbacks import Callback, EarlyStopping, TimeLimit, CSVLogger, TensorBoardLogger
from . import lr_scheduler
from . import sweep

__all__ = ["optim", "sweep", "clip_grad_norm", "clip_grad_value", "check_finite", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "SequenceRunner", "Learner",
           "Callback", "EarlyStopping", "TimeLimit", "CSVLogger", "TensorBoardLogger", "lr_scheduler"]
