"""The static figures' labels: placed by adjustText, they overlap neither each other nor stay on
top of one another when the labelled points crowd together."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reports.figures import _place_labels  # noqa: E402


def test_crowded_labels_do_not_overlap():
    rng = np.random.default_rng(0)
    x = np.arange(1500)
    y = rng.uniform(0.5, 0.8, 1500)
    top = np.argsort(y)[-16:]  # the highest points: scattered along x, labels of 20+ characters
    y[top[:8]] = 0.95 + 0.002 * np.arange(8)  # eight of them at nearly one height, close together
    x_top = np.r_[np.arange(700, 708) * 1.0, x[top[8:]]]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.scatter(x, y, s=12)
    items = [(xt, yt, f"phenotype number {k} long name") for k, (xt, yt) in enumerate(zip(x_top, y[top]))]
    _place_labels(ax, items, (x, y))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 16
    overlaps = [(i, j) for i in range(16) for j in range(i + 1, 16) if boxes[i].overlaps(boxes[j])]
    assert not overlaps, overlaps
    plt.close(fig)


def test_label_placement_is_reproducible_under_load(monkeypatch):
    """Labels are placed by a count of iterations, not by adjustText's one second of work: the
    same crowded figure twice, once with each iteration slowed as on a loaded machine, places
    them alike."""
    import time

    import adjustText

    def placed():
        x = np.arange(300)
        y = np.full(300, 0.6)
        y[140:160] = 0.95  # twenty labels over twenty neighbouring points: many iterations
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.scatter(x, y, s=8)
        _place_labels(ax, [(float(i), 0.95, f"a long phenotype label {i}") for i in range(140, 160)], (x, y))
        out = [tuple(round(v, 6) for v in t.get_position()) for t in ax.texts]
        plt.close(fig)
        return out

    fast = placed()
    iterate = adjustText.iterate
    monkeypatch.setattr(adjustText, "iterate", lambda *a, **k: (time.sleep(0.01), iterate(*a, **k))[1])
    assert placed() == fast


def test_roc_on_grid_equals_scikit_learns_curve_with_ties():
    from sklearn.metrics import roc_curve

    from reports.explorer import FPR_GRID, roc_on_grid

    rng = np.random.default_rng(1)
    for decimals in (1, 3):
        score = np.round(rng.normal(size=800), decimals)
        positive = rng.random(800) < 0.2 + 0.2 * (score > 0)
        fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=False)
        # the slow, obvious reading of the curve: the highest TPR among points with FPR <= f
        expected = [tpr[fpr <= f].max() for f in FPR_GRID]
        np.testing.assert_allclose(roc_on_grid(score, positive), expected)


def test_wilson_interval_equals_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    from reports.explorer import wilson

    p = np.array([0.0, 0.1, 0.5, 0.93, 1.0])
    lo, hi = wilson(p, 40)
    ref = [proportion_confint(v * 40, 40, method="wilson") for v in p]
    np.testing.assert_allclose(lo, [r[0] for r in ref], atol=1e-12)
    np.testing.assert_allclose(hi, [r[1] for r in ref], atol=1e-12)
