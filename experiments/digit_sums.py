"""Alternating running sums over handwritten digits: d1, d1 - d2, d1 - d2 + d3, ... (MNIST).

A small convolutional read-in sees one digit image per time step, an LSTM keeps the running
total, a read-out predicts it at every step (37-way classification for length 4, or regression).
Images are split into train/test FIRST (seeded), so no test image is ever seen in training.

    python experiments/digit_sums.py                        # default run, length 4
    python experiments/digit_sums.py --report objectives    # classification vs regression
    python experiments/digit_sums.py --report lengths       # sequence lengths 2, 4, 6, 8
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:                      # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import npnet                                       # noqa: E402
from npnet import datasets                         # noqa: E402
from npnet.layer import Layer, ShapeError, check_input   # noqa: E402

TASK = "digit_sums"
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"   # ../shared/data/mnist next to the repo


# ---------------------------------------------------------------------------------------------
# Task: the split and the targets
# ---------------------------------------------------------------------------------------------
def alternating_sums(digits: np.ndarray) -> np.ndarray:
    """Running totals with alternating signs: s_t = sum_{k<=t} (-1)^(k-1) d_k.

    digits (..., T) ints -> totals (..., T) int64: d1, d1 - d2, d1 - d2 + d3, ...
    """
    digits = np.asarray(digits, dtype=np.int64)
    signs = np.where(np.arange(digits.shape[-1]) % 2 == 0, 1, -1)   # (T,) +1, -1, +1, ...
    return np.cumsum(digits * signs, axis=-1)


def total_range(seq_len: int) -> tuple[int, int]:
    """Smallest and largest running total over all steps of a length-L sequence of digits 0-9.

    Odd steps add (up to ceil(L/2) of them), even steps subtract (floor(L/2)): the range is
    [-9 floor(L/2), 9 ceil(L/2)], 9 L + 1 values (37 classes for L = 4: -18..18).
    """
    return -9 * (seq_len // 2), 9 * ((seq_len + 1) // 2)


def split_images(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified split of the IMAGES -> (train_idx, test_idx), disjoint, covering all."""
    return datasets.stratified_split(labels, test_fraction, rng=seed)


def sample_sequences(pool: np.ndarray, n: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """n sequences of seq_len image indices drawn uniformly (with replacement) from ``pool``: (n, L)."""
    return pool[rng.integers(0, pool.size, size=(n, seq_len))]


def to_float(images_u8: np.ndarray, dtype) -> np.ndarray:
    """uint8 (..., 28, 28) -> dtype in [0, 1]."""
    return images_u8.astype(dtype) * dtype(1.0 / 255.0)


# ---------------------------------------------------------------------------------------------
# Model: conv read-in at every step -> recurrent stack -> read-out at every step
# ---------------------------------------------------------------------------------------------
class ReLU(Layer):
    """Elementwise rectifier.

    Equations::

        forward:   y = max(x, 0)
        backward:  dx = dy * [y > 0]

    Shapes: any -> same. Cache: the mask [y > 0] (bool, a quarter of a float32 copy).
    """

    def __init__(self, dtype=np.float64, rng=None):
        super().__init__(dtype, rng)

    def get_config(self) -> dict:
        return {"dtype": self.dtype.name}

    def fprop(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, "x", -1, None, self.dtype)
        y = np.maximum(x, 0.0)                         # new array: x is never modified
        self._cache = y > 0
        return y

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(check_input(x, "x", -1, None, self.dtype), 0.0)

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        mask = self._take_cache()
        dy = check_input(dy, "dy", -1, None, self.dtype)
        if dy.shape != mask.shape:
            raise ShapeError(f"ReLU.bprop expects dy of shape {mask.shape}, got {dy.shape}")
        return dy * mask


class ConvReadIn(Layer):
    """Per-image feature extractor: [conv 3x3 -> ReLU -> maxpool 2] per channel count -> dense -> ReLU.

    Equations (one image x (1, 28, 28); f_k the k-th conv block)::

        forward:   a_k = maxpool2(relu(conv3x3_k(a_{k-1}))),  a_0 = x
                   z = relu(flatten(a_K) W + b)                        (features,)
        backward:  the chain in reverse, each layer's own bprop (ReLU: dy * [y > 0];
                   maxpool: routed to the argmax; conv: see npnet.Conv2D)

    Shapes: x (N, 1, H, W) or (..., 1, H, W) -> z (..., features).
    Parameters: ``conv{k}.W``, ``conv{k}.b``, ``dense.W``, ``dense.b``.
    """

    def __init__(self, channels=(16, 32), features: int = 64, image_size: int = 28,
                 dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self.channels = [int(c) for c in channels]
        self.features = int(features)
        self.image_size = int(image_size)
        self.layers = []
        self.named = []
        c_in, size = 1, self.image_size
        for k, c in enumerate(self.channels):
            conv = npnet.Conv2D(c_in, c, 3, weight_init="he_uniform", dtype=self.dtype, rng=self.rng)
            self.layers += [conv, ReLU(self.dtype), npnet.MaxPool2D(2, dtype=self.dtype)]
            self.named.append((f"conv{k}", conv))
            c_in, size = c, (size - 2) // 2
            if size < 1:
                raise ValueError(f"{len(self.channels)} conv blocks do not fit a {image_size}x{image_size} image")
        self.flat_size = c_in * size * size
        dense = npnet.LinearLayer(self.flat_size, self.features, dtype=self.dtype, rng=self.rng)
        self.layers += [npnet.Flatten(-3, dtype=self.dtype), dense, ReLU(self.dtype)]
        self.named.append(("dense", dense))
        for prefix, layer in self.named:
            for k in layer.params:
                self.params[f"{prefix}.{k}"] = layer.params[k]
                self.grads[f"{prefix}.{k}"] = layer.grads[k]

    def get_config(self) -> dict:
        return {"channels": self.channels, "features": self.features, "image_size": self.image_size,
                "dtype": self.dtype.name}

    def fprop(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.fprop(x)
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.bprop(dy)
        return dy

    def clear_cache(self) -> None:
        for layer in self.layers:
            layer._cache = None


class DigitSumModel(Layer):
    """Conv read-in applied at every time step -> SequenceModel (recurrent stack + read-out).

    Equations (x (B, T, H, W) images)::

        forward:   z_t = ReadIn(x_t)                      (B, T, F)   one batched call on (B*T, 1, H, W)
                   y, state = SequenceModel(z, state)     (B, T, V)   cells then LinearLayer read-out
        backward:  dz, dstate0 = SequenceModel.bprop(dy, dstate)
                   dx = ReadIn.bprop(dz)                  (B, T, H, W); the read-in's weight
                   gradients add up over all B*T images (the weights are shared over time)

    Parameters
    ----------
    output_size : int (V), classes of the running total, or 1 for regression
    channels, features : conv channel counts and dense width of the read-in
    cell, hidden_size, num_layers : the recurrent stack (see npnet.SequenceModel)
    dtype, rng : see :class:`npnet.layer.Layer`

    Call: ``out, state = fprop(x, state=None, mask=None)``; ``dx, dstate0 = bprop(dout, dstate=None)``.
    Parameter names: ``read_in.<...>`` and ``seq.<SequenceModel name>``.
    """

    def __init__(self, output_size: int, channels=(16, 32), features: int = 64, cell: str = "lstm",
                 hidden_size: int = 64, num_layers: int = 1, image_size: int = 28,
                 dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self._config = {"output_size": int(output_size), "channels": [int(c) for c in channels],
                        "features": int(features), "cell": cell, "hidden_size": int(hidden_size),
                        "num_layers": int(num_layers), "image_size": int(image_size),
                        "dtype": self.dtype.name}
        self.image_size = int(image_size)
        self.read_in = ConvReadIn(channels, features, image_size, dtype=self.dtype, rng=self.rng)
        self.seq = npnet.SequenceModel(int(features), int(hidden_size), int(num_layers), cell=cell,
                                       output_size=int(output_size), dtype=self.dtype, rng=self.rng)
        for prefix, layer in (("read_in", self.read_in), ("seq", self.seq)):
            for k in layer.params:
                self.params[f"{prefix}.{k}"] = layer.params[k]
                self.grads[f"{prefix}.{k}"] = layer.grads[k]

    def get_config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> "DigitSumModel":
        return cls(**config)

    def init_state(self, batch_size: int) -> list:
        return self.seq.init_state(batch_size)

    def _check_x(self, x) -> np.ndarray:
        x = check_input(x, "x", (4, 5), None, self.dtype)
        s = self.image_size
        if x.shape[2:] not in ((s, s), (1, s, s)) or x.shape[0] < 1 or x.shape[1] < 1:
            raise ShapeError(f"x must be images of shape (B, T, {s}, {s}) or (B, T, 1, {s}, {s}), got {x.shape}")
        return x

    def fprop(self, x, state=None, mask=None):
        """x (B, T, H, W) -> (logits (B, T, V), state list)."""
        x = self._check_x(x)
        B, T = x.shape[:2]
        z = self.read_in.fprop(x.reshape(B * T, 1, self.image_size, self.image_size))   # (B*T, F)
        self._cache = {"x_shape": x.shape}
        return self.seq.fprop(z.reshape(B, T, -1), state, mask)

    def bprop(self, dout, dstate=None):
        """dout (B, T, V) -> (dx like x, dstate0 list)."""
        cache = self._take_cache()
        B, T = cache["x_shape"][:2]
        dz, dstate0 = self.seq.bprop(dout, dstate)                                       # (B, T, F)
        dx = self.read_in.bprop(dz.reshape(B * T, -1))                                   # (B*T, 1, H, W)
        return dx.reshape(cache["x_shape"]), dstate0

    def predict(self, x, chunk: int = 256) -> np.ndarray:
        """Outputs without caches, in chunks of ``chunk`` sequences: x (B, T, H, W) -> (B, T, V)."""
        x = self._check_x(x)
        outs = []
        for i in range(0, x.shape[0], chunk):
            xb = x[i:i + chunk]
            b, t = xb.shape[:2]
            z = self.read_in.forward(xb.reshape(b * t, 1, self.image_size, self.image_size))
            h = z.reshape(b, t, -1)
            states = [None] * len(self.seq.cells)
            ys = []
            for step in range(t):                     # step() keeps no cache
                y, states = self.seq.step(h[:, step], states)
                ys.append(y)
            outs.append(np.stack(ys, axis=1))
        return np.concatenate(outs, axis=0)


npnet.checkpoint.register(DigitSumModel)


class DigitClassifier(Layer):
    """The same read-in with a linear 10-way head: the plain digit classifier baseline.

    forward: logits = ReadIn(x) W + b (N, 10); backward through the head, then the read-in.
    """

    def __init__(self, channels=(16, 32), features: int = 64, image_size: int = 28,
                 dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self._config = {"channels": [int(c) for c in channels], "features": int(features),
                        "image_size": int(image_size), "dtype": self.dtype.name}
        self.read_in = ConvReadIn(channels, features, image_size, dtype=self.dtype, rng=self.rng)
        self.head = npnet.LinearLayer(int(features), 10, dtype=self.dtype, rng=self.rng)
        for prefix, layer in (("read_in", self.read_in), ("head", self.head)):
            for k in layer.params:
                self.params[f"{prefix}.{k}"] = layer.params[k]
                self.grads[f"{prefix}.{k}"] = layer.grads[k]

    def get_config(self) -> dict:
        return dict(self._config)

    def fprop(self, x):
        return self.head.fprop(self.read_in.fprop(x))

    def bprop(self, dy):
        return self.read_in.bprop(self.head.bprop(dy))

    def predict(self, x, chunk: int = 1024) -> np.ndarray:
        return np.concatenate([self.head.forward(self.read_in.forward(x[i:i + chunk]))
                               for i in range(0, x.shape[0], chunk)], axis=0)


# ---------------------------------------------------------------------------------------------
# Objectives: classification of the total (9L + 1 classes) or regression (total / 9)
# ---------------------------------------------------------------------------------------------
class Objective:
    """Maps running totals to training targets and model outputs back to integer totals."""

    def __init__(self, kind: str, seq_len: int, dtype):
        self.kind, self.dtype = kind, np.dtype(dtype)
        self.lo, self.hi = total_range(seq_len)
        if kind == "classify":
            self.output_size = self.hi - self.lo + 1
            self.loss = npnet.SoftmaxCrossEntropyLoss(dtype=self.dtype)
        elif kind == "regress":
            self.output_size = 1
            self.loss = npnet.MSELoss(dtype=self.dtype)
        else:
            raise ValueError(f"objective must be 'classify' or 'regress', got {kind!r}")

    def target(self, totals: np.ndarray) -> np.ndarray:
        if self.kind == "classify":
            return totals - self.lo                                       # class index 0..V-1
        return (totals / 9.0).astype(self.dtype)[..., None]               # (B, T, 1), unit scale

    def decode(self, out: np.ndarray) -> np.ndarray:
        """Outputs (B, T, V) -> predicted integer totals (B, T)."""
        if self.kind == "classify":
            return np.argmax(out, axis=-1) + self.lo
        return np.clip(np.rint(out[..., 0] * 9.0), self.lo, self.hi).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def nonneg_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def positive_float(s: str) -> float:
    v = float(s)
    if not v > 0 or not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


def int_list(s: str) -> list[int]:
    try:
        vals = [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {s!r}")
    return vals


def fraction(s: str) -> float:
    v = float(s)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {s}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="digit_sums.py",
        description="Alternating running sums d1, d1-d2, d1-d2+d3, ... over MNIST digit images: "
                    "conv read-in at every step -> LSTM -> read-out at every step.",
        epilog="Data: --mnist-dir DIR; otherwise the npnet cache ($NPNET_DATA or ~/.cache/npnet, "
               "mnist/) if it holds MNIST; otherwise ../shared/data/mnist next to the repository "
               f"({SHARED_MNIST}) if present; otherwise the test set is downloaded into the cache "
               "(verified). The 60,000 training images are used too when the folder has them. "
               "The images (not the sequences) are split into train/test first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model and training (shared names)")
    g.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    g.add_argument("--hidden", type=positive_int, default=64, help="recurrent units")
    g.add_argument("--layers", type=positive_int, default=1, help="recurrent layers")
    g.add_argument("--batch-size", type=positive_int, default=32, help="sequences per step")
    g.add_argument("--steps", type=nonneg_int, default=3000, help="training steps (minibatches)")
    g.add_argument("--lr", type=positive_float, default=2e-3)
    g.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop", "adagrad"], default="adam")
    g.add_argument("--clip", type=float, default=5.0, help="global gradient-norm clip (<= 0: none)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    g.add_argument("--out", default=None, help="run folder (default runs/digit_sums-<timestamp>)")
    g.add_argument("--threads", type=positive_int, default=1,
                   help="BLAS threads (1 is fastest on a shared 2-core machine; needs threadpoolctl)")
    t = p.add_argument_group("task")
    t.add_argument("--seq-len", type=positive_int, default=4, help="digits per sequence (L)")
    t.add_argument("--objective", choices=["classify", "regress"], default="classify",
                   help="classify: 9L+1 classes of the total; regress: MSE on total/9, rounded")
    t.add_argument("--report", choices=["single", "objectives", "lengths"], default="single",
                   help="single run; 'objectives': classify and regress; 'lengths': one run per --lengths")
    t.add_argument("--lengths", type=int_list, default=[2, 4, 6, 8], help="lengths for --report lengths")
    t.add_argument("--conv-channels", type=int_list, default=[16, 32], help="channels of the 3x3 conv blocks")
    t.add_argument("--features", type=positive_int, default=64, help="dense width of the read-in")
    t.add_argument("--digit-steps", type=nonneg_int, default=600,
                   help="steps of the plain digit classifier baseline (0: skip it)")
    t.add_argument("--digit-batch", type=positive_int, default=128)
    t.add_argument("--test-seqs", type=positive_int, default=2000, help="test sequences (from test images)")
    t.add_argument("--eval-every", type=positive_int, default=250, help="steps between evaluations")
    t.add_argument("--eval-seqs", type=positive_int, default=500, help="test sequences used for curves")
    t.add_argument("--time-limit", type=float, default=0.0,
                   help="stop training after this many seconds per run (0: no limit)")
    d = p.add_argument_group("data")
    d.add_argument("--mnist-dir", default=None, help="folder with the MNIST IDX files (.gz or raw)")
    d.add_argument("--cache-dir", default=None, help="npnet data cache (default $NPNET_DATA or ~/.cache/npnet)")
    d.add_argument("--test-fraction", type=fraction, default=0.2, help="share of IMAGES held out for test")
    d.add_argument("--max-images", type=nonneg_int, default=0, help="use only the first N images (0: all)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.clip < 0 or not np.isfinite(args.clip):
        p.error(f"--clip must be >= 0 (0: no clipping), got {args.clip}")
    if args.time_limit < 0:
        p.error(f"--time-limit must be >= 0, got {args.time_limit}")
    if args.max_images and args.max_images < 20:
        p.error(f"--max-images must be 0 (all) or at least 20, got {args.max_images}")
    if args.eval_seqs > args.test_seqs:
        args.eval_seqs = args.test_seqs
    if args.mnist_dir is not None and not Path(args.mnist_dir).expanduser().is_dir():
        p.error(f"--mnist-dir {args.mnist_dir} is not a directory")
    return args


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def _cache_has(folder: Path, split: str) -> bool:
    stems = {"test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
             "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}[split]
    return all((folder / (s + ".gz")).is_file() for s in stems)


def load_data(args) -> tuple[np.ndarray, np.ndarray, str]:
    """-> images (N, 28, 28) uint8, labels (N,), a description of the source."""
    if args.mnist_dir is not None:
        images, labels = datasets.load_mnist(args.mnist_dir, kind="all")
        source = str(Path(args.mnist_dir).expanduser())
    else:
        cache = Path(args.cache_dir).expanduser() if args.cache_dir else datasets.default_cache_dir()
        folder = cache / "mnist"
        if _cache_has(folder, "test"):
            kind = "all" if _cache_has(folder, "train") else "test"
            images, labels = datasets.load_mnist(cache_dir=cache, kind=kind)   # re-verified
            source = f"{folder} (cache, {kind})"
        elif SHARED_MNIST.is_dir():
            images, labels = datasets.load_mnist(SHARED_MNIST, kind="all")
            source = str(SHARED_MNIST)
        else:
            images, labels = datasets.load_mnist(cache_dir=cache, kind="test")  # verified download
            source = f"{folder} (downloaded test set)"
    if args.max_images:
        images, labels = images[:args.max_images], labels[:args.max_images]
    return images, labels, source


# ---------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------
def make_optimizer(args, params):
    kw = {"lr": args.lr}
    return npnet.optim.get(args.optimizer, params, **kw)


def clip_and_step(args, model, opt) -> float:
    norm = npnet.clip_grad_norm(model.grads, args.clip) if args.clip > 0 else float("nan")
    opt.step(model.grads)
    return norm


def evaluate_sequences(model, objective, images, labels, seq_idx, dtype) -> dict:
    """Per-step and whole-sequence accuracy of the rounded running totals on sequences seq_idx (S, L)."""
    x = to_float(images[seq_idx], dtype)                          # (S, L, 28, 28)
    totals = alternating_sums(labels[seq_idx])                    # (S, L)
    pred = objective.decode(model.predict(x))                     # (S, L)
    right = pred == totals
    return {"step_acc": right.mean(axis=0), "seq_acc": float(right.all(axis=1).mean()),
            "pred": pred, "totals": totals}


def train_digit_classifier(args, images, labels, train_idx, test_idx, dtype, log) -> dict:
    """Conv read-in + linear head trained as a plain digit classifier -> test accuracy p."""
    rng = np.random.default_rng(args.seed + 1)
    clf = DigitClassifier(args.conv_channels, args.features, dtype=dtype, rng=args.seed + 1)
    loss_fn = npnet.SoftmaxCrossEntropyLoss(dtype=dtype)
    opt = make_optimizer(args, clf.params)
    t0 = time.perf_counter()
    for step in range(args.digit_steps):
        b = train_idx[rng.integers(0, train_idx.size, args.digit_batch)]
        clf.zero_grad()
        out = clf.fprop(to_float(images[b], dtype)[:, None])
        loss_fn.fprop(out, labels[b].astype(np.int64))
        clf.bprop(loss_fn.bprop())
        clip_and_step(args, clf, opt)
    pred = np.argmax(clf.predict(to_float(images[test_idx], dtype)[:, None]), axis=1)
    acc = float((pred == labels[test_idx]).mean())
    wall = time.perf_counter() - t0
    log(f"digit classifier (read-in + linear head, {args.digit_steps} steps x {args.digit_batch} images): "
        f"test digit accuracy {acc:.4f} in {wall:.0f}s")
    return {"digit_accuracy": acc, "digit_wall_s": wall, "digit_steps": args.digit_steps}


def probe_read_in(model, images, labels, train_idx, test_idx, dtype, steps: int = 300) -> float:
    """Linear probe (softmax regression, Adam, full batch) on the trained read-in's frozen features."""
    def feats(idx):
        return np.concatenate([model.read_in.forward(to_float(images[idx[i:i + 1024]], dtype)[:, None])
                               for i in range(0, idx.size, 1024)], axis=0)
    ztr, zte = feats(train_idx), feats(test_idx)                  # (N, F)
    head = npnet.LinearLayer(ztr.shape[1], 10, dtype=dtype, rng=0)
    loss_fn = npnet.SoftmaxCrossEntropyLoss(dtype=dtype)
    opt = npnet.optim.Adam(head.params, lr=1e-2)
    ytr = labels[train_idx].astype(np.int64)
    for _ in range(steps):
        head.zero_grad()
        loss_fn.fprop(head.fprop(ztr), ytr)
        head.bprop(loss_fn.bprop())
        opt.step(head.grads)
    return float((np.argmax(head.forward(zte), axis=1) == labels[test_idx]).mean())


def train_run(args, images, labels, train_idx, test_idx, out_dir: Path, log, digit: dict | None) -> dict:
    """Train and evaluate one model; write metrics.csv, checkpoint, plots; return the summary dict."""
    dtype = np.dtype(args.dtype).type
    L = args.seq_len
    objective = Objective(args.objective, L, dtype)
    model = DigitSumModel(objective.output_size, args.conv_channels, args.features, args.cell,
                          args.hidden, args.layers, dtype=dtype, rng=args.seed)
    opt = make_optimizer(args, model.params)
    rng = np.random.default_rng(args.seed + 2)
    test_rng = np.random.default_rng(args.seed + 3)
    test_seqs = sample_sequences(test_idx, args.test_seqs, L, test_rng)      # (S, L) test images only
    eval_seqs = test_seqs[:args.eval_seqs]
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = ["step", "wall_s", "train_loss", "train_step_acc", "grad_norm", "test_step_acc", "test_seq_acc"]
    rows = []
    t0 = time.perf_counter()
    run_loss, run_acc, run_norm, n_run = 0.0, 0.0, 0.0, 0
    step = 0
    stopped_early = False

    def record(step):
        ev = evaluate_sequences(model, objective, images, labels, eval_seqs, dtype)
        row = {"step": step, "wall_s": round(time.perf_counter() - t0, 2),
               "train_loss": run_loss / n_run if n_run else float("nan"),
               "train_step_acc": run_acc / n_run if n_run else float("nan"),
               "grad_norm": run_norm / n_run if n_run else float("nan"),
               "test_step_acc": float(ev["step_acc"].mean()), "test_seq_acc": ev["seq_acc"]}
        rows.append(row)
        log(f"  step {step:5d}  {row['wall_s']:6.0f}s  loss {row['train_loss']:.4f}  "
            f"train step acc {row['train_step_acc']:.3f}  test step acc {row['test_step_acc']:.3f}  "
            f"test seq acc {row['test_seq_acc']:.3f}")

    record(0)
    while step < args.steps:
        seq = sample_sequences(train_idx, args.batch_size, L, rng)           # (B, L) train images only
        x = to_float(images[seq], dtype)                                     # (B, L, 28, 28)
        totals = alternating_sums(labels[seq])                               # (B, L)
        model.zero_grad()
        out, _ = model.fprop(x)                                              # (B, L, V)
        loss = objective.loss.fprop(out, objective.target(totals))
        model.bprop(objective.loss.bprop())
        norm = clip_and_step(args, model, opt)
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss} at step {step}")
        step += 1
        run_loss += float(loss)
        run_acc += float((objective.decode(out) == totals).mean())
        run_norm += norm
        n_run += 1
        over = args.time_limit and time.perf_counter() - t0 > args.time_limit
        if step % args.eval_every == 0 or step == args.steps or over:
            record(step)
            run_loss, run_acc, run_norm, n_run = 0.0, 0.0, 0.0, 0
        if over:
            stopped_early = True
            log(f"  time limit {args.time_limit:.0f}s reached at step {step}")
            break
    train_wall = time.perf_counter() - t0

    final = evaluate_sequences(model, objective, images, labels, test_seqs, dtype)
    probe = probe_read_in(model, images, labels, train_idx, test_idx, dtype)
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    npnet.save_checkpoint(out_dir / "checkpoint.npz", model, opt, step=step,
                          extra={"task": TASK, "seq_len": L, "objective": args.objective})

    step_acc = [float(a) for a in final["step_acc"]]
    res = {"seq_len": L, "objective": args.objective, "classes": objective.output_size
           if args.objective == "classify" else None,
           "step_accuracy": float(np.mean(step_acc)), "step_accuracy_by_position": step_acc,
           "test_accuracy": final["seq_acc"], "steps": step, "stopped_by_time_limit": stopped_early,
           "train_wall_s": train_wall, "probe_digit_accuracy": probe,
           "test_sequences": int(args.test_seqs)}
    if digit is not None:
        p = digit["digit_accuracy"]
        implied = [p ** (t + 1) for t in range(L)]
        res.update({"digit_accuracy": p, "implied_step_accuracy_by_position": implied,
                    "implied_step_accuracy": float(np.mean(implied)), "implied_sequence_accuracy": p ** L})
    probe_implied = [probe ** (t + 1) for t in range(L)]
    res["probe_implied_step_accuracy"] = float(np.mean(probe_implied))
    plot_run(out_dir, rows, res, images, test_seqs, final, args)
    log(f"  per-step accuracy {' '.join(f'{a:.3f}' for a in step_acc)} (mean {res['step_accuracy']:.4f}), "
        f"sequence accuracy {res['test_accuracy']:.4f}, read-in probe {probe:.4f}, {train_wall:.0f}s")
    return res


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_run(out_dir: Path, rows, res, images, test_seqs, final, args) -> None:
    plt = _plt()
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(steps[1:], [r["train_loss"] for r in rows[1:]], marker=".")
    ax[0].set(xlabel="step", ylabel="training loss", title=f"{res['objective']} loss, L={res['seq_len']}")
    ax[0].set_yscale("log")
    ax[1].plot(steps, [r["train_step_acc"] for r in rows], marker=".", label="train (per step)")
    ax[1].plot(steps, [r["test_step_acc"] for r in rows], marker=".", label="test (per step)")
    ax[1].plot(steps, [r["test_seq_acc"] for r in rows], marker=".", label="test (whole sequence)")
    ax[1].set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="learning curves")
    ax[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "learning_curves.png", dpi=100)
    plt.close(fig)

    pos = np.arange(1, res["seq_len"] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(pos, res["step_accuracy_by_position"], marker="o", label="model")
    if "implied_step_accuracy_by_position" in res:
        ax.plot(pos, res["implied_step_accuracy_by_position"], marker="s", ls="--",
                label=f"digit classifier p^t (p={res['digit_accuracy']:.3f})")
    ax.set(xlabel="position t", ylabel="test accuracy of running total", xticks=pos,
           title="per-step accuracy vs position")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out_dir / "step_accuracy.png", dpi=100)
    plt.close(fig)

    n, L = min(6, len(test_seqs)), res["seq_len"]
    fig, axes = plt.subplots(n, L, figsize=(1.3 * L, 1.5 * n), squeeze=False)
    for i in range(n):
        for t in range(L):
            a = axes[i, t]
            a.imshow(images[test_seqs[i, t]], cmap="gray_r")
            p, y = final["pred"][i, t], final["totals"][i, t]
            a.set_title(f"{p} ({y})", fontsize=8, color="black" if p == y else "red")
            a.axis("off")
    fig.suptitle("predicted (true) running totals", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "examples.png", dpi=100)
    plt.close(fig)


def plot_lengths(out_dir: Path, results: list) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in results:
        pos = np.arange(1, r["seq_len"] + 1)
        ax[0].plot(pos, r["step_accuracy_by_position"], marker="o", label=f"L={r['seq_len']}")
    ax[0].set(xlabel="position t", ylabel="test accuracy", title="per-step accuracy by length")
    ax[0].legend()
    Ls = [r["seq_len"] for r in results]
    ax[1].plot(Ls, [r["step_accuracy"] for r in results], marker="o", label="mean per-step")
    ax[1].plot(Ls, [r["test_accuracy"] for r in results], marker="o", label="whole sequence")
    if all("implied_step_accuracy" in r for r in results):
        ax[1].plot(Ls, [r["implied_step_accuracy"] for r in results], marker="s", ls="--",
                   label="implied by digit accuracy (mean p^t)")
    ax[1].set(xlabel="sequence length L", ylabel="test accuracy", xticks=Ls, title="effect of length")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out_dir / "lengths.png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def default_out() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{TASK}-{stamp}"


def _limit_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n)


def main(argv=None) -> int:
    args = parse_args(argv)
    limiter = _limit_threads(args.threads)
    try:
        return _main(args)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _main(args) -> int:
    t_start = time.perf_counter()
    out = Path(args.out) if args.out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    lines = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    images, labels, source = load_data(args)
    train_idx, test_idx = split_images(labels, args.test_fraction, args.seed)
    if train_idx.size < 1 or test_idx.size < 1:
        print(f"digit_sums.py: error: need images on both sides of the split, got "
              f"{train_idx.size} train / {test_idx.size} test", file=sys.stderr)
        return 2
    log(f"{images.shape[0]} images from {source}; split by image (seed {args.seed}): "
        f"{train_idx.size} train, {test_idx.size} test")
    config = {k: v for k, v in vars(args).items()}
    config.update({"task": TASK, "data_source": source, "n_images": int(images.shape[0]),
                   "n_train_images": int(train_idx.size), "n_test_images": int(test_idx.size),
                   "npnet_version": npnet.__version__})
    (out / "config.json").write_text(json.dumps(config, indent=2))

    dtype = np.dtype(args.dtype).type
    digit = None
    if args.digit_steps:
        digit = train_digit_classifier(args, images, labels, train_idx, test_idx, dtype, log)

    if args.report == "single":
        log(f"training: L={args.seq_len}, {args.objective}, {args.steps} steps of {args.batch_size}")
        res = train_run(args, images, labels, train_idx, test_idx, out, log, digit)
        summary = dict(res)
    else:
        variants = ([("objective", o) for o in ("classify", "regress")] if args.report == "objectives"
                    else [("seq_len", L) for L in args.lengths])
        results = []
        for key, val in variants:
            sub = argparse.Namespace(**{**vars(args), key: val})
            log(f"training: {key}={val} ({sub.objective}, L={sub.seq_len}, {sub.steps} steps)")
            results.append(train_run(sub, images, labels, train_idx, test_idx, out / f"{key}_{val}", log, digit))
        # Headline: the run at the default settings (L=--seq-len / classify) if present, else the first.
        pick = next((r for r in results if r["seq_len"] == args.seq_len and r["objective"] == args.objective),
                    results[0])
        summary = dict(pick)
        summary["runs"] = results
        if args.report == "lengths":
            plot_lengths(out, results)
            log("length  per-step  sequence  implied(mean p^t)  positions")
            for r in results:
                log(f"{r['seq_len']:6d}  {r['step_accuracy']:.4f}    {r['test_accuracy']:.4f}    "
                    f"{r.get('implied_step_accuracy', float('nan')):.4f}             "
                    + " ".join(f"{a:.3f}" for a in r["step_accuracy_by_position"]))
        else:
            for r in results:
                log(f"{r['objective']:9s} per-step {r['step_accuracy']:.4f}  sequence {r['test_accuracy']:.4f}  "
                    + " ".join(f"{a:.3f}" for a in r["step_accuracy_by_position"]))
    if digit is not None:
        summary.update(digit)
        summary["baseline"] = summary["implied_step_accuracy"]
        summary["baseline_kind"] = ("mean over positions t of p^t, p = test digit accuracy of the same "
                                    "read-in trained as a plain digit classifier (perfect arithmetic)")
    else:
        L, p = summary["seq_len"], summary["probe_digit_accuracy"]
        summary["baseline"] = summary["probe_implied_step_accuracy"]
        summary["baseline_kind"] = ("mean over positions t of p^t, p = linear-probe digit accuracy of the "
                                    "trained read-in (perfect arithmetic)")
    summary["wall_s"] = time.perf_counter() - t_start
    summary["metric"] = "step_accuracy"
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    line = (f"digit_sums: L={summary['seq_len']} {summary['objective']}: step_accuracy "
            f"{summary['step_accuracy']:.4f} (by position "
            + " ".join(f"{a:.3f}" for a in summary["step_accuracy_by_position"])
            + f"), test_accuracy {summary['test_accuracy']:.4f}, baseline {summary['baseline']:.4f}, "
            f"wall {summary['wall_s']:.0f}s -> {out}")
    log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
