"""The one learning-curve plot of npnet: loss and metric against the step (or epoch), PNG via Agg.

:meth:`npnet.Learner.plot` and every experiment script draw their curves with
:func:`plot_learning_curve`; :func:`figure` gives a matplotlib figure that needs no display.
matplotlib is imported only when a plot is drawn.
"""
from __future__ import annotations

import os

__all__ = ["figure", "plot_learning_curve", "TRAIN_AND_HELD_OUT"]

# (key prefix, line style, legend label) for the two series a Learner history holds
TRAIN_AND_HELD_OUT = (("", "-", "train"), ("eval_", "o-", "held-out"))


def figure(width: float = 8, height: float = 3.5, rows: int = 1, cols: int = 1):
    """A matplotlib Figure on the Agg canvas (no display needed) and its (rows, cols) axes array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def plot_learning_curve(history: list, path, metric_name: str = "metric", target=None, baseline=None,
                        log_metric: bool = False, x: str = "step", series=TRAIN_AND_HELD_OUT,
                        loss_name: str = "loss", title: str = "", metric_key: str = "metric",
                        dpi: int = 80) -> None:
    """Save a PNG of the loss and (when recorded) the metric against ``x`` ("step" or "epoch").

    ``history`` is a list of records (a Learner's ``history``); a series ``(prefix, style, label)``
    draws the keys ``prefix + "loss"`` and ``prefix + metric_key`` of the records that have them
    (default: train, and ``eval_`` as "held-out"). ``target``/``baseline``: horizontal lines on the
    metric panel. The loss axis is logarithmic when every loss drawn is positive. The folder of
    ``path`` is created if missing.
    """
    keys = [(prefix + k) for prefix, _, _ in series for k in (metric_key,)]
    has_metric = any(r.get(k) is not None for r in history for k in keys)
    panels = [("loss", loss_name)] + ([(metric_key, metric_name)] if has_metric else [])
    fig, ax = figure(10 if has_metric else 5, 3.6, 1, len(panels))
    for col, (key, label) in enumerate(panels):
        a = ax[0, col]
        drawn = []
        for prefix, style, name in series:
            pts = [(r[x], r[prefix + key]) for r in history if r.get(prefix + key) is not None]
            if pts:
                s, v = zip(*pts)
                a.plot(s, v, style, lw=1, ms=3, label=name)
                drawn += v
        if col == 1 and target is not None:
            a.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
        if col == 1 and baseline is not None:
            a.axhline(baseline, color="r", ls="--", lw=1, label=f"baseline {baseline:.3g}")
        if drawn and all(v > 0 for v in drawn) and (key == "loss" or log_metric):
            a.set_yscale("log")
        a.set_xlabel(x)
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
