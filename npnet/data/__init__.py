"""What feeds a model: batching (``Stream``, ``take``, ``minibatches``, ``pad_sequences``), the
synthetic task generators (:mod:`npnet.data.tasks`) and the real data sets."""
from .batching import *  # noqa: F401,F403  the names of the former npnet.data module
from .batching import __all__ as _batching_all
from . import tasks, datasets

__all__ = list(_batching_all) + ["tasks", "datasets"]
