"""What every experiment script shares: the command-line options, the model, the training loop,
and the run folder (config.json, metrics.csv, summary.json, checkpoint, PNG plots).

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

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

try:
    import npnet  # noqa: E402
except ImportError:                                   # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import npnet  # noqa: E402
from npnet.data import Stream  # noqa: E402

CELLS = ("rnn", "irnn", "lstm", "gru")
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
                   help="rnn = tanh RNN, irnn = ReLU RNN with identity recurrent init, lstm, gru")
    g.add_argument("--hidden", type=positive_int, default=hidden, help="hidden units per layer (H)")
    g.add_argument("--layers", type=positive_int, default=layers, help="stacked recurrent layers")
    g.add_argument("--match-params", action="store_true",
                   help="resize --hidden so the model has about as many parameters as an LSTM "
                        "with --hidden units (for comparing cells)")
    g.add_argument("--batch-size", type=positive_int, default=batch_size)
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, default=steps,
                        help="most optimiser steps (fewer if --target is reached)")
    length.add_argument("--epochs", type=positive_int, default=None,
                        help="instead of --steps: passes of --epoch-size fresh batches")
    g.add_argument("--epoch-size", type=positive_int, default=100, help="batches per epoch (with --epochs)")
    g.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    g.add_argument("--lr-decay", type=positive_float, default=lr_decay,
                   help="learning-rate factor reached at the last step (exponential decay; 1: constant)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer)
    g.add_argument("--clip", type=nonneg_float, default=clip,
                   help="global gradient-norm clipping threshold (0: no clipping)")
    g.add_argument("--bptt", type=positive_int, default=None,
                   help="truncated BPTT window in steps (default: full BPTT)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="seeds the model, the data and the test set")
    g.add_argument("--dtype", choices=("float64", "float32"), default=dtype)
    g.add_argument("--eval-every", type=positive_int, default=eval_every,
                   help="steps between evaluations on the held-out batch")
    g.add_argument("--target", type=float, default=target,
                   help="stop once the held-out metric reaches this value")
    g.add_argument("--no-early-stop", action="store_true", help="ignore --target: train all steps")
    g.add_argument("--out", default=None, help="run folder (default: runs/<task>-<timestamp>)")
    g.add_argument("--quiet", action="store_true", help="no progress bar; only the final summary line")
    return p


def parse(parser: argparse.ArgumentParser, argv=None, check=None) -> argparse.Namespace:
    """Parse ``argv``; ``check(args)`` may raise ValueError, which becomes a usage error (exit 2)."""
    args = parser.parse_args(argv)
    if check is not None:
        try:
            check(args)
        except ValueError as exc:
            parser.error(str(exc))
    return args


# -- the model ---------------------------------------------------------------------
GATES = {"lstm": 4, "gru": 3, "rnn": 1, "irnn": 1}


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
    return npnet.SequenceModel(input_size, args.hidden, num_layers=args.layers, cell=args.cell,
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


# -- the run folder ------------------------------------------------------------------
def json_floats(values) -> str:
    """JSON of a (nested) list of floats at 5 significant digits, NaN and inf kept: how the
    sweeps store arrays in CSV cells (``npnet.sweep.read_results`` raises the csv module's
    field limit to read them back)."""
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(json_floats(v) for v in values) + "]"
    v = float(values)
    return json.dumps(float(f"{v:.5g}") if math.isfinite(v) else v)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
        f.write("\n")


class Run:
    """One run folder and its clock.

    ``Run(args)`` creates ``args.out`` (default ``runs/<task>-<timestamp>``) and starts the
    wall clock; :meth:`write_config` writes config.json; :meth:`train` fits with the Learner
    (which appends metrics.csv); :meth:`finish` saves the checkpoint, summary.json and prints
    the one-line summary.
    """

    def __init__(self, args, folder: bool = True):
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.args = args
        self.learner = None
        self.quiet = bool(args.quiet) or not folder
        self.dir = None
        if folder:                            # folder=False: a sweep worker, nothing written
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.dir = args.out or os.path.join("runs", f"{args.task}-{stamp}")
            os.makedirs(self.dir, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write_config(self, **extra) -> dict:
        cfg = {k: v for k, v in vars(self.args).items()}
        cfg.update(extra)
        cfg.update({"npnet_version": npnet.__version__, "commit": _git_commit(),
                    "python": sys.version.split()[0], "numpy": np.__version__,
                    "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
        write_json(self.path("config.json"), cfg)
        return cfg

    # -- training -------------------------------------------------------------------
    def make_learner(self, model, loss, metric, log_every: int = 10):
        a = self.args
        self.learner = npnet.Learner(model, loss, a.optimizer, lr=a.lr, bptt=a.bptt,
                                     clip=a.clip if a.clip > 0 else None, metric=metric,
                                     out_dir=self.dir, progress=not self.quiet, log_every=log_every,
                                     tensorboard=False)
        return self.learner

    def train(self, model, loss, metric, batches, eval_batches, higher_is_better: bool = True,
              log_every: int = 10):
        """Fit on ``batches(rng, num_batches)`` (a task generator) with early stopping on --target.

        Returns the Learner (its ``history`` holds the records also written to metrics.csv).
        """
        a = self.args
        learner = self.make_learner(model, loss, metric, log_every)
        per_pass = a.epoch_size if a.epochs else None
        stream = Stream(lambda rng: batches(rng, per_pass), seed_rng(a.seed, "train"))
        self.stopped_early = False

        def early_stop(lrn, rec):
            if a.target is None or a.no_early_stop or "eval_metric" not in rec:
                return False
            m = rec["eval_metric"]
            hit = m >= a.target if higher_is_better else m <= a.target
            if hit:
                self.stopped_early = True
            return hit

        total = a.epochs * a.epoch_size if a.epochs else a.steps

        def decay(lrn, rec):                               # lr_t = lr * lr_decay ** (t / total)
            if a.lr_decay != 1.0:
                lrn.optimizer.lr = a.lr * a.lr_decay ** (min(lrn.step, total) / total)
            return False

        kw = {"epochs": a.epochs} if a.epochs else {"steps": a.steps}
        self.train_t0 = time.perf_counter()
        learner.fit(stream, eval_batches=eval_batches, eval_every=a.eval_every, callbacks=[early_stop, decay], **kw)
        self.train_s = time.perf_counter() - self.train_t0
        return learner

    # -- the end --------------------------------------------------------------------
    def finish(self, model, headline: str, value: float, baseline: float, baseline_name: str,
               fmt: str = ".4f", **extra) -> dict:
        """Checkpoint, summary.json, and the one-line summary. Returns the summary dict."""
        step = self.learner.step if self.learner is not None else 0
        opt = self.learner.optimizer if self.learner is not None else None
        npnet.save_checkpoint(self.path("checkpoint.npz"), model, opt, step=step,
                              extra={"task": self.args.task, headline: float(value)})
        wall = self.elapsed()
        summary = {headline: float(value), "headline": headline, "baseline": float(baseline),
                   "baseline_name": baseline_name, "wall_s": round(wall, 2), "steps": int(step),
                   "train_s": round(getattr(self, "train_s", 0.0), 2),
                   "cpu_s": round(time.process_time() - self.cpu0, 2),
                   "stopped_early": bool(getattr(self, "stopped_early", False)),
                   "cell": self.args.cell, "hidden": self.args.hidden,
                   "params": int(model.num_params), "seed": self.args.seed, **extra}
        write_json(self.path("summary.json"), summary)
        print(f"{self.args.task}: {headline} {value:{fmt}} ({baseline_name} {baseline:{fmt}}) "
              f"{self.args.cell} H={self.args.hidden}, {step} steps, {wall:.1f} s -> {self.dir}",
              flush=True)
        return summary


# -- plots -----------------------------------------------------------------------------
def figure(width: float = 8, height: float = 3.5, rows: int = 1, cols: int = 1):
    """A matplotlib Figure on the Agg canvas (no display needed) and its axes array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def plot_learning_curve(history: list, path: str, metric_name: str, target=None, baseline=None,
                        log_metric: bool = False) -> None:
    """Loss (train, held-out) and the metric (train, held-out) against the step."""
    fig, ax = figure(10, 3.6, 1, 2)
    for col, (key, label) in enumerate((("loss", "loss"), ("metric", metric_name))):
        a = ax[0, col]
        for k, style, name in ((key, "-", "train"), ("eval_" + key, "o-", "held-out")):
            pts = [(r["step"], r[k]) for r in history if k in r and r[k] is not None]
            if pts:
                s, v = zip(*pts)
                a.plot(s, v, style, lw=1, ms=3, label=name)
        if col == 1 and target is not None:
            a.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
        if col == 1 and baseline is not None:
            a.axhline(baseline, color="r", ls="--", lw=1, label=f"baseline {baseline:.3g}")
        if key == "loss" or log_metric:
            a.set_yscale("log")
        a.set_xlabel("step")
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
