"""The pieces of ``python experiments/name_generator.py``: the symbols and batches of the
language-conditioned character model, the n-gram baselines, sampling names, the samples table and
the learning-curve plot. The script itself is argparse -> these -> a run folder.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402
from npnet.data import bucket_by_length, load_names, stratified_split  # noqa: E402
from npnet.data.names import ALPHABET, encode_names, normalise_name  # noqa: E402
from npnet.sampling import draw  # noqa: E402

# Symbols: the 56 characters of ALPHABET (ids 0..55), END (56) and START (57). The inputs are
# START, c_1 .. c_n; the targets c_1 .. c_n, END. So an input row is one-hot over N_SYMBOLS
# (its END column is never set: the end is only predicted) followed by the language one-hot,
# and the read-out has N_OUT = 57 logits (every character and END; START is never predicted).
V = len(ALPHABET)
END, START = V, V + 1
N_SYMBOLS, N_OUT = V + 2, V + 1
DEFAULT_LANGUAGES = ("English", "Russian", "German", "Spanish", "Chinese", "Japanese", "Italian", "Irish")
NGRAM_ORDERS = {1: "unigram", 2: "bigram", 3: "trigram", 4: "fourgram"}


# -- data ------------------------------------------------------------------------------------
def prepare_data(data_dir, split_seed: int = 0, test_fraction: float = 0.2) -> dict:
    """Load the names and split them as experiments/names.py does: stratified by language,
    ``test_fraction`` held out (``stratified_split(labels, 0.2, rng=split_seed)``). Returns a dict:
    names (normalised str), ids (list of (T_i,) int64), labels (N,), languages, train, test
    (index arrays), and per language the set of its training and of its held-out names."""
    data = load_names(data_dir)
    names = [normalise_name(n) for n in data.names]
    ids = encode_names(names, one_hot=False, normalise=False)                 # [(T_i,)]
    labels = np.asarray(data.labels, dtype=np.int64)                           # (N,)
    train, test = stratified_split(labels, test_fraction, rng=split_seed)
    seen = {k: set() for k in range(len(data.languages))}
    held = {k: set() for k in range(len(data.languages))}
    for part, sets in ((train, seen), (test, held)):
        for i in part:
            sets[int(labels[i])].add(names[i])
    return {"names": names, "ids": ids, "labels": labels, "languages": tuple(data.languages),
            "lengths": np.array([len(s) for s in ids], dtype=np.int64), "train": train, "test": test,
            "train_names": seen, "heldout_names": held}


def encode_inputs(symbols: np.ndarray, languages: np.ndarray, K: int, dtype) -> np.ndarray:
    """symbols (B, T) ids in [0, N_SYMBOLS), languages (B,) -> x (B, T, N_SYMBOLS + K):
    [one-hot(symbol), one-hot(language)] at every step (the category given at each step)."""
    B, T = symbols.shape
    x = np.zeros((B, T, N_SYMBOLS + K), dtype=dtype)                          # (B, T, N_SYMBOLS + K)
    np.put_along_axis(x, symbols[:, :, None], 1.0, axis=2)
    x[np.arange(B), :, N_SYMBOLS + np.asarray(languages)] = 1.0
    return x


def make_batch(data: dict, idx, dtype):
    """Names ``idx`` -> x (B, T+1, N_SYMBOLS + K) inputs START c_1..c_n, y (B, T+1) targets
    c_1..c_n END, mask (B, T+1) bool (True on the n + 1 scored steps of each name)."""
    seqs = [data["ids"][i] for i in idx]
    inp, mask, _ = npnet.pad_sequences([np.concatenate([[START], s]) for s in seqs], dtype=np.int64)
    y, _, _ = npnet.pad_sequences([np.concatenate([s, [END]]) for s in seqs], dtype=np.int64)   # (B, T+1)
    x = encode_inputs(inp, data["labels"][idx], len(data["languages"]), dtype)
    x[~mask] = 0.0                                                             # padding steps read nothing
    return x, y, mask


def eval_batches(data: dict, idx, dtype, batch_size: int = 512) -> list:
    """Fixed batches of the names ``idx`` sorted by length (little padding), ``batch_size`` each."""
    order = idx[np.argsort(data["lengths"][idx], kind="stable")]
    return [make_batch(data, order[s:s + batch_size], dtype) for s in range(0, len(order), batch_size)]


def train_batches(rng, data: dict, batch_size: int, dtype):
    """One epoch of training batches (a Stream factory): names of similar length together
    (npnet.data.bucket_by_length, pools of 50 batches), batch order and contents from ``rng``."""
    train = data["train"]
    for b in bucket_by_length(rng, data["lengths"][train], batch_size):
        yield make_batch(data, train[b], dtype)


# -- baselines -------------------------------------------------------------------------------
def ngram_nats(data: dict, orders=tuple(NGRAM_ORDERS), parts=None) -> dict:
    """{"trigram_nats": ..., ...}: npnet.CharNGram (interpolated Witten-Bell, conditioned on the
    language) of each order fit on the training names, nats per character on each held-out part
    (``parts``: {suffix: index array}, default {"": test})."""
    parts = {"": data["test"]} if parts is None else parts
    out = {}
    tr = data["train"]
    for n in orders:
        m = npnet.CharNGram(V, order=n, n_conditions=len(data["languages"]))
        m.fit([data["ids"][i] for i in tr], data["labels"][tr])
        for suffix, idx in parts.items():
            out[f"{NGRAM_ORDERS[n]}_nats{suffix}"] = m.nats([data["ids"][i] for i in idx], data["labels"][idx])
    return out


def unseen_heldout(data: dict) -> np.ndarray:
    """The held-out names that are not among the training names of their language (N_unseen,)."""
    return np.array([i for i in data["test"] if data["names"][i] not in data["train_names"][int(data["labels"][i])]],
                    dtype=np.int64)


# -- sampling --------------------------------------------------------------------------------
def generate(model, language: int, K: int, first: str, n: int, temperature: float, rng, max_len: int = 20) -> list:
    """``n`` names of ``language`` (id among K) starting with ``first`` ("" for a free first letter).

    The inputs carry the language at every step, which ``npnet.sample`` (it feeds back a lone id)
    cannot; so each step here is ``model.step`` on [one-hot(symbol), one-hot(language)] for the n
    names at once, and each next symbol is ``npnet.sampling.draw(logits, temperature)``. A name
    ends at END or after ``max_len`` characters (the longest training name has 20)."""
    prime = [START] + [ALPHABET.index(c) for c in first]
    langs = np.full(n, language)
    y = state = None
    for s in prime:                                                            # read the prime
        y, state = model.step(encode_inputs(np.full((n, 1), s), langs, K, model.dtype)[:, 0], state)
    out, done = [list(first) for _ in range(n)], np.zeros(n, dtype=bool)
    for _ in range(max_len - len(first)):
        nxt = np.full(n, START)                                                # finished rows read START
        for b in np.flatnonzero(~done):
            c = draw(y[b], temperature, rng=rng)
            if c == END:
                done[b] = True
            else:
                out[b].append(ALPHABET[c])
                nxt[b] = c
        if done.all():
            break
        y, state = model.step(encode_inputs(nxt[:, None], langs, K, model.dtype)[:, 0], state)
    return ["".join(c) for c in out]


def common_initial(data: dict, language: int) -> str:
    """The most frequent first letter of the language's training names (ties: alphabetical)."""
    counts = Counter(name[0] for name in data["train_names"][language])
    return min(counts, key=lambda c: (-counts[c], c))


def sample_table(model, data: dict, languages, n: int, temperature: float, seed: int, first=None) -> dict:
    """Per language: ``n`` names from a given first letter (``first``, default the language's most
    common initial) and ``n`` with a free first letter, each marked: ``*`` one of the language's
    training names (memorised), ``+`` one of its held-out names only (a real name never seen).
    Returns {"samples": {language: {...}}, "memorised_fraction", "heldout_fraction"}."""
    rng = np.random.default_rng([seed, 4])
    K, rows, marks = len(data["languages"]), {}, []
    for lang in languages:
        k = data["languages"].index(lang)
        letter = first or common_initial(data, k)
        row = {"first": letter}
        for key, prefix in (("given_first", letter), ("free_first", "")):
            names = generate(model, k, K, prefix, n, temperature, rng)
            m = ["*" if s in data["train_names"][k] else "+" if s in data["heldout_names"][k] else ""
                 for s in names]
            row[key] = [(s or "(empty)") + t for s, t in zip(names, m)]
            marks += m
        rows[lang] = row
    return {"samples": rows, "memorised_fraction": marks.count("*") / max(len(marks), 1),
            "heldout_fraction": marks.count("+") / max(len(marks), 1)}


def samples_markdown(table: dict) -> str:
    """The samples as a Markdown table (one row per language)."""
    lines = ["| language | from a given first letter | free first letter |", "|---|---|---|"]
    for lang, r in table["samples"].items():
        lines.append(f"| {lang} | ({r['first']}) {', '.join(r['given_first'])} | {', '.join(r['free_first'])} |")
    lines.append(f"\n`*` a training name of that language (memorised): {100 * table['memorised_fraction']:.0f} % "
                 f"of the samples; `+` a held-out name only (real, never seen): {100 * table['heldout_fraction']:.0f} %.")
    return "\n".join(lines) + "\n"


# -- the learning curve ------------------------------------------------------------------------
def plot_curve(history: list, baselines, path, title: str = "") -> None:
    """Train (running mean over the epoch) and held-out nats/char per epoch, with the n-gram
    ``baselines`` [(label, nats)] as horizontal lines. Its own small plot: ``npnet.plotting.plot_learning_curve``
    draws baselines on the metric panel only, and here the baseline is a loss."""
    fig, axes = common.figure(6.4, 3.6)
    ax = axes[0, 0]
    ep = [r["epoch"] for r in history]
    ax.plot(ep, [r["train_loss"] for r in history], "-", lw=1.2, label="RNN train (mean over the epoch)")
    ax.plot(ep, [r["val_loss"] for r in history], "o-", lw=1.2, ms=3, label="RNN held-out")
    for (label, value), style in zip(baselines, ("--", ":", "-.")):
        ax.axhline(value, color="r" if style == "--" else "gray", ls=style, lw=1, label=f"{label} {value:.3f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per character (end included)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)
