"""The counting task: which of two queried digits occurs more often in a random sequence?

    python experiments/counting.py --seq-len 20

Every step shows the two queried digits and one digit of the sequence (30 one-hot inputs);
after the last step the network answers 0 (first more common), 1 (second) or 2 (equal), or
with --mode regression the count difference. Reports test_accuracy on 4,000 fresh sequences
beside the majority-class baseline (about 41 % at length 20). Run folder: config.json,
metrics.csv, summary.json, checkpoint.npz, learning_curve.png, confusion.png / scatter.png.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import numpy as np

from npnet import tasks
from npnet.training.learner import accuracy


def rounded_accuracy(pred, y, mask=None) -> float:
    """Regression: the fraction of predictions that round to the true count difference."""
    return float((np.rint(pred) == y).mean())


def parser():
    p = common.make_parser(
        "counting", __doc__.split("\n\n")[0].strip(),
        hidden=64, batch_size=64, steps=6000, lr=2e-2, lr_decay=0.05, clip=1.0, eval_every=50, target=0.998,
        dtype="float32")
    g = p.add_argument_group("the counting task")
    g.add_argument("--seq-len", type=common.positive_int, default=20, help="digits per sequence (T)")
    g.add_argument("--mode", choices=("classification", "regression"), default="classification",
                   help="classify which digit is more common, or regress the count difference")
    g.add_argument("--eval-size", type=common.positive_int, default=2000, help="held-out sequences for early stopping")
    g.add_argument("--test-size", type=common.positive_int, default=4000, help="fresh sequences for the final test")
    return p


def plot_scatter(path, pred, y):
    """Regression: the prediction against the true count difference (jittered)."""
    fig, ax = common.figure(4.2, 3.6)
    a = ax[0, 0]
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(y))
    a.plot(y[:, 0] + jitter, pred[:, 0], ".", ms=2, alpha=0.4)
    lim = [y.min() - 0.5, y.max() + 0.5]
    a.plot(lim, lim, "k:", lw=1)
    a.set_xlabel("true count difference")
    a.set_ylabel("prediction")
    a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def main(argv=None):
    args = common.parse(parser(), argv)
    run = common.Run(args)
    T, mode, dtype = args.seq_len, args.mode, args.dtype
    clf = mode == "classification"

    def batches(rng, n):
        return tasks.counting_task(args.batch_size, T, mode, rng=rng, dtype=dtype, num_batches=n)

    model = common.build_model(args, 30, 3 if clf else 1, return_sequences=False)
    rates = tasks.counting_class_rates(T)
    run.write_config(input_size=30, output_size=3 if clf else 1, params=model.num_params,
                     class_rates=rates.tolist())
    held_out = [tasks.counting_batch(args.eval_size, T, mode, rng=common.seed_rng(args.seed, "eval"), dtype=dtype)[:2]]
    metric = accuracy if clf else rounded_accuracy
    run.log(f"counting ({mode}): T={T}; {args.cell} H={args.hidden}, {model.num_params} parameters; "
            f"class rates first/second/equal {rates.round(3).tolist()}")
    learner = run.train(model, "ce" if clf else "mse", metric, batches, held_out)

    x, y, _ = tasks.counting_batch(args.test_size, T, mode, rng=common.seed_rng(args.seed, "test"), dtype=dtype)
    pred = learner.predict(x)                                     # (N, 3) logits or (N, 1)
    test_acc = metric(pred, y)
    values, counts = np.unique(y, return_counts=True)
    baseline = counts.max() / counts.sum()                        # always answer the most common value
    common.plot_learning_curve(learner.history, run.path("learning_curve.png"),
                               "accuracy" if clf else "rounded accuracy", target=args.target, baseline=baseline,
                               loss_name="cross-entropy (nats)" if clf else "MSE (counts squared)",
                               title=f"counting (T={T}, {mode}): {args.cell} H={args.hidden}")
    if clf:
        common.plot_confusion(common.confusion_matrix(y, pred.argmax(-1), 3), ["first", "second", "equal"],
                              run.path("confusion.png"), "test confusion matrix", percent=False)
    else:
        plot_scatter(run.path("scatter.png"), pred, y)
    extra = {"majority_rate_exact": float(rates.max())} if clf else {
        "test_mse": float(np.mean((pred - y) ** 2)),
        # the classification question (first / second / equal) answered by the sign of the rounded count
        "sign_accuracy": float(np.mean(np.sign(np.rint(np.ravel(pred))) == np.sign(np.ravel(y))))}
    return run.finish(model, "test_accuracy", test_acc, baseline, "majority", mode=mode, seq_len=T,
                      test_size=args.test_size, **extra)


if __name__ == "__main__":
    main()
