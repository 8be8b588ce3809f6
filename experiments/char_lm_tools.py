"""char_lm.py's work on a saved run: load it (model and vocabulary), sample from it (--generate),
and draw its cells (--visualize --checkpoint RUN, with char_lm_viz.py). Nothing here trains."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import npnet
from npnet.data import text as tx


def generate(model, vocab, prime: str, length: int, temperature: float, seed: int = 0) -> str:
    """``prime`` followed by ``length`` sampled characters (npnet.sample, seeded)."""
    try:
        ids = vocab.encode(prime)
    except npnet.NpnetError as exc:
        raise ValueError(f"--prime {prime!r}: {exc}") from None
    out = npnet.sample(model, ids, length, temperature=temperature, rng=np.random.default_rng([seed, 7]))
    return vocab.decode(out)


def load_run(checkpoint):
    """(model, vocab, extra) from a run folder or its checkpoint.npz."""
    p = Path(checkpoint)
    p = p / "checkpoint.npz" if p.is_dir() else p
    if not p.is_file():
        raise ValueError(f"no checkpoint at {p} (give a run folder of char_lm.py or its checkpoint.npz)")
    ck = npnet.load_checkpoint(p)
    if "chars" not in ck.extra:
        raise ValueError(f"{p} is not a char_lm checkpoint (no vocabulary in its extra data)")
    return ck.model, tx.CharVocab(ck.extra["chars"]), ck.extra


def from_checkpoint(args):
    """--generate (print samples) or --visualize of a saved run; no training."""
    model, vocab, extra = load_run(args.checkpoint)
    if args.generate:
        for tau in args.temperature:
            print(f"--- temperature {tau:g}\n{generate(model, vocab, args.prime, args.length, tau, args.seed)}")
        return None
    import char_lm_viz
    text = tx.load_tinyshakespeare(args.data, sha256=None if args.any_text else tx.TINYSHAKESPEARE_SHA256)
    try:
        val = tx.split_text(vocab.encode(text), extra.get("val_fraction", args.val_fraction))[1]
    except npnet.NpnetError as exc:
        raise ValueError(f"--data is not the text this model was trained on: {exc}") from None
    ck = Path(args.checkpoint)
    return char_lm_viz.visualize(model, vocab, val, args.out or (ck if ck.is_dir() else ck.parent), log=print)
