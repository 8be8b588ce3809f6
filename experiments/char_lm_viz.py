"""What the cells of a char_lm model learned (Karpathy, Johnson and Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks"): units that track features a person can name, and gate saturation.

:func:`visualize` reads validation text as a few parallel streams (state carried, evaluation mode),
correlates every unit's activation -- h_t of every layer, and tanh(c_t) for an LSTM -- with each
feature of :func:`features` (Pearson r over the characters), and for the features best tracked
renders a passage of text with each character's background coloured by that unit
(unit_<feature>.png, index and r in the title). For gated cells it also plots, per layer, the
fraction of time each gate spends left- (< 0.1) and right-saturated (> 0.9) (gate_saturation.png).
"""
from __future__ import annotations

import json
import os

import numpy as np

from npnet.plotting import figure

SATURATED = (0.1, 0.9)
GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update")}


def _sig(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))                  # the logistic sigmoid without overflow


# -- features of the text: one number per character (the state after reading it) -----------------
def features(text: str) -> dict:
    """{name: float array (N,)} for ``text``; the value at t describes the text up to character t."""
    a = np.array(list(text))                                                     # (N,)
    n = len(a)
    idx = np.arange(n)
    nl = a == "\n"
    pos = idx - np.maximum.accumulate(np.where(nl, idx, -1))                    # chars since the newline
    letter = np.char.isalpha(a)
    prev_letter = np.r_[False, letter[:-1]]
    word_start = np.where(letter & ~prev_letter, idx, -1)
    in_word = np.where(letter, idx - np.maximum.accumulate(word_start), 0)     # position inside a word
    speaker, line_no, k, count = np.zeros(n), np.zeros(n), 0, 0
    for line in text.split("\n"):
        e = min(k + len(line) + 1, n)
        name = line.endswith(":") and line[:-1].replace(" ", "").isalpha() and line[:1].isupper()
        speaker[k:e] = float(name)
        count = 0 if (name or not line) else count + 1
        line_no[k:e] = count
        k = e
    mark = np.isin(a, list(".?!"))
    blank = np.isin(a, [" ", "\n"])
    last_mark = np.maximum.accumulate(np.where(mark, idx, -1))
    last_other = np.maximum.accumulate(np.where(~(mark | blank), idx, -1))
    depth = np.cumsum(np.isin(a, list("([{")).astype(int) - np.isin(a, list(")]}")).astype(int))
    quotes = np.cumsum(a == '"') % 2
    return {"position in line": pos.astype(float), "inside a word": letter.astype(float),
            "position in word": in_word.astype(float), "start of word": (letter & ~prev_letter).astype(float),
            "upper case": np.char.isupper(a).astype(float), "speaker-name line": speaker,
            "line of the speech": line_no, "after . ? !": (last_mark > last_other).astype(float),
            "inside brackets": (depth > 0).astype(float), "inside quotes": quotes.astype(float)}


# -- activations ----------------------------------------------------------------------------------
def activations(model, ids):
    """Run ``ids`` (B, T) through the model's layers (evaluation mode, zero start state).

    Returns (units, gates): units {"layer l h": (B, T, H), "layer l tanh c": ...}, gates
    {l: {gate name: (B, T, H)}} recomputed from each cell's inputs and its previous output with
    the cell's own parameters (a = x_t W_x + h_{t-1} W_h + b, gate order as in the cell).
    """
    was = model.training
    model.eval()
    try:
        x = model.read_in.forward(ids)                                          # (B, T, E)
        units, gates = {}, {}
        for l, cell in enumerate(model.cells):
            h, _ = cell.fprop(x, None)                                          # (B, T, H)
            cell.clear_cache()
            units[f"layer {l} h"] = h
            kind = model.cell_types[l]
            if kind in GATES:
                g, c = _gates(cell, kind, x, h)
                gates[l] = g
                if c is not None:
                    units[f"layer {l} tanh c"] = c
            x = h
    finally:
        if was:
            model.train()
    return units, gates


def _gates(cell, kind, x, h):
    p = {k: np.asarray(v, dtype=np.float64) for k, v in cell.params.items()}
    H = h.shape[-1]
    h_prev = np.concatenate([np.zeros_like(h[:, :1]), h[:, :-1]], axis=1)       # (B, T, H)
    if kind == "gru":
        a = x @ p["W_x"][:, :2 * H] + h_prev @ p["W_h"][:, :2 * H] + p["b"][:2 * H]   # (B, T, 2H) [r|z]
        return {"reset": _sig(a[..., :H]), "update": _sig(a[..., H:])}, None
    a = x @ p["W_x"] + h_prev @ p["W_h"] + p["b"]                               # (B, T, 4H) [i|f|g|o]
    i, f, g, o = _sig(a[..., :H]), _sig(a[..., H:2 * H]), np.tanh(a[..., 2 * H:3 * H]), _sig(a[..., 3 * H:])
    c = np.empty_like(i)                                                        # (B, T, H)
    prev = np.zeros_like(i[:, 0])
    for t in range(i.shape[1]):                                                 # c_t = f c_{t-1} + i g
        prev = c[:, t] = f[:, t] * prev + i[:, t] * g[:, t]
    return {"input": i, "forget": f, "output": o}, np.tanh(c)


def correlations(units: dict, feats: dict) -> list:
    """For each feature with variance: (|r|, r, feature, unit set, unit index) of the best unit."""
    best = []
    for fname, f in feats.items():
        if f.std() == 0:
            continue
        fz = (f - f.mean()) / f.std()
        for uname, u in units.items():
            U = u.reshape(-1, u.shape[-1]).astype(np.float64)                   # (N, H)
            sd = U.std(axis=0)
            r = ((U - U.mean(axis=0)) * fz[:, None]).mean(axis=0) / np.where(sd > 0, sd, np.inf)   # (H,)
            j = int(np.argmax(np.abs(r)))
            best.append((abs(float(r[j])), float(r[j]), fname, uname, j))
    per_feature = {}
    for b in sorted(best, reverse=True):
        per_feature.setdefault(b[2], b)
    return sorted(per_feature.values(), reverse=True)


# -- pictures -------------------------------------------------------------------------------------
def plot_unit(path, text: str, act: np.ndarray, title: str, width: int = 72) -> None:
    """``text`` in a grid (a row per line, wrapped at ``width``), each character on a background
    coloured by ``act`` (one value per character, red > 0 > blue, in [-1, 1])."""
    import matplotlib
    from matplotlib.patches import Rectangle
    rows, r, col = [], 0, 0
    for ch in text:
        rows.append((r, col, ch))
        col += 1
        if ch == "\n" or col >= width:
            r, col = r + 1, 0
    n_rows = r + 1
    fig, ax = figure(width * 0.1 + 0.4, n_rows * 0.2 + 0.6)
    a = ax[0, 0]
    cmap = matplotlib.colormaps["coolwarm"]
    for (r, c, ch), v in zip(rows, act):
        a.add_patch(Rectangle((c, r), 1, 1, color=cmap(0.5 + 0.5 * float(np.clip(v, -1, 1))), lw=0))
        a.text(c + 0.5, r + 0.55, "\u21b5" if ch == "\n" else ch, ha="center", va="center",
               fontsize=7, family="monospace")
    a.set_xlim(0, width)
    a.set_ylim(n_rows, 0)
    a.axis("off")
    a.set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def plot_saturation(path, gates: dict, cell: str) -> None:
    """Per gate: each unit a point at (fraction of time < 0.1, fraction > 0.9), one colour per layer."""
    names = GATES[cell]
    fig, ax = figure(3.0 * len(names), 3.2, 1, len(names))
    lo, hi = SATURATED
    for k, gname in enumerate(names):
        a = ax[0, k]
        for l, g in gates.items():
            G = g[gname].reshape(-1, g[gname].shape[-1])                         # (N, H)
            a.scatter((G < lo).mean(axis=0), (G > hi).mean(axis=0), s=5, alpha=0.6, label=f"layer {l}")
        a.plot([0, 1], [1, 0], "k:", lw=0.8)
        a.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"fraction < {lo} (left-saturated)", title=f"{gname} gate")
        a.grid(alpha=0.3)
        if k == 0:
            a.set_ylabel(f"fraction > {hi} (right-saturated)")
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def visualize(model, vocab, val_ids, out_dir, streams: int = 8, chars: int = 20000, passage: int = 600,
              top: int | None = None, log=print) -> dict:
    """Find the unit that best tracks each feature, write the PNGs into ``out_dir`` (best first; every
    feature with variance by default, ``top``: the best ``top`` only, so the file names are fixed);
    returns the findings (also written to out_dir/units.json)."""
    os.makedirs(out_dir, exist_ok=True)
    L = min(chars, len(val_ids)) // streams
    if L < 2:
        raise ValueError(f"--visualize needs at least {2 * streams} validation characters, got {len(val_ids)}")
    ids = np.asarray(val_ids[:streams * L]).reshape(streams, L)                 # (S, L)
    units, gates = activations(model, ids)
    per_row = [features(vocab.decode(row)) for row in ids]
    feats = {k: np.concatenate([f[k] for f in per_row]) for k in per_row[0]}   # (S L,) row-major, as units
    found = correlations(units, feats)[:top]
    row0 = vocab.decode(ids[0])
    start = row0.find("\n\n", min(200, L // 4)) + 2                          # a speech, after a warm-up
    start = start if 2 <= start < L - 50 else 0
    text0 = row0[start:start + passage]
    results = []
    for absr, r, fname, uname, j in found:
        slug = fname.replace(" ", "_").replace(".", "").replace("?", "").replace("!", "").strip("_") or "x"
        path = os.path.join(out_dir, f"unit_{slug}.png")
        act = units[uname][0, start:start + len(text0), j]
        plot_unit(path, text0, act / max(np.abs(act).max(), 1e-12),
                  f"{uname}, unit {j}: r = {r:+.2f} with '{fname}' over {streams * L:,} validation characters\n"
                  "colour: activation / max |activation| in this passage (red > 0 > blue)")
        results.append({"feature": fname, "units": uname, "unit": j, "r": round(r, 4), "png": os.path.basename(path)})
        log(f"  {fname:20s} {uname} unit {j:4d}  r = {r:+.3f}  -> {path}")
    summary = {"units": results}
    if gates:
        plot_saturation(os.path.join(out_dir, "gate_saturation.png"), gates, model.cell_types[0])
        lo, hi = SATURATED                           # per layer and gate: [fraction < lo, fraction > hi]
        summary["gate_saturation"] = {str(l): {n: [float((v < lo).mean()), float((v > hi).mean())]
                                               for n, v in g.items()} for l, g in gates.items()}
    with open(os.path.join(out_dir, "units.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
