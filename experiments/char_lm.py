"""Character-level language model on Tiny Shakespeare (char-rnn in npnet), with sampling and cell pictures.

    python experiments/char_lm.py --data ../shared/data/tinyshakespeare/input.txt
    python experiments/char_lm.py --generate --checkpoint runs/char_lm-... --prime "ROMEO:" --length 500
    python experiments/char_lm.py --visualize --checkpoint runs/char_lm-... --data ../shared/data/tinyshakespeare

Embedding -> stacked LSTM (--cell gru|rnn) -> linear read-out, trained with stateful truncated BPTT
over B parallel streams of the first 90 % of the text (passes of --reset-every chunks of random windows,
the state reset between passes; Adam, global-norm clipping), for --time-limit
seconds or --steps, with the learning rate decayed (cosine) over that budget and the parameters of
the best validation record restored. Reports nats and bits per character and perplexity over the
whole last 10 % (state carried, B streams) beside the unigram and bigram baselines of the training
part, and samples from --prime. Run folder: config.json, metrics.csv, summary.json, checkpoint.npz,
learning_curve.png, samples.txt (with --visualize: unit_*.png, gate_saturation.png; char_lm_viz.py).
"""
from __future__ import annotations

import os
import sys

# This model's products are large (B=32, H=256): two BLAS threads beat one on a 2-core machine
# (0.26 s vs 0.35 s a step). Before `import common`, which would pin one; the environment wins.
# Only as a script: imported (tests), it must not change what later subprocesses inherit.
if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "2")
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:       # imported from elsewhere (tests)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402
from char_lm_tools import from_checkpoint, generate, load_run  # noqa: E402,F401  (--generate, --visualize RUN)
from npnet.data import text as tx  # noqa: E402
from npnet.optim.lr_scheduler import LambdaLR  # noqa: E402

TASK = "char_lm"
SCHEDULES = ("cosine", "exponential", "constant")


def parser():
    p = common.make_parser(TASK, __doc__.split("\n\n")[0].strip(), hidden=256, layers=2, batch_size=32,
                           steps=None, lr=4e-3, clip=5.0, dtype="float32", eval_every=200, lr_decay=0.02)
    g = p.add_argument_group("the language model")
    g.add_argument("--data", default=None, metavar="FILE_OR_DIR",
                   help="Tiny Shakespeare's input.txt or its folder (default: $NPNET_DATA/tinyshakespeare, "
                        "else downloaded into ~/.cache/npnet and checked against its sha256)")
    g.add_argument("--any-text", action="store_true",
                   help="--data is your own UTF-8 text: skip the Tiny Shakespeare sha256 check")
    g.add_argument("--embed", type=common.positive_int, default=64, help="embedding width E")
    g.add_argument("--seq-len", type=common.positive_int, default=100,
                   help="T, characters per chunk (the BPTT truncation; the state is carried across chunks)")
    g.add_argument("--reset-every", type=common.nonneg_int, default=20,
                   help="K: each data pass is K chunks of B windows at random places, the state reset "
                        "between passes, so the model also learns to start from the zero state (0: one pass "
                        "= the whole text as B contiguous streams)")
    g.add_argument("--time-limit", type=common.nonneg_float, default=None,
                   help="seconds of training (0: none). Default 300, or none when --steps/--epochs is given")
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                   help="learning-rate decay from --lr to --lr * --lr-decay over the budget (steps or time, "
                        "whichever runs out first)")
    g.add_argument("--warmup", type=common.nonneg_int, default=0, help="steps of linear learning-rate warm-up")
    g.add_argument("--patience", type=common.positive_int, default=5,
                   help="evaluations without a better validation loss before stopping (--no-early-stop: never; "
                        "the best parameters are restored either way)")
    g.add_argument("--dropout", type=float, default=0.0, help="between stacked layers")
    g.add_argument("--input-dropout", type=float, default=0.0, help="on the embeddings (one mask per stream)")
    g.add_argument("--output-dropout", type=float, default=0.0, help="before the read-out")
    g.add_argument("--val-fraction", type=float, default=0.1, help="the last part of the text held out")
    g.add_argument("--eval-chars", type=common.nonneg_int, default=30000,
                   help="validation characters scored every --eval-every steps (0: all); the final score is all")
    s = p.add_argument_group("sampling and pictures")
    s.add_argument("--prime", default="ROMEO:", help="text the samples start from")
    s.add_argument("--length", type=common.nonneg_int, default=400, help="characters to generate per sample")
    s.add_argument("--temperature", type=common._number(float, 0.0, False, "numbers >= 0"), nargs="+",
                   default=[0.5, 0.8, 1.0], help="sampling temperature(s) (0: argmax)")
    s.add_argument("--generate", action="store_true", help="only sample from --checkpoint (no training)")
    s.add_argument("--visualize", action="store_true",
                   help="hidden units that track nameable features and gate saturation (with --checkpoint: "
                        "of a saved run, no training)")
    s.add_argument("--checkpoint", default=None, help="a run folder or its checkpoint.npz")
    return p


def check(args):
    if args.target is not None:
        raise ValueError("--target (an accuracy in (0, 1]) has no meaning here: stop with --steps, "
                         "--time-limit or --patience")
    for name in ("dropout", "input_dropout", "output_dropout"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)}")
    if not 0.0 < args.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    if args.generate and not args.checkpoint:
        raise ValueError("--generate needs --checkpoint RUN (a run folder or its checkpoint.npz)")
    if args.checkpoint and not (args.generate or args.visualize):
        raise ValueError("--checkpoint is for --generate or --visualize (training always starts afresh)")
    if args.data is not None:
        d = Path(args.data).expanduser()
        if not d.exists() or (d.is_dir() and not (d / "input.txt").is_file()):
            raise ValueError(f"--data {args.data}: expected a text file or a folder holding input.txt")
    if not args.prime:
        raise ValueError("--prime must be at least one character")
    if args.time_limit is None:
        args.time_limit = 300.0 if args.steps is None and args.epochs is None else 0.0
    if args.steps is None and args.epochs is None and args.time_limit == 0:
        raise ValueError("give a budget: --steps, --epochs or --time-limit > 0")


# -- data and model -----------------------------------------------------------------------------
def load_text(args):
    """(vocab, train ids, val ids) of --data, split by characters."""
    text = tx.load_tinyshakespeare(args.data, sha256=None if args.any_text else tx.TINYSHAKESPEARE_SHA256)
    vocab = tx.CharVocab.from_text(text)
    train, val = tx.split_text(vocab.encode(text), args.val_fraction)
    return vocab, train, val


def build_model(args, V: int):
    if args.match_params:
        args.hidden = common.matched_hidden(args.cell, args.embed, args.hidden, args.layers, V)
    rng = common.seed_rng(args.seed, "model")
    emb = npnet.Embedding(V, args.embed, dtype=args.dtype, rng=rng)
    return npnet.SequenceModel(args.embed, args.hidden, num_layers=args.layers, cell=args.cell, output_size=V,
                               read_in=emb, dropout=args.dropout, input_dropout=args.input_dropout,
                               output_dropout=args.output_dropout, dtype=args.dtype, rng=rng)


def windows(rng, ids, B: int, T: int, K: int):
    """One pass (a Stream factory): K chunks (x, y) of B windows of K*T characters starting at
    random places; chunk k+1 continues every row of chunk k (the state is carried within the pass)."""
    start = rng.integers(0, len(ids) - K * T, size=B)                          # (B,)
    for k in range(K):
        pos = start[:, None] + k * T + np.arange(T)                             # (B, T)
        yield ids[pos], ids[pos + 1]


def train_data(ids, args):
    """The training passes: --reset-every K random windows, or the whole text as B streams."""
    K, T = args.reset_every, args.seq_len
    if K == 0:
        return streams(ids, args)
    if len(ids) <= K * T + 1:
        raise ValueError(f"the training text ({len(ids)} characters) is too short for --reset-every {K} "
                         f"chunks of --seq-len {T}")
    return npnet.data.Stream(windows, common.seed_rng(args.seed, "train"), ids, args.batch_size, T, K)


def streams(ids, args):
    B = args.batch_size
    if len(ids) < B + 1:
        raise ValueError(f"a part of {len(ids)} characters is too short for --batch-size {B} streams")
    return tx.TextStreams(ids, B, args.seq_len)


# -- the budget: a learning-rate factor over the steps or seconds, whichever runs out first -------
class Budget(npnet.Callback):
    """progress p = max(step / steps, seconds / time_limit) in [0, 1]; ``factor(step)`` is the lr
    multiplier (after ``warmup`` linear steps): cosine 1 -> end, exponential end**p, or constant 1."""

    def __init__(self, steps, seconds, schedule: str, end: float, warmup: int = 0):
        self.steps, self.seconds, self.schedule, self.end, self.warmup = steps, seconds, schedule, end, warmup
        self.t0 = None

    def on_train_begin(self, learner):
        self.t0 = time.perf_counter()

    def progress(self, step: int) -> float:
        p = step / self.steps if self.steps else 0.0
        if self.seconds and self.t0 is not None:
            p = max(p, (time.perf_counter() - self.t0) / self.seconds)
        return min(p, 1.0)

    def factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        p = self.progress(step)
        if self.schedule == "cosine":
            return warm * (self.end + (1.0 - self.end) * 0.5 * (1.0 + math.cos(math.pi * p)))
        return warm * (self.end ** p if self.schedule == "exponential" else 1.0)


class StreamValidation(npnet.Callback):
    """Every ``every`` steps, at the last step and whenever training is being stopped: the
    validation nats/char with the state carried (``stream_nats``) as the record's ``eval_loss``
    (for EarlyStopping, the CSV and the learning curve), and a progress line."""

    def __init__(self, val_streams, every: int, max_steps, log=print):
        self.val, self.every, self.max_steps, self.log = val_streams, every, max_steps, log
        self.last, self.t0 = 0, None

    def on_train_begin(self, learner):
        self.t0 = time.perf_counter()

    def on_log(self, learner, rec):
        s = learner.step
        due = s - self.last >= self.every or learner.stop_training or (self.max_steps and s >= self.max_steps)
        if "loss" not in rec or not due:
            return
        self.last = s
        rec["eval_loss"] = tx.stream_nats(learner.model, self.val)
        sec = time.perf_counter() - self.t0
        self.log(f"step {s:5d}  train {rec['loss']:.3f}  val {rec['eval_loss']:.3f} nats/char "
                 f"({tx.bits_per_char(rec['eval_loss']):.3f} bpc)  lr {rec['lr']:.2e}  {sec:.0f} s "
                 f"({sec / s:.3f} s/step)")


def train(args, run, model, train_ids, val_ids):
    """Fit with the Learner (stateful); returns it with the best-validation parameters restored."""
    train_streams = train_data(train_ids, args)
    steps = args.steps if args.epochs is None else args.epochs * len(streams(train_ids, args))
    n_eval = len(val_ids) if args.eval_chars == 0 else min(len(val_ids), args.eval_chars)
    learner = npnet.Learner(model, npnet.SoftmaxCrossEntropyLoss(dtype=args.dtype), args.optimizer, lr=args.lr,
                            bptt=args.bptt, clip=args.clip or None, stateful=True, progress=False,
                            log_every=math.gcd(10, args.eval_every, steps or 0), tensorboard=False)
    budget = Budget(steps, args.time_limit, args.schedule, args.lr_decay, args.warmup)
    cbs = [budget, LambdaLR(learner.optimizer, budget.factor)]
    if args.time_limit:
        cbs.append(npnet.TimeLimit(args.time_limit))
    early = npnet.EarlyStopping("eval_loss", patience=10**9 if args.no_early_stop else args.patience,
                                restore_best=True)
    cbs += [StreamValidation(streams(val_ids[:n_eval], args), args.eval_every, steps, run.log), early,
            npnet.CSVLogger(run.path("metrics.csv"))]
    run.learner = learner
    t0 = time.perf_counter()
    learner.fit(train_streams, steps=steps or 10**9, callbacks=cbs)
    run.train_s = time.perf_counter() - t0
    run.stopped_early, run.best_step = early.stopped_step is not None, early.best_step
    return learner


def main(argv=None):
    p = parser()
    args = common.parse(p, argv, check)
    if args.checkpoint:
        try:
            return from_checkpoint(args)
        except ValueError as exc:                     # a bad run folder, prime or text: a usage error
            p.error(str(exc))

    vocab, train_ids, val_ids = load_text(args)
    try:
        vocab.encode(args.prime)                      # before training, not after it
    except npnet.NpnetError as exc:
        p.error(f"--prime {args.prime!r}: {exc}")
    run = common.Run(args)
    V = vocab.size
    model = build_model(args, V)
    uni, bi = tx.unigram_nats(train_ids, val_ids, V), tx.bigram_nats(train_ids, val_ids, V)
    run.write_config(vocab_size=V, chars=vocab.chars, params=model.num_params, train_chars=len(train_ids),
                     val_chars=len(val_ids), blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"))
    run.log(f"char_lm: {len(train_ids):,} train + {len(val_ids):,} val characters, V={V}; {args.layers}x"
            f"{args.cell} H={args.hidden}, E={args.embed}, {model.num_params:,} parameters; baselines "
            f"unigram {uni:.3f}, bigram {bi:.3f} nats/char")
    learner = train(args, run, model, train_ids, val_ids)

    val_nats = tx.stream_nats(model, streams(val_ids, args))                # the whole 10 %, state carried
    train_recent = [r["loss"] for r in learner.history if "loss" in r][-10:]
    samples = {f"{tau:g}": generate(model, vocab, args.prime, args.length, tau, args.seed)
               for tau in args.temperature}
    with open(run.path("samples.txt"), "w", encoding="utf-8") as f:
        for tau, s in samples.items():
            f.write(f"--- temperature {tau}\n{s}\n\n")
    common.plot_learning_curve(learner.history, run.path("learning_curve.png"), loss_name="nats per character",
                               title=f"char_lm: val {val_nats:.3f} nats/char (unigram {uni:.3f}, bigram {bi:.3f})")
    steps = learner.step
    extra = dict(val_bpc=tx.bits_per_char(val_nats), val_perplexity=tx.perplexity(val_nats),
                 unigram_nats=uni, bigram_nats=bi, train_nats=float(np.mean(train_recent)),
                 seconds=round(run.train_s, 2), seconds_per_step=run.train_s / max(steps, 1),
                 best_step=run.best_step, samples=samples, prime=args.prime, layers=args.layers, embed=args.embed)
    if args.visualize:
        import char_lm_viz
        extra["visualize"] = char_lm_viz.visualize(model, vocab, val_ids, run.dir, log=run.log)
    return run.finish(model, "val_nats", val_nats, uni, "unigram", checkpoint_extra={
        "chars": vocab.chars, "val_fraction": args.val_fraction}, **extra)


if __name__ == "__main__":
    main()
