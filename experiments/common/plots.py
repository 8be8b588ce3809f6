"""The experiments' plots: a figure on the Agg canvas, THE learning curve and THE confusion matrix."""
from __future__ import annotations

import numpy as np

TRAIN_AND_HELD_OUT = (("", "-", "train"), ("eval_", "o-", "held-out"))


def figure(width: float = 8, height: float = 3.5, rows: int = 1, cols: int = 1):
    """A matplotlib Figure on the Agg canvas (no display needed) and its axes array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def plot_learning_curve(history: list, path: str, metric_name: str, target=None, baseline=None,
                        log_metric: bool = False, x: str = "step", series=TRAIN_AND_HELD_OUT,
                        loss_name: str = "loss", title: str = "", metric_key: str = "metric") -> None:
    """Loss and the metric against ``x`` ("step" or "epoch"), one line per series.

    ``history`` is a list of records (the Learner's ``history``); a series ``(prefix, style,
    label)`` draws the keys ``prefix + "loss"`` and ``prefix + metric_key`` of the records that
    have them (default: train, and ``eval_`` as "held-out"). ``target``/``baseline``: horizontal
    lines on the metric panel.
    """
    fig, ax = figure(10, 3.6, 1, 2)
    for col, (key, label) in enumerate((("loss", loss_name), (metric_key, metric_name))):
        a = ax[0, col]
        for prefix, style, name in series:
            k = prefix + key
            pts = [(r[x], r[k]) for r in history if r.get(k) is not None]
            if pts:
                s, v = zip(*pts)
                a.plot(s, v, style, lw=1, ms=3, label=name)
        if col == 1 and target is not None:
            a.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
        if col == 1 and baseline is not None:
            a.axhline(baseline, color="r", ls="--", lw=1, label=f"baseline {baseline:.3g}")
        if key == "loss" or log_metric:
            a.set_yscale("log")
        a.set_xlabel(x)
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def confusion_matrix(true, pred, K: int) -> np.ndarray:
    """Counts C (K, K): C[i, j] = number of examples of class i predicted as j."""
    C = np.zeros((K, K), dtype=np.int64)                                    # (K, K)
    np.add.at(C, (np.asarray(true), np.asarray(pred)), 1)
    return C


def plot_confusion(C, labels, path, title: str = "", percent: bool = True) -> None:
    """Colour = rows normalised to sum 1 (recall on the diagonal); each cell annotated with that
    percentage (``percent``) or with the count."""
    C = np.asarray(C)
    R = C / np.maximum(C.sum(axis=1, keepdims=True), 1)                     # (K, K)
    K = len(labels)
    fig, axes = figure(0.42 * K + 2.5 if K > 5 else 4.6, 0.42 * K + 1.8 if K > 5 else 3.8)
    ax = axes[0, 0]
    im = ax.imshow(R, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(K), labels=labels, rotation=90 if K > 5 else 0, fontsize=8)
    ax.set_yticks(range(K), labels=labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row-normalised)")
    for i in range(K):
        for j in range(K):
            if C[i, j] and (R[i, j] >= 0.005 or not percent):
                ax.text(j, i, f"{100 * R[i, j]:.0f}" if percent else str(C[i, j]), ha="center", va="center",
                        fontsize=6 if K > 5 else 9, color="white" if R[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
