"""Alternating running sums over handwritten digits: d1, d1 - d2, d1 - d2 + d3, ... (MNIST).

A small convolutional read-in sees one digit image per time step, an LSTM keeps the running
total, a read-out predicts it at every step (37-way classification for length 4, or regression).
Images are split into train/test FIRST (seeded), so no test image is ever seen in training.

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
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402
from npnet import datasets  # noqa: E402
from npnet.layer import Layer, ShapeError, check_input  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
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
    """Per-image feature extractor: [conv 3x3 -> maxpool 2 -> ReLU] per channel count -> dense -> ReLU.

    Equations (one image x (1, 28, 28); k-th conv block)::

        forward:   a_k = relu(maxpool2(conv3x3_k(a_{k-1}))),  a_0 = x   (= maxpool2(relu(...)))
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
            # max-pool then ReLU: the same function as ReLU then max-pool (both are monotone, so
            # max(relu(a), relu(b)) = relu(max(a, b))) at a quarter of the ReLU's work.
            self.layers += [conv, npnet.MaxPool2D(2, dtype=self.dtype), ReLU(self.dtype)]
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
            layer.clear_cache()


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


try:
    npnet.checkpoint.register(DigitSumModel)       # so npnet.load_checkpoint can rebuild it
except npnet.CheckpointError:                      # this file imported again under another module
    pass                                           # name: the first copy stays registered


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
def fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = common.make_parser(
        TASK, "Alternating running sums d1, d1-d2, d1-d2+d3, ... over MNIST digit images: "
              "conv read-in at every step -> LSTM -> read-out at every step.",
        hidden=64, batch_size=32, steps=3000, lr=2e-3, clip=5.0, dtype="float32", eval_every=250)
    p.epilog = ("Data: --mnist-dir DIR; otherwise the npnet cache ($NPNET_DATA or ~/.cache/npnet, "
                "mnist/) if it holds MNIST; otherwise ../shared/data/mnist next to the repository "
                f"({SHARED_MNIST}) if present; otherwise the test set is downloaded into the cache "
                "(checksum-verified). The 60,000 training images are used too when the folder has "
                "them. The IMAGES (not the sequences) are split into train/test first, so no test "
                "image is seen in training. --target stops on the running TRAINING per-step accuracy "
                "(never on test data); --bptt is not supported (full BPTT over the L steps).")
    t = p.add_argument_group("the digit-sums task")
    t.add_argument("--seq-len", type=common.positive_int, default=4, help="digits per sequence (L)")
    t.add_argument("--objective", choices=["classify", "regress"], default="classify",
                   help="classify: 9L+1 classes of the total; regress: MSE on total/9, rounded")
    t.add_argument("--report", choices=["single", "objectives", "lengths"], default="single",
                   help="single run; 'objectives': classify and regress; 'lengths': one run per --lengths")
    t.add_argument("--lengths", type=common.int_list, default=[2, 4, 6, 8], help="lengths for --report lengths")
    t.add_argument("--conv-channels", type=common.int_list, default=[16, 32],
                   help="channels of the 3x3 conv + ReLU + 2x2 max-pool blocks")
    t.add_argument("--features", type=common.positive_int, default=64, help="dense (ReLU) width of the read-in")
    t.add_argument("--digit-steps", type=common.nonneg_int, default=600,
                   help="steps of the plain digit-classifier baseline (read-in + linear head; 0: skip)")
    t.add_argument("--digit-batch", type=common.positive_int, default=128, help="images per digit-classifier step")
    t.add_argument("--test-seqs", type=common.positive_int, default=2000,
                   help="test sequences (sampled from the test images) for the final numbers")
    t.add_argument("--eval-seqs", type=common.positive_int, default=500,
                   help="test sequences (the first of --test-seqs) for the learning curves")
    t.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="cosine: decay from --lr to 0.05 --lr over --steps")
    t.add_argument("--shift", type=common.nonneg_int, default=0,
                   help="augment training images by random translations of up to this many pixels")
    t.add_argument("--time-limit", type=common.nonneg_float, default=0.0,
                   help="stop each run's training after this many seconds (0: no limit)")
    d = p.add_argument_group("data")
    d.add_argument("--mnist-dir", default=None, help="folder with the MNIST IDX files (.gz or raw)")
    d.add_argument("--cache-dir", default=None, help="npnet data cache (default $NPNET_DATA or ~/.cache/npnet)")
    d.add_argument("--test-fraction", type=fraction, default=0.2, help="share of the IMAGES held out for test")
    d.add_argument("--max-images", type=common.nonneg_int, default=0, help="use only the first N images (0: all)")
    return p


def check_args(args) -> None:
    """Cross-option checks; a ValueError becomes a usage error (exit 2)."""
    if args.bptt is not None:
        raise ValueError("--bptt is not supported by digit_sums (sequences are short: full BPTT over the L steps)")
    if args.max_images and args.max_images < 20:
        raise ValueError(f"--max-images must be 0 (all) or at least 20, got {args.max_images}")
    if args.mnist_dir is not None and not Path(args.mnist_dir).expanduser().is_dir():
        raise ValueError(f"--mnist-dir {args.mnist_dir} is not a directory")
    if args.conv_channels and (28 >> len(args.conv_channels)) < 2:
        raise ValueError(f"--conv-channels: at most 3 conv blocks fit a 28x28 image, got {len(args.conv_channels)}")
    if args.epochs:
        args.steps = args.epochs * args.epoch_size
    args.eval_seqs = min(args.eval_seqs, args.test_seqs)


def parse_args(argv=None) -> argparse.Namespace:
    return common.parse(build_parser(), argv, check_args)


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
    return npnet.optim.get(args.optimizer, params, lr=args.lr)


def scheduled_lr(args, step: int, total: int) -> float:
    """--lr-schedule: "constant" lr, or "cosine": lr (f + (1 - f)(1 + cos(pi step / total)) / 2), f = 0.05."""
    if args.lr_schedule == "constant" or total <= 0:
        return args.lr
    f = 0.05
    return args.lr * (f + (1.0 - f) * 0.5 * (1.0 + np.cos(np.pi * min(step, total) / total)))


def shifted(images_u8: np.ndarray, idx: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """Images idx (any shape) translated by independent random offsets in [-shift, shift] (zeros fill).

    -> uint8 (*idx.shape, 28, 28). Augmentation for the TRAINING images only.
    """
    flat = idx.reshape(-1)
    if shift == 0:
        return images_u8[flat].reshape(*idx.shape, 28, 28)
    pad = np.pad(images_u8[flat], ((0, 0), (shift, shift), (shift, shift)))     # (N, 28+2s, 28+2s)
    oy, ox = rng.integers(0, 2 * shift + 1, size=(2, flat.size))                 # (N,) each
    rows = oy[:, None] + np.arange(28)                                           # (N, 28)
    cols = ox[:, None] + np.arange(28)                                           # (N, 28)
    out = pad[np.arange(flat.size)[:, None, None], rows[:, :, None], cols[:, None, :]]   # (N, 28, 28)
    return out.reshape(*idx.shape, 28, 28)


def clip_and_step(args, model, opt) -> float:
    """Global-norm clipping (--clip > 0), then one optimiser step; returns the norm before clipping."""
    norm = npnet.clip_grad_norm(model.grads, args.clip) if args.clip > 0 else npnet.clip.global_norm(model.grads)
    opt.step(model.grads)
    return float(norm)


def evaluate_sequences(model, objective, images, labels, seq_idx, dtype) -> dict:
    """Per-step and whole-sequence accuracy of the rounded running totals on sequences seq_idx (S, L)."""
    x = to_float(images[seq_idx], dtype)                          # (S, L, 28, 28)
    totals = alternating_sums(labels[seq_idx])                    # (S, L)
    pred = objective.decode(model.predict(x))                     # (S, L)
    right = pred == totals
    return {"step_acc": right.mean(axis=0), "seq_acc": float(right.all(axis=1).mean()),
            "pred": pred, "totals": totals}


def train_digit_classifier(args, images, labels, train_idx, test_idx, log) -> dict:
    """Conv read-in + linear head trained as a plain digit classifier on the TRAIN images -> test accuracy p."""
    dtype = np.dtype(args.dtype).type
    rng = common.seed_rng(args.seed, "eval")
    clf = DigitClassifier(args.conv_channels, args.features, dtype=dtype, rng=common.seed_rng(args.seed, "model"))
    loss_fn = npnet.SoftmaxCrossEntropyLoss(dtype=dtype)
    opt = make_optimizer(args, clf.params)
    t0 = time.perf_counter()
    for step in range(args.digit_steps):
        b = train_idx[rng.integers(0, train_idx.size, args.digit_batch)]      # (N,) train images only
        clf.zero_grad()
        opt.lr = scheduled_lr(args, step, args.digit_steps)
        out = clf.fprop(to_float(shifted(images, b, args.shift, rng), dtype)[:, None])   # (N, 10)
        loss_fn.fprop(out, labels[b].astype(np.int64))
        clf.bprop(loss_fn.bprop())
        clip_and_step(args, clf, opt)
    pred = np.argmax(clf.predict(to_float(images[test_idx], dtype)[:, None]), axis=1)
    acc = float((pred == labels[test_idx]).mean())
    wall = time.perf_counter() - t0
    log(f"digit classifier (read-in + linear head, {args.digit_steps} steps x {args.digit_batch} images): "
        f"test digit accuracy {acc:.4f} in {wall:.0f}s")
    return {"digit_accuracy": acc, "digit_wall_s": round(wall, 2), "digit_steps": args.digit_steps}


def probe_read_in(model, images, labels, train_idx, test_idx, dtype, steps: int = 300) -> float:
    """Linear probe (softmax regression, full-batch Adam) on the trained read-in's frozen features."""
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


METRIC_FIELDS = ["step", "wall_s", "cpu_s", "train_loss", "train_step_acc", "grad_norm", "test_step_acc", "test_seq_acc"]


def train_run(args, images, labels, train_idx, test_idx, out_dir: Path, log, digit: dict | None) -> dict:
    """Train and evaluate one model; write metrics.csv, checkpoint.npz and the plots; return the results."""
    dtype = np.dtype(args.dtype).type
    L = args.seq_len
    objective = Objective(args.objective, L, dtype)
    model = DigitSumModel(objective.output_size, args.conv_channels, args.features, args.cell,
                          args.hidden, args.layers, dtype=dtype, rng=common.seed_rng(args.seed, "model"))
    opt = make_optimizer(args, model.params)
    rng = common.seed_rng(args.seed, "train")
    test_seqs = sample_sequences(test_idx, args.test_seqs, L, common.seed_rng(args.seed, "test"))  # (S, L)
    eval_seqs = test_seqs[:args.eval_seqs]
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    t0, c0 = time.perf_counter(), time.process_time()
    acc_loss, acc_right, acc_norm, n_acc = 0.0, 0.0, 0.0, 0
    step, stop_reason = 0, None

    def record(step):
        ev = evaluate_sequences(model, objective, images, labels, eval_seqs, dtype)
        mean = (lambda v: v / n_acc) if n_acc else (lambda v: float("nan"))
        row = {"step": step, "wall_s": round(time.perf_counter() - t0, 2),
               "cpu_s": round(time.process_time() - c0, 2), "train_loss": mean(acc_loss),
               "train_step_acc": mean(acc_right), "grad_norm": mean(acc_norm),
               "test_step_acc": float(ev["step_acc"].mean()), "test_seq_acc": ev["seq_acc"]}
        rows.append(row)
        log(f"  step {step:5d} {row['wall_s']:6.0f}s (cpu {row['cpu_s']:5.0f}s)  loss {row['train_loss']:.4f}  train step acc "
            f"{row['train_step_acc']:.3f}  test step acc {row['test_step_acc']:.3f}  seq acc {row['test_seq_acc']:.3f}")
        return row

    record(0)
    while step < args.steps:
        seq = sample_sequences(train_idx, args.batch_size, L, rng)           # (B, L) train images only
        x = to_float(shifted(images, seq, args.shift, rng), dtype)          # (B, L, 28, 28)
        opt.lr = scheduled_lr(args, step, args.steps)
        totals = alternating_sums(labels[seq])                               # (B, L)
        model.zero_grad()
        out, _ = model.fprop(x)                                              # (B, L, V)
        loss = float(objective.loss.fprop(out, objective.target(totals)))
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss} at step {step}")
        model.bprop(objective.loss.bprop())
        acc_norm += clip_and_step(args, model, opt)
        step += 1
        acc_loss += loss
        acc_right += float((objective.decode(out) == totals).mean())
        n_acc += 1
        if args.time_limit and time.perf_counter() - t0 > args.time_limit:
            stop_reason = f"time limit {args.time_limit:g}s"
        if step % args.eval_every == 0 or step == args.steps or stop_reason:
            row = record(step)
            acc_loss, acc_right, acc_norm, n_acc = 0.0, 0.0, 0.0, 0
            if (args.target is not None and not args.no_early_stop and not stop_reason
                    and row["train_step_acc"] >= args.target):
                stop_reason = f"training per-step accuracy {row['train_step_acc']:.4f} >= --target {args.target}"
        if stop_reason:
            log(f"  stopped at step {step}: {stop_reason}")
            break
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0

    final = evaluate_sequences(model, objective, images, labels, test_seqs, dtype)
    probe = probe_read_in(model, images, labels, train_idx, test_idx, dtype)
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
    npnet.save_checkpoint(out_dir / "checkpoint.npz", model, opt, step=step,
                          extra={"task": TASK, "seq_len": L, "objective": args.objective})

    step_acc = [float(a) for a in final["step_acc"]]
    res = {"seq_len": L, "objective": args.objective,
           "classes": objective.output_size if args.objective == "classify" else None,
           "step_accuracy": float(np.mean(step_acc)), "step_accuracy_by_position": step_acc,
           "test_accuracy": final["seq_acc"], "steps": step, "stopped_early": stop_reason is not None,
           "stop_reason": stop_reason, "train_s": round(train_wall, 2),
           "train_cpu_s": round(train_cpu, 2), "params": model.num_params,
           "probe_digit_accuracy": probe,
           "probe_implied_step_accuracy": float(np.mean([probe ** (t + 1) for t in range(L)])),
           "test_sequences": int(args.test_seqs)}
    if digit is not None:
        p = digit["digit_accuracy"]
        implied = [p ** (t + 1) for t in range(L)]
        res.update({"digit_accuracy": p, "implied_step_accuracy_by_position": implied,
                    "implied_step_accuracy": float(np.mean(implied)), "implied_sequence_accuracy": p ** L})
    plot_run(out_dir, rows, res, images, test_seqs, final)
    log(f"  L={L} {args.objective}: per-step accuracy {' '.join(f'{a:.3f}' for a in step_acc)} "
        f"(mean {res['step_accuracy']:.4f}), sequence accuracy {res['test_accuracy']:.4f}, "
        f"read-in probe {probe:.4f}, {step} steps in {train_wall:.0f}s")
    return res


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def plot_run(out_dir: Path, rows, res, images, test_seqs, final) -> None:
    """learning_curves.png, step_accuracy.png (accuracy vs position) and examples.png."""
    fig, ax = common.figure(10, 3.6, 1, 2)
    steps = [r["step"] for r in rows]
    ax[0, 0].plot(steps[1:], [r["train_loss"] for r in rows[1:]], marker=".")
    ax[0, 0].set(xlabel="step", ylabel="training loss", yscale="log",
                 title=f"{res['objective']} loss, L={res['seq_len']}")
    ax[0, 1].plot(steps, [r["train_step_acc"] for r in rows], marker=".", label="train batches (per step)")
    ax[0, 1].plot(steps, [r["test_step_acc"] for r in rows], marker=".", label="test (per step)")
    ax[0, 1].plot(steps, [r["test_seq_acc"] for r in rows], marker=".", label="test (whole sequence)")
    if "implied_step_accuracy" in res:
        ax[0, 1].axhline(res["implied_step_accuracy"], color="r", ls="--", lw=1,
                         label=f"baseline: mean p^t = {res['implied_step_accuracy']:.3f}")
    ax[0, 1].set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="learning curves")
    ax[0, 1].legend(loc="lower right", fontsize=8)
    for a in ax[0]:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "learning_curves.png", dpi=80)

    pos = np.arange(1, res["seq_len"] + 1)
    fig, ax = common.figure(5, 3.6)
    ax[0, 0].plot(pos, res["step_accuracy_by_position"], marker="o", label="model")
    if "implied_step_accuracy_by_position" in res:
        ax[0, 0].plot(pos, res["implied_step_accuracy_by_position"], marker="s", ls="--",
                      label=f"perfect arithmetic: p^t (p={res['digit_accuracy']:.3f})")
    ax[0, 0].set(xlabel="position t", ylabel="test accuracy of the running total", xticks=pos,
                 title="per-step accuracy vs position")
    ax[0, 0].legend(loc="lower left", fontsize=8)
    ax[0, 0].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "step_accuracy.png", dpi=80)

    # One axes holding a montage (rows: sequences, columns: steps); one imshow is far cheaper than
    # one axes per image.
    n, L = min(6, len(test_seqs)), res["seq_len"]
    montage = images[test_seqs[:n]].transpose(0, 2, 1, 3).reshape(n * 28, L * 28)   # (n*28, L*28)
    fig, ax = common.figure(1.1 * L + 0.3, 1.25 * n + 0.4)
    a = ax[0, 0]
    a.imshow(montage, cmap="gray_r", interpolation="nearest")
    for i in range(n):
        for t in range(L):
            p, y = final["pred"][i, t], final["totals"][i, t]
            a.text(28 * t + 1, 28 * i + 1, f"{p} ({y})", fontsize=7, va="top", ha="left",
                   color="tab:blue" if p == y else "red")
    a.set_xticks(np.arange(L) * 28 + 14, [f"t={t + 1}" for t in range(L)], fontsize=7)
    a.set_yticks([])
    a.set_title("test sequences: predicted (true) running total", fontsize=8)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.06, top=0.93)
    fig.savefig(out_dir / "examples.png", dpi=80)


def plot_lengths(out_dir: Path, results: list) -> None:
    """lengths.png: per-position accuracy for each L, and the mean / sequence accuracy against L."""
    fig, ax = common.figure(10, 3.6, 1, 2)
    for r in results:
        pos = np.arange(1, r["seq_len"] + 1)
        ax[0, 0].plot(pos, r["step_accuracy_by_position"], marker="o", label=f"L={r['seq_len']}")
    ax[0, 0].set(xlabel="position t", ylabel="test accuracy", title="per-step accuracy by length")
    ax[0, 0].legend(fontsize=8)
    Ls = [r["seq_len"] for r in results]
    ax[0, 1].plot(Ls, [r["step_accuracy"] for r in results], marker="o", label="mean per-step")
    ax[0, 1].plot(Ls, [r["test_accuracy"] for r in results], marker="o", label="whole sequence")
    if all("implied_step_accuracy" in r for r in results):
        ax[0, 1].plot(Ls, [r["implied_step_accuracy"] for r in results], marker="s", ls="--",
                      label="implied by digit accuracy (mean p^t)")
    ax[0, 1].set(xlabel="sequence length L", ylabel="test accuracy", xticks=Ls, title="effect of length")
    ax[0, 1].legend(fontsize=8)
    for a in ax[0]:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "lengths.png", dpi=80)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.match_params:
        args.hidden = common.matched_hidden(args.cell, args.features, args.hidden, args.layers, None)
    run = common.Run(args)
    cpu0 = time.process_time()
    out = Path(run.dir)
    log = run.log

    images, labels, source = load_data(args)
    train_idx, test_idx = split_images(labels, args.test_fraction, args.seed)
    if train_idx.size < 1 or test_idx.size < 1:
        build_parser().error(f"need images on both sides of the split, got {train_idx.size} train / "
                             f"{test_idx.size} test (raise --max-images or change --test-fraction)")
    log(f"{images.shape[0]} images from {source}; split by image (stratified, seed {args.seed}): "
        f"{train_idx.size} train, {test_idx.size} test")
    run.write_config(data_source=source, n_images=int(images.shape[0]), n_train_images=int(train_idx.size),
                     n_test_images=int(test_idx.size))

    digit = None
    if args.digit_steps:
        digit = train_digit_classifier(args, images, labels, train_idx, test_idx, log)

    if args.report == "single":
        log(f"training: L={args.seq_len}, {args.objective}, {args.steps} steps of {args.batch_size} sequences")
        summary = train_run(args, images, labels, train_idx, test_idx, out, log, digit)
    else:
        variants = ([("objective", o) for o in ("classify", "regress")] if args.report == "objectives"
                    else [("seq_len", L) for L in args.lengths])
        results = []
        for key, val in variants:
            sub = argparse.Namespace(**{**vars(args), key: val})
            log(f"training: {key}={val} (L={sub.seq_len}, {sub.objective}, {sub.steps} steps)")
            results.append(train_run(sub, images, labels, train_idx, test_idx, out / f"{key}_{val}", log, digit))
        # Headline: the run with --seq-len and --objective if there is one, else the first.
        summary = dict(next((r for r in results if r["seq_len"] == args.seq_len
                             and r["objective"] == args.objective), results[0]))
        summary["runs"] = results
        if args.report == "lengths":
            plot_lengths(out, results)
            log("length  per-step  sequence  implied(mean p^t)  per position")
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
        summary["baseline_name"] = "perfect arithmetic on the digit classifier (mean over t of p^t)"
    else:
        summary["baseline"] = summary["probe_implied_step_accuracy"]
        summary["baseline_name"] = "perfect arithmetic on a linear probe of the read-in (mean over t of p^t)"
    summary.update({"headline": "step_accuracy", "wall_s": round(run.elapsed(), 2),
                    "cpu_s": round(time.process_time() - cpu0, 2), "cell": args.cell,
                    "hidden": args.hidden, "seed": args.seed, "n_train_images": int(train_idx.size),
                    "n_test_images": int(test_idx.size)})
    common.write_json(run.path("summary.json"), summary)
    print(f"{TASK}: step_accuracy {summary['step_accuracy']:.4f} ("
          + " ".join(f"{a:.3f}" for a in summary["step_accuracy_by_position"])
          + f"), test_accuracy {summary['test_accuracy']:.4f} (baseline {summary['baseline']:.4f}) "
          f"L={summary['seq_len']} {summary['objective']} {args.cell} H={args.hidden}, "
          f"{summary['steps']} steps, {summary['wall_s']:.1f} s ({summary['cpu_s']:.0f} s cpu) -> {run.dir}", flush=True)
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
