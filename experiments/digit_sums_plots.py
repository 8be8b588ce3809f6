"""The figures of one digit_sums.py run: accuracy of the running total by position, and test examples."""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import numpy as np  # noqa: E402


def plot_positions(path: str, curves: dict, title: str = "per-step accuracy") -> None:
    """Test accuracy of the running total against the position t, one curve per label (step_accuracy.png,
    lengths.png). The y axis runs from 0 to 1: a cut axis would make a few points look like a collapse."""
    fig, ax = common.figure(5, 3.6)
    longest = 1
    for label, acc in curves.items():
        ax[0, 0].plot(np.arange(1, len(acc) + 1), acc, marker="o", ls="--" if label.startswith("perfect") else "-",
                      label=label)
        longest = max(longest, len(acc))
    ax[0, 0].set(xlabel="position t (digits read)", ylabel="test accuracy of the running total", title=title,
                 ylim=(0, 1.02), xticks=np.arange(1, longest + 1))
    ax[0, 0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plot_examples(path: str, images, pred, totals) -> None:
    """examples.png: test sequences (rows) and steps (columns), each with its predicted (true) running total."""
    (n, L), (fig, ax) = pred.shape, common.figure(1.1 * pred.shape[1] + 0.3, 1.25 * pred.shape[0] + 0.4)
    ax[0, 0].imshow(images.transpose(0, 2, 1, 3).reshape(n * 28, L * 28), cmap="gray_r")        # one montage
    for (i, t), p in np.ndenumerate(pred):
        ax[0, 0].text(28 * t + 1, 28 * i + 1, f"{p} ({totals[i, t]})", fontsize=7, va="top",
                      color="tab:blue" if p == totals[i, t] else "red")
    ax[0, 0].set(xticks=np.arange(L) * 28 + 14, xticklabels=[f"t={t + 1}" for t in range(L)], yticks=[],
                 title="test sequences: predicted (true) running total")
    fig.savefig(path, dpi=80)
