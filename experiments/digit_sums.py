"""Alternating running sums over handwritten digits: d1, d1 - d2, d1 - d2 + d3, ... (MNIST).

A small convolutional read-in (an npnet.Sequential) sees one digit image per time step, an LSTM
keeps the running total, a read-out predicts it at every step (37-way classification for length 4,
or regression); all one npnet.SequenceModel trained by npnet.Learner. Images are split into
train/test FIRST (seeded), so no test image is ever seen in training.

    python experiments/digit_sums.py                        # default run, length 4
    python experiments/digit_sums.py --report objectives    # classification vs regression
    python experiments/digit_sums.py --report lengths       # sequence lengths 2, 4, 6, 8
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # experiments/ (for common)
import common  # noqa: E402  first: pins BLAS to one thread before numpy loads

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402
from npnet.data import Stream, find_data_dir, load_mnist, stratified_split  # noqa: E402
from npnet.optim.lr_scheduler import CosineAnnealingLR  # noqa: E402

TASK = "digit_sums"


# -- the task: targets, sequences of image indices, augmentation, objectives ---------------------
def alternating_sums(digits) -> np.ndarray:
    """s_t = sum_{k<=t} (-1)^(k-1) d_k: digits (..., T) ints -> totals (..., T) int64."""
    digits = np.asarray(digits, dtype=np.int64)
    return np.cumsum(digits * np.where(np.arange(digits.shape[-1]) % 2 == 0, 1, -1), axis=-1)


def total_range(seq_len: int) -> tuple[int, int]:
    """[-9 floor(L/2), 9 ceil(L/2)]: the 9 L + 1 possible totals (37 for L = 4: -18..18)."""
    return -9 * (seq_len // 2), 9 * ((seq_len + 1) // 2)


def sample_sequences(pool, n: int, seq_len: int, rng) -> np.ndarray:
    """n sequences of seq_len image indices drawn uniformly (with replacement) from ``pool``: (n, L)."""
    return pool[rng.integers(0, pool.size, size=(n, seq_len))]


def to_float(images_u8, dtype) -> np.ndarray:
    """uint8 (..., 28, 28) -> dtype (..., 1, 28, 28) in [0, 1] (one channel for Conv2D)."""
    return (images_u8.astype(dtype) * dtype(1.0 / 255.0))[..., None, :, :]


def shifted(images_u8, idx, shift: int, rng) -> np.ndarray:
    """Images idx (any shape) randomly translated by up to ``shift`` pixels (zeros fill): uint8 (*idx.shape, 28, 28)."""
    flat = idx.reshape(-1)
    if shift == 0:
        return images_u8[flat].reshape(*idx.shape, 28, 28)
    pad = np.pad(images_u8[flat], ((0, 0), (shift, shift), (shift, shift)))     # (N, 28+2s, 28+2s)
    oy, ox = rng.integers(0, 2 * shift + 1, size=(2, flat.size))                 # (N,) each
    rows, cols = oy[:, None] + np.arange(28), ox[:, None] + np.arange(28)        # (N, 28) each
    return pad[np.arange(flat.size)[:, None, None], rows[:, :, None], cols[:, None, :]].reshape(*idx.shape, 28, 28)


class Objective:
    """Classification of the total (9L + 1 classes) or regression on total / 9, and back to totals."""

    def __init__(self, kind: str, seq_len: int, dtype):
        if kind not in ("classify", "regress"):
            raise ValueError(f"objective must be 'classify' or 'regress', got {kind!r}")
        self.kind, self.dtype, (self.lo, self.hi) = kind, np.dtype(dtype), total_range(seq_len)
        self.output_size = self.hi - self.lo + 1 if kind == "classify" else 1
        self.loss = (npnet.SoftmaxCrossEntropyLoss if kind == "classify" else npnet.MSELoss)(dtype=self.dtype)

    def target(self, totals):
        """Totals (B, T) -> class indices 0..V-1 (B, T), or totals / 9 (B, T, 1)."""
        return totals - self.lo if self.kind == "classify" else (totals / 9.0).astype(self.dtype)[..., None]

    def decode(self, out) -> np.ndarray:
        """Outputs (B, T, V) -> predicted integer totals (B, T)."""
        if self.kind == "classify":
            return np.argmax(out, axis=-1) + self.lo
        return np.clip(np.rint(out[..., 0] * 9.0), self.lo, self.hi).astype(np.int64)

    def accuracy(self, out, y, mask=None) -> float:
        """The Learner's metric: the share of steps whose rounded total is right."""
        return float((self.decode(out) == (y + self.lo if self.kind == "classify" else np.rint(y[..., 0] * 9))).mean())


# -- the model: library layers composed; training through npnet.Learner ---------------------------
def conv_read_in(channels, features: int, dtype, rng) -> npnet.Sequential:
    """[conv 3x3 -> max-pool 2 -> ReLU] per channel count -> flatten -> dense -> ReLU: (N, 1, 28, 28) -> (N, F).

    Max-pool before ReLU: both are monotone, so relu(maxpool(a)) = maxpool(relu(a)), at a quarter of the work.
    """
    layers, c_in, size = [], 1, 28
    for c in channels:
        layers += [npnet.Conv2D(c_in, c, 3, weight_init="he_uniform", dtype=dtype, rng=rng),
                   npnet.MaxPool2D(2, dtype=dtype), npnet.ReLU(dtype)]
        c_in, size = c, (size - 2) // 2
    return npnet.Sequential(*layers, npnet.Flatten(dtype=dtype),
                            npnet.LinearLayer(c_in * size * size, features, dtype=dtype, rng=rng), npnet.ReLU(dtype))


class PerImage(npnet.Layer):
    """A feed-forward layer in the sequence-model call convention, for the Learner (the baselines):
    fprop(x (B, T, ...)) -> (layer(x as (B*T, ...)) as (B, T, F), None)."""

    def __init__(self, layer):
        super().__init__(layer.dtype)
        self.layer, self.params, self.grads = layer, layer.params, layer.grads

    def fprop(self, x, state=None, mask=None):
        self._cache = x.shape
        return self.layer.fprop(x.reshape(-1, *x.shape[2:])).reshape(*x.shape[:2], -1), None

    def bprop(self, dy, dstate=None):
        shape = self._take_cache()
        return self.layer.bprop(dy.reshape(shape[0] * shape[1], -1)).reshape(shape), None


def fit(model, loss, batches, steps: int, optimizer: str, lr: float, clip=None, cosine=False, metric=None,
        out_dir=None, callbacks=(), **fit_kw) -> npnet.Learner:
    """npnet.Learner for ``steps`` optimiser steps; cosine: the lr decays to 5 % of itself (CosineAnnealingLR)."""
    learner = npnet.Learner(model, loss, optimizer, lr=lr, clip=clip, metric=metric, out_dir=out_dir,
                            progress=False, tensorboard=False)
    sched = [CosineAnnealingLR(learner.optimizer, steps, 0.05 * lr)] if cosine else []
    learner.fit(batches, steps=steps, callbacks=[*callbacks, *sched], **fit_kw)
    return learner


def options(args) -> dict:
    return {"optimizer": args.optimizer, "lr": args.lr, "clip": args.clip or None, "cosine": args.lr_schedule == "cosine"}


class Progress(npnet.Callback):
    """At each evaluation: log the training means since the last one and the held-out accuracies, and
    stop once the TRAINING per-step accuracy reaches --target (never on test data)."""

    def __init__(self, obj, totals, target, log):
        self.obj, self.totals, self.target, self.log = obj, totals, target, log
        self.acc, self.rows, self.reason, self.t0 = [], [], None, time.perf_counter()

    def on_log(self, learner, rec):
        self.acc.append((rec["loss"], rec["metric"]))
        if "eval_loss" in rec:                          # runner.last_output: the held-out batch's output
            (loss, acc), self.acc = np.mean(self.acc, axis=0), []
            rec["eval_seq_acc"] = float((self.obj.decode(learner.runner.last_output) == self.totals).all(1).mean())
            self.rows.append([rec["step"], rec["eval_metric"], rec["eval_seq_acc"]])
            self.log(f"  step {rec['step']:5d} {time.perf_counter() - self.t0:6.0f}s  loss {loss:.4f}  train step "
                     f"acc {acc:.3f}  test step acc {rec['eval_metric']:.3f}  seq acc {rec['eval_seq_acc']:.3f}")
            if self.target is not None and acc >= self.target:
                self.reason, learner.stop_training = f"training per-step accuracy {acc:.4f} >= --target", True


def predict(model, x, chunk: int = 256) -> np.ndarray:
    """Outputs step by step (SequenceModel.step keeps no cache), ``chunk`` sequences at a time: (S, L, V)."""
    outs = []
    for i in range(0, len(x), chunk):
        state, ys = None, []
        for t in range(x.shape[1]):
            y, state = model.step(x[i:i + chunk, t], state)
            ys.append(y)
        outs.append(np.stack(ys, axis=1))
    return np.concatenate(outs)


def features(layer, data, idx, dtype) -> np.ndarray:
    return np.concatenate([layer.forward(to_float(data["images"][idx[i:i + 1024]], dtype)) for i in range(0, idx.size, 1024)])


def digit_baseline(args, data, log) -> dict:
    """The same read-in + a linear 10-way head trained as a plain digit classifier -> test digit accuracy p."""
    dtype, rng, t0 = np.dtype(args.dtype).type, common.seed_rng(args.seed, "model"), time.perf_counter()
    clf = npnet.Sequential(conv_read_in(args.conv_channels, args.features, dtype, rng),
                           npnet.LinearLayer(args.features, 10, dtype=dtype, rng=rng))

    def batches(rng):                                         # (N, 1, 1, 28, 28): N one-step sequences
        while True:
            b = data["train"][rng.integers(0, data["train"].size, args.digit_batch)]
            yield to_float(shifted(data["images"], b, args.shift, rng), dtype)[:, None], data["labels"][b, None].astype(int)

    fit(PerImage(clf), npnet.SoftmaxCrossEntropyLoss(dtype=dtype), Stream(batches, common.seed_rng(args.seed, "eval")),
        args.digit_steps, **options(args))
    p = float((np.argmax(features(clf, data, data["test"], dtype), 1) == data["labels"][data["test"]]).mean())
    log(f"digit classifier (read-in + linear head, {args.digit_steps} steps x {args.digit_batch} images): "
        f"test digit accuracy {p:.4f} in {time.perf_counter() - t0:.0f}s")
    return {"digit_accuracy": p, "digit_wall_s": round(time.perf_counter() - t0, 2), "digit_steps": args.digit_steps}


def probe(model, data, dtype, steps: int = 300) -> float:
    """Linear probe (softmax regression, full-batch Adam lr 0.01, no clipping) on the trained read-in's features."""
    ztr, zte = (features(model.read_in, data, data[k], dtype) for k in ("train", "test"))     # (N, F)
    head = npnet.LinearLayer(ztr.shape[1], 10, dtype=dtype, rng=0)
    fit(PerImage(head), npnet.SoftmaxCrossEntropyLoss(dtype=dtype), [(ztr[:, None], data["labels"][data["train"], None]
                                                                       .astype(int))], steps, "adam", 1e-2)
    return float((np.argmax(head.forward(zte), 1) == data["labels"][data["test"]]).mean())


def train_run(args, data, out_dir: str, log, digit: dict | None) -> dict:
    """Train and evaluate one model; metrics.csv, checkpoint.npz and the plots in out_dir; the results."""
    dtype, L, rng = np.dtype(args.dtype).type, args.seq_len, common.seed_rng(args.seed, "model")
    obj, labels = Objective(args.objective, L, dtype), data["labels"]
    model = npnet.SequenceModel(args.features, args.hidden, args.layers, cell=args.cell, output_size=obj.output_size,
                                read_in=conv_read_in(args.conv_channels, args.features, dtype, rng), dtype=dtype, rng=rng)
    test_seqs = sample_sequences(data["test"], args.test_seqs, L, common.seed_rng(args.seed, "test"))   # (S, L)
    ev = test_seqs[:args.eval_seqs]

    def batches(rng):                                         # training images only, fresh every step
        while True:
            seq = sample_sequences(data["train"], args.batch_size, L, rng)                           # (B, L)
            yield to_float(shifted(data["images"], seq, args.shift, rng), dtype), obj.target(alternating_sums(labels[seq]))

    os.makedirs(out_dir, exist_ok=True)
    progress = Progress(obj, alternating_sums(labels[ev]), None if args.no_early_stop else args.target, log)
    t0, c0 = time.perf_counter(), time.process_time()
    learner = fit(model, obj.loss, Stream(batches, common.seed_rng(args.seed, "train")), args.steps, **options(args),
                  metric=obj.accuracy, out_dir=out_dir, callbacks=[progress] + ([npnet.TimeLimit(args.time_limit)]
                                                                                 if args.time_limit else []),
                  eval_batches=[(to_float(data["images"][ev], dtype), obj.target(alternating_sums(labels[ev])))],
                  eval_every=args.eval_every)
    train_wall, train_cpu, steps = time.perf_counter() - t0, time.process_time() - c0, learner.step
    reason = progress.reason or (f"time limit {args.time_limit:g}s" if steps < args.steps else None)
    if reason:
        log(f"  stopped at step {steps}: {reason}")
    totals = alternating_sums(labels[test_seqs])                                                       # (S, L)
    pred = obj.decode(predict(model, to_float(data["images"][test_seqs], dtype)))
    step_acc, p = [float(a) for a in (pred == totals).mean(axis=0)], probe(model, data, dtype)
    npnet.save_checkpoint(os.path.join(out_dir, "checkpoint.npz"), model, learner.optimizer, step=steps,
                          extra={"task": TASK, "seq_len": L, "objective": args.objective})
    res = {"seq_len": L, "objective": args.objective, "classes": obj.output_size if args.objective == "classify" else None,
           "step_accuracy": float(np.mean(step_acc)), "step_accuracy_by_position": step_acc,
           "test_accuracy": float((pred == totals).all(axis=1).mean()), "steps": steps, "stopped_early": reason is not None,
           "stop_reason": reason, "train_s": round(train_wall, 2), "train_cpu_s": round(train_cpu, 2),
           "params": model.num_params, "probe_digit_accuracy": p, "eval_curve": progress.rows,
           "probe_implied_step_accuracy": float(np.mean([p ** (t + 1) for t in range(L)])), "test_sequences": args.test_seqs}
    if digit is not None:
        implied = [digit["digit_accuracy"] ** (t + 1) for t in range(L)]
        res.update({"digit_accuracy": digit["digit_accuracy"], "implied_step_accuracy_by_position": implied,
                    "implied_step_accuracy": float(np.mean(implied)), "implied_sequence_accuracy": implied[-1]})
    common.plot_learning_curve(learner.history, os.path.join(out_dir, "learning_curves.png"), "per-step accuracy",
                               baseline=res.get("implied_step_accuracy"))
    plot_run(out_dir, res, data["images"][test_seqs[:6]], pred[:6], totals[:6])
    log(f"  L={L} {args.objective}: per-step accuracy {' '.join(f'{a:.3f}' for a in step_acc)} (mean "
        f"{res['step_accuracy']:.4f}), sequence accuracy {res['test_accuracy']:.4f}, read-in probe {p:.4f}, "
        f"{steps} steps in {train_wall:.0f}s")
    return res


# -- plots (the learning curve is common.plot_learning_curve) -------------------------------------
def plot_run(out_dir: str, res: dict, images, pred, totals) -> None:
    """step_accuracy.png (accuracy vs position, with p^t) and examples.png (test sequences: predicted (true))."""
    pos = np.arange(1, res["seq_len"] + 1)
    fig, ax = common.figure(5, 3.6)
    ax[0, 0].plot(pos, res["step_accuracy_by_position"], marker="o", label="model")
    if "digit_accuracy" in res:
        ax[0, 0].plot(pos, res["implied_step_accuracy_by_position"], marker="s", ls="--",
                      label=f"perfect arithmetic: p^t (p={res['digit_accuracy']:.3f})")
    ax[0, 0].set(xlabel="position t", ylabel="test accuracy of the running total", xticks=pos, title="per-step accuracy")
    ax[0, 0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "step_accuracy.png"), dpi=80)
    (n, L), fig, ax = pred.shape, *common.figure(1.1 * res["seq_len"] + 0.3, 1.25 * len(pred) + 0.4)
    ax[0, 0].imshow(images.transpose(0, 2, 1, 3).reshape(n * 28, L * 28), cmap="gray_r")   # rows sequences, cols steps
    for (i, t), p in np.ndenumerate(pred):
        ax[0, 0].text(28 * t + 1, 28 * i + 1, f"{p} ({totals[i, t]})", fontsize=7, va="top",
                      color="tab:blue" if p == totals[i, t] else "red")
    ax[0, 0].set(xticks=np.arange(L) * 28 + 14, xticklabels=[f"t={t + 1}" for t in range(L)], yticks=[])
    ax[0, 0].set_title("test sequences: predicted (true) running total", fontsize=8)
    fig.savefig(os.path.join(out_dir, "examples.png"), dpi=80)


def plot_lengths(out_dir: str, results: list) -> None:
    """lengths.png: per-position accuracy for each L, and mean / sequence accuracy against L."""
    fig, ax = common.figure(10, 3.6, 1, 2)
    for r in results:
        ax[0, 0].plot(np.arange(1, r["seq_len"] + 1), r["step_accuracy_by_position"], marker="o", label=f"L={r['seq_len']}")
    Ls = [r["seq_len"] for r in results]
    for key, label in (("step_accuracy", "mean per-step"), ("test_accuracy", "whole sequence"),
                       ("implied_step_accuracy", "implied by digit accuracy (mean p^t)")):
        if all(key in r for r in results):
            ax[0, 1].plot(Ls, [r[key] for r in results], marker="o", label=label)
    ax[0, 0].set(xlabel="position t", ylabel="test accuracy", title="per-step accuracy by length")
    ax[0, 1].set(xlabel="sequence length L", ylabel="test accuracy", xticks=Ls, title="effect of length")
    for a in ax[0]:
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "lengths.png"), dpi=80)


# -- command line ------------------------------------------------------------------------------
def fraction(text: str) -> float:
    v = common.positive_float(text)
    if not v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(TASK, __doc__.split("\n\n")[0], hidden=64, batch_size=32, steps=3000, lr=2e-3, clip=5.0,
                           dtype="float32", eval_every=250)
    p.epilog = ("Data: --mnist-dir DIR, else npnet.data.find_data_dir('mnist') ($NPNET_DATA/mnist or "
                "~/.cache/npnet/mnist, where the test set is downloaded, checksum-verified, if missing). "
                "--target stops on the running TRAINING per-step accuracy (never on test data).")
    t = p.add_argument_group("the digit-sums task")
    for flag, kind, default, text in (
            ("--seq-len", common.positive_int, 4, "digits per sequence (L)"),
            ("--objective", ["classify", "regress"], "classify", "classify: 9L+1 classes of the total; regress: MSE on total/9"),
            ("--report", ["single", "objectives", "lengths"], "single", "objectives: classify and regress; lengths: --lengths"),
            ("--lengths", common.int_list, [2, 4, 6, 8], "lengths for --report lengths"),
            ("--conv-channels", common.int_list, [16, 32], "channels of the 3x3 conv + 2x2 max-pool + ReLU blocks"),
            ("--features", common.positive_int, 64, "dense (ReLU) width of the read-in"),
            ("--digit-steps", common.nonneg_int, 600, "steps of the digit-classifier baseline (0: skip)"),
            ("--digit-batch", common.positive_int, 128, "images per digit-classifier step"),
            ("--test-seqs", common.positive_int, 2000, "test sequences for the final numbers"),
            ("--eval-seqs", common.positive_int, 500, "the first test sequences, evaluated every --eval-every steps"),
            ("--lr-schedule", ["constant", "cosine"], "constant", "cosine: from --lr down to 5 %% of it"),
            ("--shift", common.nonneg_int, 0, "random translations of the training images by up to S pixels"),
            ("--time-limit", common.nonneg_float, 0.0, "seconds of training per run (0: no limit)"),
            ("--mnist-dir", str, None, "folder with the MNIST IDX files (.gz or raw)"),
            ("--test-fraction", fraction, 0.2, "share of the IMAGES held out for test"),
            ("--max-images", common.nonneg_int, 0, "use only the first N images (0: all)")):
        kw = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        t.add_argument(flag, default=default, help=text, **kw)
    return p


def check_args(args) -> None:
    """Cross-option checks; a ValueError becomes a usage error (exit 2)."""
    if args.bptt is not None:
        raise ValueError("--bptt is not supported by digit_sums (sequences are short: full BPTT over the L steps)")
    if 0 < args.max_images < 20:
        raise ValueError(f"--max-images must be 0 (all) or at least 20, got {args.max_images}")
    if args.mnist_dir is not None and not os.path.isdir(os.path.expanduser(args.mnist_dir)):
        raise ValueError(f"--mnist-dir {args.mnist_dir} is not a directory")
    if (28 >> len(args.conv_channels)) < 2:
        raise ValueError(f"--conv-channels: at most 3 conv blocks fit a 28x28 image, got {len(args.conv_channels)}")
    if args.epochs:
        args.steps = args.epochs * args.epoch_size
    args.eval_seqs = min(args.eval_seqs, args.test_seqs)


def load_data(args) -> dict:
    """MNIST images (N, 28, 28) uint8 and labels, split by IMAGE (stratified, seeded) into train and test."""
    folder = find_data_dir("mnist", args.mnist_dir)
    images, labels = load_mnist(folder, kind="all") if folder.is_dir() else load_mnist(kind="test")
    if args.max_images:
        images, labels = images[:args.max_images], labels[:args.max_images]
    train, test = stratified_split(labels, args.test_fraction, rng=args.seed)
    return {"images": images, "labels": labels, "train": train, "test": test, "source": str(folder)}


def main(argv=None) -> dict:
    p = build_parser()
    args = common.parse(p, argv, check_args)
    if args.match_params:
        args.hidden = common.matched_hidden(args.cell, args.features, args.hidden, args.layers, None)
    run, data = common.Run(args), load_data(args)
    n_tr, n_te = int(data["train"].size), int(data["test"].size)
    if n_tr < 1 or n_te < 1:
        p.error(f"need images on both sides of the split, got {n_tr} train / {n_te} test")
    run.log(f"{n_tr + n_te} images from {data['source']}; split by image (stratified, seed {args.seed}): "
            f"{n_tr} train, {n_te} test")
    run.write_config(data_source=data["source"], n_images=n_tr + n_te, n_train_images=n_tr, n_test_images=n_te)
    digit = digit_baseline(args, data, run.log) if args.digit_steps else None
    key, values = {"single": ("seq_len", [args.seq_len]), "objectives": ("objective", ["classify", "regress"]),
                   "lengths": ("seq_len", args.lengths)}[args.report]
    results = []
    for v in values:
        sub = argparse.Namespace(**{**vars(args), key: v})
        run.log(f"training: L={sub.seq_len}, {sub.objective}, {sub.steps} steps of {sub.batch_size} sequences")
        results.append(train_run(sub, data, run.dir if len(values) == 1 else run.path(f"{key}_{v}"), run.log, digit))
    summary = dict(next((r for r in results if (r["seq_len"], r["objective"]) == (args.seq_len, args.objective)),
                        results[0]), **(digit or {}))
    if args.report != "single":
        summary["runs"] = results
        for r in results:
            run.log(f"L={r['seq_len']} {r['objective']:9s} per-step {r['step_accuracy']:.4f}  sequence "
                    f"{r['test_accuracy']:.4f}  " + " ".join(f"{a:.3f}" for a in r["step_accuracy_by_position"]))
    if args.report == "lengths":
        plot_lengths(run.dir, results)
    summary.update({"baseline": summary["implied_step_accuracy" if digit else "probe_implied_step_accuracy"],
                    "baseline_name": "perfect arithmetic on " + ("the digit classifier" if digit else
                                     "a linear probe of the read-in") + " (mean over t of p^t)", "headline": "step_accuracy",
                    "wall_s": round(run.elapsed(), 2), "cpu_s": round(time.process_time() - run.cpu0, 2),
                    "cell": args.cell, "hidden": args.hidden, "seed": args.seed, "n_train_images": n_tr, "n_test_images": n_te})
    common.write_json(run.path("summary.json"), summary)
    print(f"{TASK}: step_accuracy {summary['step_accuracy']:.4f} (" + " ".join(f"{a:.3f}" for a in summary[
          "step_accuracy_by_position"]) + f"), test_accuracy {summary['test_accuracy']:.4f} (baseline "
          f"{summary['baseline']:.4f}) L={summary['seq_len']} {summary['objective']} {args.cell} H={args.hidden}, "
          f"{summary['steps']} steps, {summary['wall_s']:.1f} s ({summary['cpu_s']:.0f} s cpu) -> {run.dir}", flush=True)
    return summary


if __name__ == "__main__":
    main()
