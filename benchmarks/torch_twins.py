#!/usr/bin/env python
"""PyTorch twins of two npnet experiments: the reference numbers docs/experiments.md quotes.

    /work/venv-torch/bin/python benchmarks/torch_twins.py names        # ~1-3 min of CPU
    /work/venv-torch/bin/python benchmarks/torch_twins.py digit_sums   # ~2-5 min of CPU

Each twin reads the same data through npnet.data (same files, same seeded split) and trains the
model of the npnet default run with torch's own layers and optimisers, then prints the numbers
(test accuracy per epoch for names; per-position accuracy for digit sums). Batch order and
initial weights come from torch / NumPy seeds of their own, so they are a twin, not a replay.
torch is optional: it is never a dependency of npnet (this file is not imported by anything).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from npnet.data import bucket_by_length, load_mnist, load_names, stratified_split  # noqa: E402
from npnet.data import find_data_dir  # noqa: E402
from npnet.data.names import encode_names  # noqa: E402


def _torch():
    try:
        import torch
    except ImportError:
        sys.exit("torch_twins.py needs PyTorch (pip install torch); npnet itself never does")
    return torch


# -- names: 56 one-hot chars -> linear read-in 32 -> LSTM 128 -> 18 languages --------------------------------
def names_data(data_dir, seed: int):
    """The split of experiments/names.py: stratified 80/20 train/test (seed), validation 10 % of train (seed + 1)."""
    data = load_names(data_dir)
    seqs = encode_names(data.names, one_hot=True, dtype=np.float32)            # [(T_i, 56)]
    lengths = np.array([len(s) for s in seqs])
    labels = np.asarray(data.labels, dtype=np.int64)
    train_all, test = stratified_split(labels, 0.2, rng=seed)
    tr, va = stratified_split(labels[train_all], 0.1, rng=seed + 1)
    return seqs, lengths, labels, train_all[tr], train_all[va], test, len(data.languages)


def _pad(torch, seqs, idx):
    T = max(len(seqs[i]) for i in idx)
    x = np.zeros((len(idx), T, seqs[idx[0]].shape[1]), np.float32)           # (B, T, 56)
    for b, i in enumerate(idx):
        x[b, :len(seqs[i])] = seqs[i]
    return torch.from_numpy(x), torch.tensor([len(seqs[i]) for i in idx])


def names_twin(args):
    torch = _torch()
    torch.manual_seed(args.seed)
    seqs, lengths, labels, train, val, test, V = names_data(args.data_dir, args.split_seed)
    read_in, lstm, read_out = torch.nn.Linear(56, 32), torch.nn.LSTM(32, 128, batch_first=True), torch.nn.Linear(128, V)
    params = [*read_in.parameters(), *lstm.parameters(), *read_out.parameters()]
    torch_opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    per_epoch = -(-len(train) // 32)
    total = per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda t: 0.1 ** (min(t, total) / total))   # lr 0.1 -> 0.01

    def logits(idx):
        x, n = _pad(torch, seqs, idx)
        h, _ = lstm(read_in(x))                                                 # (B, T, 128)
        return read_out(h[torch.arange(len(idx)), n - 1])                      # each name's last real step

    def accuracy(idx):
        with torch.no_grad():
            order = idx[np.argsort(lengths[idx], kind="stable")]
            hits = sum(int((logits(order[s:s + 512]).argmax(1) == torch.from_numpy(labels[order[s:s + 512]])).sum())
                       for s in range(0, len(order), 512))
        return hits / len(idx)

    rng, t0, best = np.random.default_rng([args.seed, 1]), time.perf_counter(), (0.0, 0, 0.0)
    print(f"names twin: {len(train)} train / {len(val)} val / {len(test)} test names, LSTM 128, read-in 32, SGD "
          f"momentum 0.9, wd 1e-4, lr 0.1 -> 0.01, clip 5, batch 32, {args.epochs} epochs, torch threads "
          f"{torch.get_num_threads()}")
    for epoch in range(1, args.epochs + 1):
        for b in bucket_by_length(rng, lengths[train], 32, pool_batches=len(train)):
            loss = torch.nn.functional.cross_entropy(logits(train[b]), torch.from_numpy(labels[train[b]]))
            torch_opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            torch_opt.step()
            sched.step()
        va_acc, te_acc = accuracy(val), accuracy(test)
        if va_acc > best[0]:
            best = (va_acc, epoch, te_acc)
        print(f"  epoch {epoch:2d}: val {va_acc:.4f} test {te_acc:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"names twin: test accuracy at the best validation epoch {best[1]}: {best[2]:.4f}; last epoch "
          f"{te_acc:.4f}; {time.perf_counter() - t0:.0f} s wall, {time.process_time():.0f} s CPU")


# -- digit sums: conv 16/32 + dense 64 read-in -> LSTM 64 -> 37 classes at every step ----------------------
def digit_data(mnist_dir, seed: int):
    """The images and the by-image split of experiments/digit_sums.py (stratified 20 % test, seed)."""
    folder = find_data_dir("mnist", mnist_dir)
    images, labels = load_mnist(folder, kind="all") if folder.is_dir() else load_mnist(kind="test")
    train, test = stratified_split(labels, 0.2, rng=seed)
    return images, labels, train, test


def alternating_sums(digits):
    digits = np.asarray(digits, dtype=np.int64)
    return np.cumsum(digits * np.where(np.arange(digits.shape[-1]) % 2 == 0, 1, -1), axis=-1)


def digit_model(torch, L: int):
    nn = torch.nn
    read_in = nn.Sequential(nn.Conv2d(1, 16, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.MaxPool2d(2),
                            nn.ReLU(), nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU())
    return read_in, nn.LSTM(64, 64, batch_first=True), nn.Linear(64, 9 * L + 1)


def digit_sums_twin(args):
    torch = _torch()
    torch.manual_seed(args.seed)
    images, labels, train, test = digit_data(args.mnist_dir, args.seed)
    L, lo = args.seq_len, -9 * (args.seq_len // 2)
    read_in, lstm, read_out = digit_model(torch, L)
    params = [*read_in.parameters(), *lstm.parameters(), *read_out.parameters()]
    torch_opt = torch.optim.Adam(params, lr=2e-3)
    rng = np.random.default_rng([args.seed, 1])
    test_seqs = test[np.random.default_rng([args.seed, 3]).integers(0, test.size, size=(2000, L))]   # (S, L)
    totals = alternating_sums(labels[test_seqs])

    def forward(seq):                                                           # seq (B, L) image indices
        x = torch.from_numpy(images[seq].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
        h, _ = lstm(read_in(x).reshape(seq.shape[0], L, 64))
        return read_out(h)                                                      # (B, L, 9L+1)

    def evaluate():
        with torch.no_grad():
            pred = torch.cat([forward(test_seqs[i:i + 256]).argmax(-1) for i in range(0, len(test_seqs), 256)])
        right = pred.numpy() + lo == totals
        return right.mean(axis=0), right.all(axis=1).mean()

    print(f"digit sums twin: {train.size} train / {test.size} test images, L={L}, conv 16/32 + dense 64, LSTM 64, "
          f"Adam 2e-3, clip 5, batch {args.batch_size}, {args.steps} steps, torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        seq = train[rng.integers(0, train.size, size=(args.batch_size, L))]
        y = torch.from_numpy(alternating_sums(labels[seq]) - lo)
        loss = torch.nn.functional.cross_entropy(forward(seq).reshape(-1, 9 * L + 1), y.reshape(-1))
        torch_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        torch_opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            by_pos, seq_acc = evaluate()
            print(f"  step {step:5d}: per position {' '.join(f'{a:.3f}' for a in by_pos)} (mean {by_pos.mean():.4f}), "
                  f"sequence {seq_acc:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"digit sums twin: per-step accuracy {' '.join(f'{100 * a:.1f}' for a in by_pos)} % (mean "
          f"{100 * by_pos.mean():.1f} %), sequence {100 * seq_acc:.1f} %; {time.perf_counter() - t0:.0f} s wall, "
          f"{time.process_time():.0f} s CPU")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python benchmarks/torch_twins.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("twin", choices=("names", "digit_sums"), help="which experiment's twin to run")
    p.add_argument("--seed", type=int, default=0, help="torch and batch-order seed (digit sums: also the split)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (npnet's runs use one BLAS thread)")
    p.add_argument("--data-dir", default=None, help="names: the folder of Language.txt files (default: npnet's)")
    p.add_argument("--split-seed", type=int, default=0, help="names: seed of the train/test split")
    p.add_argument("--epochs", type=int, default=15, help="names: training epochs")
    p.add_argument("--mnist-dir", default=None, help="digit sums: the MNIST folder (default: npnet's)")
    p.add_argument("--seq-len", type=int, default=4, help="digit sums: images per sequence (L)")
    p.add_argument("--steps", type=int, default=3000, help="digit sums: optimiser steps")
    p.add_argument("--batch-size", type=int, default=32, help="digit sums: sequences per batch")
    p.add_argument("--eval-every", type=int, default=500, help="digit sums: steps between test evaluations")
    args = p.parse_args(argv)
    _torch().set_num_threads(args.threads)
    (names_twin if args.twin == "names" else digit_sums_twin)(args)


if __name__ == "__main__":
    main()
