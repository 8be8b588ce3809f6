"""The command-line options every experiment shares, and argparse types that turn a bad value
into argparse's usage error (exit code 2)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

CELLS = ("rnn", "relu", "irnn", "lstm", "gru")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")


# -- argument types: a bad value becomes argparse's usage error (exit code 2) ------------
def _number(kind, low, strict: bool, what: str):
    """An argparse type: ``kind(text)`` that must be finite and > low (strict) or >= low."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (np.isfinite(v) and (v > low if strict else v >= low)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v
    parse.__name__ = kind.__name__                   # argparse names the type in its messages
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in (0, 1] (an accuracy to reach, a share of runs)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < v <= 1.0:                                  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {v}")
    return v


positive_int = _number(int, 0, True, "an integer >= 1")
nonneg_int = _number(int, 0, False, "an integer >= 0")
positive_float = _number(float, 0.0, True, "a finite number > 0")
nonneg_float = _number(float, 0.0, False, "a finite number >= 0")


def int_list(text: str) -> list[int]:
    """'5,10,20' -> [5, 10, 20]: comma-separated integers, each >= 1."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return vals


def str_list(choices=None):
    """An argparse type: 'a,b' -> ['a', 'b'], at least one value, each in ``choices`` if given."""
    def parse(text: str) -> list[str]:
        vals = [v.strip() for v in text.split(",") if v.strip()]
        if not vals:
            raise argparse.ArgumentTypeError("expected at least one value")
        bad = [v for v in vals if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown value {bad[0]!r}; choose from {', '.join(choices)}")
        return vals
    parse.__name__ = "list"
    return parse


def add_sweep_options(group, jobs_default=-1):
    """--jobs and --dask-scheduler, the two ways a sweep fans out (npnet.sweep.run_sweep).

    ``jobs_default=None`` means "one per core, but 1 with --quick" (the script decides).
    """
    jobs_help = ("joblib worker processes (-1: one per core)" if jobs_default is not None else
                 "joblib worker processes (default -1: one per core; 1 with --quick)")
    group.add_argument("--jobs", type=int, default=jobs_default, help=jobs_help)
    group.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                       help="run the sweep on a Dask cluster, e.g. tcp://host:8786 (see docs/gradients.md)")


def make_parser(task: str, description: str, *, hidden=64, layers=1, cell="lstm", batch_size=64,
                steps=2000, lr=1e-2, optimizer="adam", clip=1.0, dtype="float64", eval_every=25,
                target=None, lr_decay=1.0) -> argparse.ArgumentParser:
    """The options every experiment has, with the script's tuned defaults.

    ``--steps`` is the most steps to take (training stops earlier once the held-out
    batch reaches ``--target``); ``--epochs`` E instead runs E passes of
    ``--epoch-size`` batches.
    """
    p = argparse.ArgumentParser(prog=f"python experiments/{task}.py", description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(task=task)
    g = p.add_argument_group("model and training (shared by every experiment)")
    g.add_argument("--cell", choices=CELLS, default=cell,
                   help="rnn = tanh RNN, relu = ReLU RNN with the same random (orthogonal) recurrent "
                        "init, irnn = ReLU RNN with identity recurrent init (Le et al. 2015), lstm, gru")
    g.add_argument("--hidden", type=positive_int, default=hidden, help="hidden units per layer (H)")
    g.add_argument("--layers", type=positive_int, default=layers, help="stacked recurrent layers")
    g.add_argument("--match-params", action="store_true",
                   help="resize --hidden so the model has about as many parameters as an LSTM "
                        "with --hidden units (for comparing cells)")
    g.add_argument("--batch-size", type=positive_int, default=batch_size, help="sequences per batch (B)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, default=steps,
                        help="most optimiser steps (fewer if --target is reached)")
    length.add_argument("--epochs", type=positive_int, default=None,
                        help="instead of --steps: passes of --epoch-size fresh batches")
    g.add_argument("--epoch-size", type=positive_int, default=100, help="batches per epoch (with --epochs)")
    g.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    g.add_argument("--lr-decay", type=positive_float, default=lr_decay,
                   help="learning-rate factor reached at the last step (exponential decay; 1: constant)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer, help="npnet.optim optimiser, built with --lr")
    g.add_argument("--clip", type=nonneg_float, default=clip,
                   help="global gradient-norm clipping threshold (0: no clipping)")
    g.add_argument("--bptt", type=positive_int, default=None,
                   help="truncated BPTT window in steps (default: full BPTT)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="seeds the model, the data and the test set")
    g.add_argument("--dtype", choices=("float64", "float32"), default=dtype, help="precision of the model and data")
    g.add_argument("--eval-every", type=positive_int, default=eval_every,
                   help="steps between evaluations on the held-out batch")
    g.add_argument("--target", type=fraction, default=target,
                   help="stop once the held-out metric reaches this value, in (0, 1]")
    g.add_argument("--no-early-stop", action="store_true", help="ignore --target: train all steps")
    g.add_argument("--out", default=None, help="run folder, new or existing (default: runs/<task>-<timestamp>)")
    g.add_argument("--quiet", action="store_true", help="no progress bar; only the final summary line")
    return p


def check_shared(args) -> None:
    """The checks every script needs (ValueError: a usage error): ``--out`` must not name an
    existing file, and ``--dask-scheduler`` needs dask.distributed to be importable."""
    out = getattr(args, "out", None)
    if out and os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} is an existing file; give a folder (new or existing)")
    if getattr(args, "dask_scheduler", None):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("--dask-scheduler needs dask.distributed, which is not installed: "
                             "pip install 'npnet[dask]' (or leave --dask-scheduler out)") from None


# What a data folder named on the command line must hold: every pattern of one of the groups.
DATA_FILES = {
    "names": ([("*.txt",)], "Language.txt files such as English.txt"),
    "mnist": ([(f"{s}-images-idx3-ubyte*", f"{s}-labels-idx1-ubyte*") for s in ("t10k", "train")],
              "the IDX files t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, or train-..., .gz or raw"),
}


def check_data_dir(option: str, path, kind: str) -> None:
    """A usage check (ValueError) for ``option``: ``path`` (None: not given) must be a folder
    holding the ``kind`` data set ("names" or "mnist"), so a wrong folder fails before anything runs."""
    if path is None:
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{option} {path} is not a directory")
    groups, want = DATA_FILES[kind]
    if not any(all(any(folder.glob(pattern)) for pattern in group) for group in groups):
        raise ValueError(f"{option} {path} holds no {kind} data (expected {want})")


def parse(parser: argparse.ArgumentParser, argv=None, check=None) -> argparse.Namespace:
    """Parse ``argv``; :func:`check_shared` and ``check(args)`` may raise ValueError, which
    becomes a usage error (exit 2) before anything is written."""
    args = parser.parse_args(argv)
    try:
        check_shared(args)
        if check is not None:
            check(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


