"""The memory (copy) task: store K random symbols, wait, and replay them after a delimiter.

    python experiments/memory.py --seq-len 20

trains an LSTM until a held-out batch recalls >= 99.5 % of the symbols, then reports the
recall accuracy and the test loss (cross-entropy, nats per step) on the last K outputs of 1,000
fresh sequences beside chance (1 / symbols, log symbols). Run folder: config.json, metrics.csv,
summary.json, checkpoint.npz, learning_curve.png, example.png.

    python experiments/memory.py --compare-cells --hidden 32 --jobs 2

compares the tanh RNN, the ReLU RNN (random W_h), the IRNN (ReLU, W_h = I), the LSTM and the
GRU at matched parameter counts (5,700-5,840), four learning rates each, gap-free (L = 2K+1) and at
--seq-len (gap 9), up to 3,000 steps per run:
compare.csv, compare.md, compare.png.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import numpy as np

import memory_tools
from npnet import tasks


def parser():
    p = common.make_parser(
        "memory", __doc__.split("\n\n")[0].strip(),
        hidden=64, batch_size=64, steps=3000, lr=2e-2, clip=1.0, eval_every=25, target=0.995,
        dtype="float32")
    g = p.add_argument_group("the memory task")
    g.add_argument("--seq-len", type=common.positive_int, default=20,
                   help="L = 2 K + gap + 1 input steps (K symbols, gap blanks, delimiter, K recall steps)")
    g.add_argument("--remember", type=common.positive_int, default=5, help="K, symbols to store")
    g.add_argument("--symbols", type=common.positive_int, default=8, help="alphabet size (chance = 1/symbols)")
    g.add_argument("--train-on", choices=("recall", "all"), default="recall",
                   help="loss on the K recall steps only, or also on the blank targets of every step "
                        "(accuracy is always measured on the recall steps)")
    g.add_argument("--eval-size", type=common.positive_int, default=500, help="held-out sequences for early stopping")
    g.add_argument("--test-size", type=common.positive_int, default=1000, help="fresh sequences for the final test")
    memory_tools.add_options(p)
    return p


def check(args):
    tasks.memory_layout(args.remember, seq_len=args.seq_len)     # ValueError -> usage error
    if args.symbols < 2:
        raise ValueError(f"--symbols must be >= 2 (one symbol is nothing to remember), got {args.symbols}")


def plot_example(path, x, y, mask, probs, symbols):
    """One sequence: the input symbols, the target and the predicted class probabilities."""
    fig, ax = common.figure(8, 5.2, 3, 1)
    T = x.shape[0]
    names = [str(i) for i in range(symbols)] + ["_", "|"]
    rows = [(x.T, "input", names), (np.eye(symbols + 1)[y].T, "target", names[:-1]),
            (probs.T, "prediction p(class)", names[:-1])]
    for a, (img, title, ticks) in zip(ax[:, 0], rows):
        a.imshow(img, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        a.set_yticks(range(len(ticks)))
        a.set_yticklabels(ticks, fontsize=6)
        a.set_title(title, fontsize=9, loc="left")
        a.set_xticks(range(T))
        a.tick_params(axis="x", labelsize=6)
    rec = np.flatnonzero(mask)
    ax[2, 0].axvspan(rec[0] - 0.5, rec[-1] + 0.5, color="tab:orange", alpha=0.15, lw=0)
    ax[2, 0].set_xlabel("step (shaded: the scored recall steps; _ blank, | delimiter)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def main(argv=None):
    p = parser()
    args = common.parse(p, argv, check)
    if args.compare_cells:
        return memory_tools.main_compare(args)
    run = common.Run(args)
    S, K, L = args.symbols, args.remember, args.seq_len
    r = memory_tools.train_one(args, run)
    test, out = r["test"], r["out"]
    common.plot_learning_curve(r["learner"].history, run.path("learning_curve.png"), "recall accuracy",
                               target=args.target, baseline=1.0 / S, loss_name="cross-entropy (nats per recall step)",
                               title=f"memory task (T={args.seq_len}, K={args.remember}): {args.cell} H={args.hidden}")
    z = out[0] - out[0].max(-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    plot_example(run.path("example.png"), test.x[0], test.y[0], test.mask[0], probs, S)
    print(f"memory: last {K} outputs: test_loss {r['test_loss']:.4f} nats/step (chance log {S} = {np.log(S):.4f}), "
          f"test_accuracy {r['test_accuracy']:.4f}; loss over all {L} steps {r['test_loss_all_steps']:.4f}", flush=True)
    return run.finish(r["model"], "test_accuracy", r["test_accuracy"], 1.0 / S, "chance",
                      test_loss=r["test_loss"], test_loss_all_steps=r["test_loss_all_steps"],
                      sequence_accuracy=r["sequence_accuracy"], test_size=args.test_size, seq_len=L,
                      remember=K, symbols=S)


if __name__ == "__main__":
    main()
