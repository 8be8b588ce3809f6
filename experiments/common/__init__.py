"""What every experiment script shares: the command-line options (:mod:`.cli`), the model and the
seeded streams (:mod:`.model`), the run folder and the training call (:mod:`.run`), and the
plots (:mod:`.plots`: the one learning curve, the one confusion matrix).

A script builds its parser with :func:`make_parser`, adds its own options, calls
:func:`parse` (bad values exit with argparse's usage error, code 2) and then uses
:class:`Run`. Scripts import npnet; npnet never imports this folder.
"""
from __future__ import annotations

import os

# The matrices here are small (H ~ 64): a multi-threaded BLAS only adds synchronisation, and on
# a busy 2-core machine its spinning threads slow a step down ten-fold. Must precede numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402,F401  (the names common.py exported stay importable from here)
import datetime  # noqa: E402,F401
import json  # noqa: E402,F401
import math  # noqa: E402,F401
import subprocess  # noqa: E402,F401
import sys  # noqa: E402
import time  # noqa: E402,F401

import numpy as np  # noqa: E402,F401

try:
    import npnet  # noqa: E402,F401
except ImportError:                                   # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import npnet  # noqa: E402,F401
from npnet.data import Stream  # noqa: E402,F401

from .cli import (CELLS, OPTIMIZERS, _number, add_sweep_options, check_data_dir, fraction, int_list,  # noqa: E402,F401
                  make_parser, nonneg_float, nonneg_int, parse, positive_float, positive_int, str_list)
from .model import (CELL_ALIASES, GATES, UNSCORED, _STREAMS, ScoredCrossEntropy, build_model,  # noqa: E402,F401
                    cell_args, count_params, matched_hidden, scored_accuracy, scored_targets, seed_rng)
from .plots import confusion_matrix, figure, plot_confusion, plot_learning_curve  # noqa: E402,F401
from .run import (EpochRecords, Run, TargetReached, _git_commit, _jsonable, json_floats, lr_schedule,  # noqa: E402,F401
                  write_json, write_table)
