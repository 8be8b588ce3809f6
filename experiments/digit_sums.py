"""Alternating running sums over handwritten digits: d1, d1 - d2, d1 - d2 + d3, ... (MNIST).

A conv read-in (an npnet.Sequential) sees one image per step, an LSTM keeps the running total and a
read-out predicts it at every step: one npnet.SequenceModel, trained by npnet.Learner. The IMAGES are
split into train/test first (seeded), so no test image is ever seen in training.

    python experiments/digit_sums.py [--report objectives | --report lengths | --report grid (digit_sums_grid.py)]
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import argparse
import os
import time

import numpy as np

import digit_sums_grid
import npnet
from digit_sums_plots import plot_examples, plot_positions
from npnet.data import Stream, find_data_dir, load_mnist, stratified_split
from npnet.optim.lr_scheduler import CosineAnnealingLR
from npnet.time_distributed import TimeDistributed

TASK = "digit_sums"
PROBE = argparse.Namespace(optimizer="adam", lr=1e-2, clip=0.0, lr_schedule="constant")   # full-batch, no clipping


def alternating_sums(digits) -> np.ndarray:
    """s_t = sum_{k<=t} (-1)^(k-1) d_k: digits (..., T) ints -> totals (..., T) int64."""
    digits = np.asarray(digits, dtype=np.int64)
    return np.cumsum(digits * np.where(np.arange(digits.shape[-1]) % 2 == 0, 1, -1), axis=-1)


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
    """Classification of the total or regression on total / 9, and back to totals. The totals lie in
    [lo, hi] = [-9 floor(L/2), 9 ceil(L/2)]: 9 L + 1 values (37 classes for L = 4: -18..18)."""

    def __init__(self, kind: str, seq_len: int, dtype):
        self.kind, self.dtype, self.lo, self.hi = kind, np.dtype(dtype), -9 * (seq_len // 2), 9 * ((seq_len + 1) // 2)
        self.output_size = self.hi - self.lo + 1 if kind == "classify" else 1
        self.loss = (npnet.SoftmaxCrossEntropyLoss if kind == "classify" else npnet.MSELoss)(dtype=self.dtype)

    def target(self, totals):
        """Totals (B, T) -> class indices 0..V-1 (B, T), or totals / 9 (B, T, 1)."""
        return totals - self.lo if self.kind == "classify" else (totals / 9.0).astype(self.dtype)[..., None]

    def decode(self, out) -> np.ndarray:
        """Outputs (B, T, V) -> predicted integer totals (B, T)."""
        return (np.argmax(out, axis=-1) + self.lo if self.kind == "classify"
                else np.clip(np.rint(out[..., 0] * 9.0), self.lo, self.hi).astype(np.int64))

    def accuracy(self, out, y, mask=None) -> float:
        """The Learner's metric: the share of steps whose rounded total is right."""
        return float((self.decode(out) == (y + self.lo if self.kind == "classify" else np.rint(y[..., 0] * 9))).mean())


def conv_read_in(channels, features: int, dtype, rng) -> npnet.Sequential:
    """[conv 3x3 -> max-pool 2 -> ReLU] per channel count -> flatten -> dense -> ReLU: (N, 1, 28, 28) -> (N, F).
    Max-pool first: both are monotone, so relu(maxpool(a)) = maxpool(relu(a)), at a quarter of the work."""
    layers, c_in, size = [], 1, 28
    for c in channels:
        layers += [npnet.Conv2D(c_in, c, 3, weight_init="he_uniform", dtype=dtype, rng=rng),
                   npnet.MaxPool2D(2, dtype=dtype), npnet.ReLU(dtype)]
        c_in, size = c, (size - 2) // 2
    return npnet.Sequential(*layers, npnet.Flatten(dtype=dtype),
                            npnet.LinearLayer(c_in * size * size, features, dtype=dtype, rng=rng), npnet.ReLU(dtype))


def fit(model, loss, batches, steps: int, args, metric=None, out_dir=None, callbacks=(), **fit_kw) -> npnet.Learner:
    """``steps`` optimiser steps with --optimizer, --lr, --clip; --lr-schedule cosine decays the lr to 5 %."""
    learner = npnet.Learner(model, loss, args.optimizer, lr=args.lr, clip=args.clip or None, metric=metric,
                            out_dir=out_dir, progress=False, tensorboard=False)
    cosine = [CosineAnnealingLR(learner.optimizer, steps, 0.05 * args.lr)] if args.lr_schedule == "cosine" else []
    learner.fit(batches, steps=steps, callbacks=[*callbacks, *cosine], **fit_kw)
    return learner


class Progress(npnet.Callback):
    """At each evaluation: log the means since the last one, and stop at --target TRAINING per-step accuracy."""

    def __init__(self, obj, totals, target, log):
        self.obj, self.totals, self.target, self.log = obj, totals, target, log
        self.acc, self.reason, self.t0 = [], None, time.perf_counter()

    def on_log(self, learner, rec):
        self.acc.append((rec["loss"], rec["metric"]))
        if "eval_loss" in rec:                          # runner.last_output: the held-out batch's output
            (loss, acc), self.acc = np.mean(self.acc, axis=0), []
            seq = float((self.obj.decode(learner.runner.last_output) == self.totals).all(1).mean())
            self.log(f"  step {rec['step']:5d} {time.perf_counter() - self.t0:6.0f}s  loss {loss:.4f}  train step "
                     f"acc {acc:.3f}  test step acc {rec['eval_metric']:.3f}  seq acc {seq:.3f}")
            if self.target is not None and acc >= self.target:
                self.reason, learner.stop_training = f"training per-step accuracy {acc:.4f} >= --target", True


def per_image(layer, data, idx, dtype) -> np.ndarray:                   # layer.forward, 1,024 images at a time
    return np.concatenate([layer.forward(to_float(data["images"][idx[i:i + 1024]], dtype)) for i in range(0, idx.size, 1024)])


def digit_accuracy(args, data, dtype, read_in=None) -> float:
    """Test accuracy of a linear 10-way head: without ``read_in``, trained with a fresh read-in on the TRAIN images
    (the digit-classifier baseline); else alone on ``read_in``'s features, 300 full-batch steps (the probe)."""
    rng, loss = common.seed_rng(args.seed, "model") if read_in is None else 0, npnet.SoftmaxCrossEntropyLoss(dtype=dtype)
    if read_in is None:
        def batches(rng):                                     # (N, 1, 1, 28, 28): N one-step sequences
            while True:
                b = data["train"][rng.integers(0, data["train"].size, args.digit_batch)]
                yield to_float(shifted(data["images"], b, args.shift, rng), dtype)[:, None], data["labels"][b, None]

        model = npnet.Sequential(conv_read_in(args.conv_channels, args.features, dtype, rng),
                                 npnet.LinearLayer(args.features, 10, dtype=dtype, rng=rng))
        fit(TimeDistributed(model), loss, Stream(batches, common.seed_rng(args.seed, "eval")), args.digit_steps, args)
    else:
        z = per_image(read_in, data, data["train"], dtype)[:, None]                                  # (N, 1, F)
        model = npnet.Sequential(read_in, npnet.LinearLayer(args.features, 10, dtype=dtype, rng=rng))
        fit(TimeDistributed(model[1]), loss, [(z, data["labels"][data["train"], None])], 300, PROBE)
    return float((np.argmax(per_image(model, data, data["test"], dtype), 1) == data["labels"][data["test"]]).mean())


def train_run(args, data, out_dir: str, log, digit: dict | None) -> dict:
    """Train and evaluate one model; metrics.csv, checkpoint.npz and the plots in out_dir; the results."""
    dtype, L, rng, labels = np.dtype(args.dtype).type, args.seq_len, common.seed_rng(args.seed, "model"), data["labels"]
    obj = Objective(args.objective, L, dtype)
    model = npnet.SequenceModel(args.features, args.hidden, args.layers, **common.cell_args(args.cell), output_size=obj.output_size,
                                read_in=conv_read_in(args.conv_channels, args.features, dtype, rng), dtype=dtype, rng=rng)
    test_seqs = sample_sequences(data["test"], args.test_seqs, L, common.seed_rng(args.seed, "test"))   # (S, L)
    ev, totals = test_seqs[:args.eval_seqs], alternating_sums(labels[test_seqs])                         # (S, L)

    def batches(rng):                                         # training images only, fresh every step
        while True:
            seq = sample_sequences(data["train"], args.batch_size, L, rng)                           # (B, L)
            yield to_float(shifted(data["images"], seq, args.shift, rng), dtype), obj.target(alternating_sums(labels[seq]))

    os.makedirs(out_dir, exist_ok=True)
    progress = Progress(obj, totals[:args.eval_seqs], None if args.no_early_stop else args.target, log)
    t0, c0 = time.perf_counter(), time.process_time()
    learner = fit(model, obj.loss, Stream(batches, common.seed_rng(args.seed, "train")), args.steps, args, obj.accuracy,
                  out_dir, [progress] + ([npnet.TimeLimit(args.time_limit)] if args.time_limit else []),
                  eval_batches=[(to_float(data["images"][ev], dtype), obj.target(totals[:args.eval_seqs]))],
                  eval_every=args.eval_every)
    train_wall, train_cpu, steps = time.perf_counter() - t0, time.process_time() - c0, learner.step
    reason = progress.reason or (f"time limit {args.time_limit:g}s" if steps < args.steps else None)
    if reason:
        log(f"  stopped at step {steps}: {reason}")
    x_test = to_float(data["images"][test_seqs], dtype)                                                # (S, L, 1, 28, 28)
    pred = obj.decode(np.concatenate([learner.predict(x_test[i:i + 256]) for i in range(0, len(x_test), 256)]))
    step_acc = [float(a) for a in (pred == totals).mean(axis=0)]
    p = digit_accuracy(args, data, dtype, model.read_in) if getattr(args, "probe", True) else float("nan")
    npnet.save_checkpoint(os.path.join(out_dir, "checkpoint.npz"), model, learner.optimizer, step=steps,
                          extra={"task": TASK, "seq_len": L, "objective": args.objective})
    res = {"seq_len": L, "objective": args.objective, "classes": obj.output_size if args.objective == "classify" else None,
           "step_accuracy": float(np.mean(step_acc)), "step_accuracy_by_position": step_acc,
           "test_accuracy": float((pred == totals).all(axis=1).mean()), "steps": steps, "stopped_early": reason is not None,
           "stop_reason": reason, "train_s": round(train_wall, 2), "train_cpu_s": round(train_cpu, 2),
           "params": model.num_params, "probe_digit_accuracy": p,
           "probe_implied_step_accuracy": float(np.mean([p ** (t + 1) for t in range(L)])), "test_sequences": args.test_seqs}
    if digit is not None:
        implied = [digit["digit_accuracy"] ** (t + 1) for t in range(L)]
        res.update({"digit_accuracy": digit["digit_accuracy"], "implied_step_accuracy_by_position": implied,
                    "implied_step_accuracy": float(np.mean(implied)), "implied_sequence_accuracy": implied[-1]})
    common.plot_learning_curve(learner.history, os.path.join(out_dir, "learning_curves.png"), "per-step accuracy",
                               baseline=res.get("implied_step_accuracy"))
    plot_positions(os.path.join(out_dir, "step_accuracy.png"), {"model": step_acc, **({
        f"perfect arithmetic: p^t (p={digit['digit_accuracy']:.3f})": implied} if digit else {})},
        title=f"L={L} digits: conv + {args.cell} H={args.hidden}, {args.objective}")
    plot_examples(os.path.join(out_dir, "examples.png"), data["images"][test_seqs[:6]], pred[:6], totals[:6])
    log(f"  L={L} {args.objective}: per-step accuracy {' '.join(f'{a:.3f}' for a in step_acc)} (mean "
        f"{res['step_accuracy']:.4f}), sequence accuracy {res['test_accuracy']:.4f}, read-in probe {p:.4f}, "
        f"{steps} steps in {train_wall:.0f}s")
    return res


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(TASK, __doc__.split("\n\n")[0], hidden=64, batch_size=32, steps=3000, lr=2e-3, clip=5.0,
                           dtype="float32", eval_every=250)
    p.epilog = ("Data: --mnist-dir DIR, else npnet.data.find_data_dir('mnist') ($NPNET_DATA/mnist or ~/.cache/npnet/mnist;"
                " the test set is downloaded there if missing). --target: the TRAINING per-step accuracy, never test data.")
    t = p.add_argument_group("the digit-sums task")
    for flag, kind, default, text in (
            ("--seq-len", common.positive_int, 4, "digits per sequence (L)"),
            ("--objective", ["classify", "regress"], "classify", "classify: 9L+1 classes of the total; regress: MSE on total/9"),
            ("--report", ["single", "objectives", "lengths", "grid"], "single",
             "objectives: classify and regress; lengths: --lengths; grid: --grid-lengths x --batch-sizes"),
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
            ("--test-fraction", common.positive_float, 0.2, "share of the IMAGES held out for test, in (0, 1)")):
        t.add_argument(flag, default=default, help=text, **{"choices" if isinstance(kind, list) else "type": kind})
    digit_sums_grid.add_options(p.add_argument_group("--report grid"))
    return p


def check_args(args) -> None:
    """Cross-option checks; a ValueError becomes a usage error (exit 2). --target: TRAINING per-step accuracy."""
    for bad, text in ((args.bptt is not None, "--bptt is not supported (full BPTT over the L steps)"),
                      (not args.test_fraction < 1, f"--test-fraction must be in (0, 1), got {args.test_fraction}"),
                      ((28 >> len(args.conv_channels)) < 2, "--conv-channels: at most 3 conv blocks fit 28x28 images"),
                      (args.jobs == 0, "--jobs must be >= 1 or negative (joblib: -1 = one per core)")):
        if bad:
            raise ValueError(text)
    common.check_data_dir("--mnist-dir", args.mnist_dir, "mnist")
    args.steps = args.epochs * args.epoch_size if args.epochs else args.steps
    args.eval_seqs = min(args.eval_seqs, args.test_seqs)
    if args.match_params:
        args.hidden = common.matched_hidden(args.cell, args.features, args.hidden, args.layers, None)


def load_split(args) -> dict:
    """MNIST (--mnist-dir, else find_data_dir; the test set is downloaded if missing), split by IMAGE (stratified)."""
    folder = find_data_dir("mnist", args.mnist_dir)
    images, labels = load_mnist(folder, kind="all") if folder.is_dir() else load_mnist(kind="test")
    train, test = stratified_split(labels, args.test_fraction, rng=args.seed)
    return {"images": images, "labels": labels, "train": train, "test": test, "source": str(folder)}


def main(argv=None) -> dict:
    p = build_parser()
    args = common.parse(p, argv, check_args)
    data, run = load_split(args), common.Run(args)
    n_tr, n_te = int(data["train"].size), int(data["test"].size)
    if n_tr < 1 or n_te < 1:
        p.error(f"need images on both sides of the split, got {n_tr} train / {n_te} test")
    run.log(f"{n_tr + n_te} images from {data['source']}; split by image (stratified, seed {args.seed}): {n_tr} train, {n_te} test")
    run.write_config(data_source=data["source"], n_images=n_tr + n_te, n_train_images=n_tr, n_test_images=n_te)
    if args.report == "grid":
        return digit_sums_grid.main_grid(args, run)
    t0, digit = time.perf_counter(), None
    if args.digit_steps:
        digit = {"digit_accuracy": digit_accuracy(args, data, np.dtype(args.dtype).type), "digit_steps": args.digit_steps,
                 "digit_wall_s": round(time.perf_counter() - t0, 2)}
        run.log(f"digit classifier (read-in + linear head, {args.digit_steps} steps x {args.digit_batch} images): test "
                f"digit accuracy {digit['digit_accuracy']:.4f} in {digit['digit_wall_s']:.0f}s")
    key, values = {"single": ("seq_len", [args.seq_len]), "objectives": ("objective", ["classify", "regress"]),
                   "lengths": ("seq_len", args.lengths)}[args.report]
    results = []
    for v in values:
        sub = argparse.Namespace(**{**vars(args), key: v})
        run.log(f"training: L={sub.seq_len}, {sub.objective}, {sub.steps} steps of {sub.batch_size} sequences")
        results.append(train_run(sub, data, run.dir if len(values) == 1 else run.path(f"{key}_{v}"), run.log, digit))
    summary = dict(next((r for r in results if (r["seq_len"], r["objective"]) == (args.seq_len, args.objective)),
                        results[0]), **(digit or {}), **({"runs": results} if len(values) > 1 else {}))
    if args.report == "lengths":
        plot_positions(run.path("lengths.png"), {f"L={r['seq_len']}": r["step_accuracy_by_position"] for r in results})
    summary.update({"baseline": summary["implied_step_accuracy" if digit else "probe_implied_step_accuracy"],
                    "baseline_name": "perfect arithmetic on " + ("the digit classifier" if digit else
                                     "a linear probe of the read-in") + " (mean over t of p^t)", "headline": "step_accuracy",
                    "wall_s": round(run.elapsed(), 2), "cpu_s": round(time.process_time() - run.cpu0, 2),
                    "cell": args.cell, "hidden": args.hidden, "seed": args.seed, "n_train_images": n_tr, "n_test_images": n_te})
    common.write_json(run.path("summary.json"), summary)
    s, by_t = summary, " ".join(f"{a:.3f}" for a in summary["step_accuracy_by_position"])
    print(f"{TASK}: step_accuracy {s['step_accuracy']:.4f} ({by_t}), test_accuracy {s['test_accuracy']:.4f} (baseline "
          f"{s['baseline']:.4f}) L={s['seq_len']} {s['objective']} {args.cell} H={args.hidden}, {s['steps']} steps, "
          f"{s['wall_s']:.1f} s ({s['cpu_s']:.0f} s cpu) -> {run.dir}", flush=True)
    return summary


if __name__ == "__main__":
    main()
