"""The experiments' plots: a figure on the Agg canvas, THE learning curve and THE confusion matrix."""
from __future__ import annotations

import numpy as np

from npnet.plotting import TRAIN_AND_HELD_OUT, figure, plot_learning_curve  # noqa: F401  (the one curve plot)


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
