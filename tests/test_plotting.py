"""npnet.plotting.plot_learning_curve: the one learning-curve plot (Learner.plot and the experiments)."""
import pytest

from npnet.plotting import plot_learning_curve

matplotlib = pytest.importorskip("matplotlib")


def _png_size(path):
    from matplotlib.image import imread
    return imread(path).shape[:2]


def test_two_panels_with_a_metric_one_without(tmp_path):
    hist = [{"step": s, "loss": 1.0 / s, "metric": s / 10, "eval_loss": 1.2 / s} for s in range(1, 6)]
    plot_learning_curve(hist, tmp_path / "a" / "with.png", dpi=50)          # creates the folder
    plot_learning_curve([{"step": s, "loss": 1.0 / s} for s in range(1, 6)], tmp_path / "without.png", dpi=50)
    h1, w1 = _png_size(tmp_path / "a" / "with.png")
    h2, w2 = _png_size(tmp_path / "without.png")
    assert h1 == h2 and w1 == 2 * w2                                         # 10 x 3.6 in against 5 x 3.6


def test_negative_losses_are_drawn_on_a_linear_axis(tmp_path):
    hist = [{"step": s, "loss": -float(s)} for s in range(1, 4)]
    plot_learning_curve(hist, tmp_path / "neg.png", dpi=50)                  # a log axis would warn/fail
    assert (tmp_path / "neg.png").stat().st_size > 0
