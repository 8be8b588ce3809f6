"""The plots of the two gradient studies (experiments/exploding.py, experiments/vanishing.py): they
read the sweep rows (one per setting or cell; arrays stored as JSON strings in sweep.csv)."""
from __future__ import annotations

import json

import numpy as np

from .plots import figure

NONLINEARITIES = ("tanh", "relu")
INITS = ("random", "identity")
LABELS = {"rnn": "tanh RNN", "irnn": "IRNN (ReLU, W_h = I)", "lstm": "LSTM", "gru": "GRU"}
COLORS = {"rnn": "#d62728", "irnn": "#ff7f0e", "lstm": "#1f77b4", "gru": "#2ca02c"}


# -- exploding.py: a 2 x 2 grid (rows: nonlinearity, columns: W_h init) ----------------------
def row_list(v):
    """A list stored in a sweep row (a JSON string in sweep.csv, or the list itself)."""
    return json.loads(v) if isinstance(v, str) else v


def _panels(rows, sharey: bool):
    """The 2 x 2 grid both plots use (rows: nonlinearity, columns: W_h init) and one colour per
    (hidden, vocab). Yields (fig, axes) first, then (i, j, ax, nl, init, panel_rows, colors)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    hv = sorted({(int(r["hidden"]), int(r["vocab"])) for r in rows})
    colors = dict(zip(hv, plt.cm.viridis(np.linspace(0.0, 0.85, len(hv)))))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharex=True, sharey=sharey)
    yield fig, axes
    for i, nl in enumerate(NONLINEARITIES):
        for j, init in enumerate(INITS):
            panel = [r for r in rows if r["nonlinearity"] == nl and r["init"] == init]
            yield i, j, axes[i, j], nl, init, panel, colors


def _style(ax, i, j, title, xlabel, ylabel):
    """Log y axis, grid, title; axis labels on the bottom row and left column only."""
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if i == 1:
        ax.set_xlabel(xlabel)
    if j == 0:
        ax.set_ylabel(ylabel)


def _save(fig, path):
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_mean_abs(rows, path, clip):
    grid = _panels(rows, sharey=True)
    fig, axes = next(grid)
    for i, j, ax, nl, init, panel, colors in grid:
        for r in panel:
            T = row_list(r["seq_lens"])
            key = (int(r["hidden"]), int(r["vocab"]))
            for clipped in (False, True):
                y = np.asarray(row_list(r["applied_mean_abs" if clipped else "raw_mean_abs"]), float)
                ax.plot(T, np.where(y > 0, y, np.nan), ls="--" if clipped else "-", marker="o", ms=3,
                        color=colors[key], alpha=0.7 if clipped else 1.0,
                        label=f"H={key[0]}, V={key[1]}" + (f", clipped at {clip:g}" if clipped else ""))
        _style(ax, i, j, f"{nl}, {init} W_h" + (" (IRNN)" if (nl, init) == ("relu", "identity") else ""),
               "sequence length T (steps from the first input to the loss)",
               "mean |dL/dθ| over all parameters")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Basic RNN at initialisation: mean |gradient| against sequence length\n"
                 "(solid: raw gradient; dashed: after global-norm clipping, what the optimiser receives)",
                 fontsize=10)
    _save(fig, path)


def plot_training(rows, path, clip):
    grid = _panels(rows, sharey=False)
    fig, axes = next(grid)
    for i, j, ax, nl, init, panel, colors in grid:
        for r in panel:
            key = (int(r["hidden"]), int(r["vocab"]))
            for tag in ("noclip", "clip"):
                g = np.asarray(row_list(r[f"train_grad_norms_{tag}"]), float)
                if g.size == 0:
                    continue
                steps = np.arange(1, g.size + 1)
                shown = np.where(np.isfinite(g) & (g > 0), g, np.nan)
                ax.plot(steps, shown, ls="--" if tag == "clip" else "-", lw=1.2, color=colors[key],
                        label=f"H={key[0]}, V={key[1]}" + (", clipped" if tag == "clip" else ""))
                if int(float(r[f"diverged_step_{tag}"])) > 0:    # mark where the run overflowed
                    last = np.flatnonzero(np.isfinite(shown))
                    if last.size:
                        ax.plot(steps[last[-1]], shown[last[-1]], "x", ms=9, mew=2, color=colors[key])
        ax.axhline(clip, color="red", lw=0.8, ls=":")
        ax.set_xscale("log")
        _style(ax, i, j, f"{nl}, {init} W_h", "training step (log scale)",
               "global gradient norm before clipping")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Gradient norm during training (first-token task), clipping off (solid) and on (dashed, "
                 f"threshold {clip:g} dotted red); x: run overflowed", fontsize=10)
    _save(fig, path)


# -- vanishing.py: one line (or panel) per cell --------------------------------------------------
def row_array(row, key):
    """``row[key]`` (a list or its JSON string) as a float array."""
    v = row[key]
    return np.asarray(json.loads(v) if isinstance(v, str) else v, dtype=float)


def plot_distance(rows, path):
    """||dL/dh_t|| / ||dL/dh_T|| against the distance T - t, untrained | trained."""
    fig, axes = figure(11, 4.2, 1, 2)
    lo = 1.0
    for ax, tag in zip(axes[0], ("untrained", "trained")):
        for r in rows:
            dh = row_array(r, f"dh_{tag}")
            T = dh.size
            rel = dh[::-1] / dh[-1]                          # index k = T - t, k = 0 at the loss
            rel = np.where(rel > 0, rel, np.nan)
            lo = min(lo, np.nanmin(rel)) if np.isfinite(rel).any() else lo
            ax.plot(np.arange(T), rel, lw=2, color=COLORS[r["cell"]],
                    label=f"{LABELS[r['cell']]}: ratio t=1/t=T {dh[0] / dh[-1]:.2g}")
        ax.set_yscale("log")
        ax.set_title(f"{tag}" + (f" ({rows[0]['steps']} steps of {rows[0]['optimizer']})" if tag == "trained" else ""))
        ax.set_xlabel("distance from the loss T - t (time steps)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0, 0].set_ylabel("||dL/dh_t|| / ||dL/dh_T||  (batch mean, log scale)")
    for ax in axes[0]:
        ax.set_ylim(max(lo * 0.3, 1e-30), None)
    fig.suptitle(f"How much gradient survives the trip back through time (first-element task, "
                 f"T = {row_array(rows[0], 'dh_untrained').size}, H = {rows[0]['hidden']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_heat(rows, path):
    """log10(||dL/dh_t|| / ||dL/dh_T||) over training: one panel per cell, shared colour scale."""
    fig, axes = figure(3.2 * len(rows) + 1.2, 3.8, 1, len(rows))
    mats = []
    for r in rows:
        H = row_array(r, "heat")                                   # (records, T)
        if H.ndim != 2 or H.size == 0:
            mats.append(None)
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            mats.append(np.log10(H / H[:, -1:]))
    finite = np.concatenate([m[np.isfinite(m)] for m in mats if m is not None] or [np.zeros(1)])
    vmin = max(float(finite.min()), -12.0) if finite.size else -1.0
    vmax = max(float(finite.max()), 0.5) if finite.size else 1.0
    im = None
    for ax, r, m in zip(axes[0], rows, mats):
        if m is None:
            ax.set_title(f"{LABELS[r['cell']]}: no steps")
            continue
        steps = row_array(r, "heat_steps")
        T = m.shape[1]
        im = ax.imshow(np.clip(m, vmin, vmax), aspect="auto", origin="lower", cmap="magma",
                       vmin=vmin, vmax=vmax, interpolation="nearest",
                       extent=(0.5, T + 0.5, steps[0], steps[-1]))
        ax.set_title(LABELS[r["cell"]], color=COLORS[r["cell"]], fontsize=10)
        ax.set_xlabel("time step t (loss after t = T)")
    axes[0, 0].set_ylabel("training step")
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.14, top=0.84, wspace=0.22)
    if im is not None:
        cb = fig.colorbar(im, cax=fig.add_axes([0.915, 0.14, 0.012, 0.7]))
        cb.set_label("log10 ||dL/dh_t|| / ||dL/dh_T||")
    fig.suptitle("Per-step gradient norms over training (batch mean; dark = vanished)", fontsize=10)
    fig.savefig(path, dpi=80)


def plot_dx1(rows, path):
    fig, axes = figure(6.5, 4.5, 1, 1)
    ax = axes[0, 0]
    for r in rows:
        Ts = json.loads(r["probe_lens"]) if isinstance(r["probe_lens"], str) else r["probe_lens"]
        for tag, ls in (("untrained", "--"), ("trained", "-")):
            v = row_array(r, f"dx1_{tag}")
            ax.plot(Ts, np.where(v > 0, v, np.nan), ls=ls, marker="o", ms=3, lw=1.8, color=COLORS[r["cell"]],
                    label=f"{LABELS[r['cell']]}, {tag}")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T (time steps)")
    ax.set_ylabel("||dL/dx_1||  (batch mean, log scale)")
    ax.set_title("Gradient reaching the first input (the one the target depends on)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_jacobians(rows, path):
    fig, axes = figure(11, 4.2, 1, 2)
    for ax, tag in zip(axes[0], ("untrained", "trained")):
        for r in rows:
            v = row_array(r, f"jac_log10_{tag}")
            ax.plot(np.arange(1, v.size + 1), v, lw=2, color=COLORS[r["cell"]],
                    label=f"{LABELS[r['cell']]} (mean sigma_max {np.mean(row_array(r, f'jac_sigma_{tag}')):.2f})")
        ax.axhline(0.0, color="k", lw=0.8, ls=":")
        ax.set_title(tag)
        ax.set_xlabel("k, steps back from the last state")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0, 0].set_ylabel("log10 ||J_T J_(T-1) ... J_(T-k+1)||_2")
    fig.suptitle("Norm of the product of the last k state Jacobians ds_t/ds_(t-1) "
                 "(s = h, or [h, c] for the LSTM; layer 0; batch mean of the norms)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
