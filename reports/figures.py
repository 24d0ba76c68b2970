"""Figures of the pages: PNG at print resolution (300 dpi) and SVG, fixed chapter colours.

Each function draws one figure with matplotlib's object interface (no pyplot: nothing depends on
the backend, nothing shows itself in a notebook) and writes it into ``out`` (returning the file
names), or, with ``out=None``, returns the :class:`matplotlib.figure.Figure` (the Python API's
figures, :mod:`phewas.api`).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
import seaborn as sns
from matplotlib.figure import Figure

from cohorts.phecodes import CHAPTER_ORDER, CHAPTERS, CHAPTERS_X

matplotlib.rcParams["svg.hashsalt"] = "phewas"  # the SVG's element ids the same on every run
# each map's own colours, whichever map the cohort was built with
_PALETTE = matplotlib.colormaps["tab20"].colors
CHAPTER_COLOURS = {c: _PALETTE[i % 20] for chapters in (CHAPTERS, CHAPTERS_X) for i, c in enumerate(chapters)}
OTHER = (0.5, 0.5, 0.5)


def chapter_colour(chapter: str):
    return CHAPTER_COLOURS.get(chapter, OTHER)


class PageFigure(Figure):
    """A figure that shows itself in Jupyter as an image (no pyplot, no backend needed)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()


def _subplots(*args, **kwargs):
    """``pyplot.subplots`` without pyplot: a figure of its own, freed when dropped."""
    fig = PageFigure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def _save(fig, out: Path | None, name: str):
    if out is None:
        return fig
    fig.savefig(out / f"{name}.png", dpi=300, bbox_inches="tight")
    fig.savefig(out / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
    return [f"{name}.png", f"{name}.svg"]


# adjustText's own limit is one second of work, so where labels land depended on the machine's
# speed and load; a count of iterations (about a second on two cores) makes them reproducible
LABEL_ITERATIONS = 300


def _place_labels(ax, items, points=None):
    """Annotate ``(x, y, text)`` points, the labels moved by adjustText until they overlap neither
    each other nor the plotted ``points`` (``(x, y)`` arrays), each joined to its point by a line."""
    from adjustText import adjust_text

    if not items:
        return
    texts = [ax.text(x, y, text, fontsize=6, ha="center", va="bottom") for x, y, text in items]
    px, py = points if points is not None else ([x for x, _, _ in items], [y for _, y, _ in items])
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.08 * (hi - lo))  # room above the highest points
    adjust_text(texts, x=np.asarray(px, float), y=np.asarray(py, float), ax=ax, expand=(1.1, 1.4),
                iter_lim=LABEL_ITERATIONS, arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})


def _x_positions(df: pl.DataFrame):
    """x position of each phenotype (ordered), and each chapter's centre."""
    x = np.arange(df.height)
    centres = df.with_columns(pl.Series("x", x)).group_by("chapter", maintain_order=True).agg(pl.col("x").mean())
    return x, centres


def manhattan_auc(df: pl.DataFrame, thresholds, out: Path | None, label_per_chapter: int = 1) -> list[str] | Figure:
    """AUC per phenotype along phecodes grouped and coloured by chapter."""
    x, centres = _x_positions(df)
    fig, ax = _subplots(figsize=(12, 4.5))
    colours = [chapter_colour(c) for c in df["chapter"]]
    ax.scatter(x, df["auc"], c=colours, s=12, edgecolors="none")
    for t in thresholds:
        ax.axhline(t, color="0.3", lw=0.6, ls="--")
        ax.text(df.height - 0.5, t, f" {t:g}", va="center", fontsize=7, color="0.3")
    best = (df.with_columns(pl.Series("x", x)).filter(pl.col("auc") >= sorted(thresholds)[len(thresholds) // 2])
            .sort("auc", descending=True).group_by("chapter", maintain_order=True).head(label_per_chapter))
    ax.set_ylim(min(0.4, float(np.nanmin(df["auc"])) - 0.02), min(1.0, float(np.nanmax(df["auc"])) + 0.05))
    _place_labels(ax, [(r["x"], r["auc"], r["description"][:28]) for r in best.iter_rows(named=True)],
                  (x, df["auc"].to_numpy()))
    ax.set_xticks(centres["x"].to_list(), centres["chapter"].to_list(), rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("AUC (held-out)")
    ax.set_xlim(-1, df.height)
    ax.set_title("Phenome-wide AUC by phecode chapter")
    sns.despine(ax=ax)
    return _save(fig, out, "manhattan_auc")


def significance_lines(p_values, q_values, alpha: float) -> list[dict]:
    """The association figures' lines on the p scale, for the static figures and the explorer
    alike: Bonferroni at ``alpha`` over the number of tested phenotypes, and Benjamini-Hochberg's
    FDR line at the largest p among the discoveries (q <= ``alpha``). Each: ``p``, ``label``,
    ``colour``, ``dash`` (plotly's name)."""
    p, q = np.asarray(p_values, dtype=float), np.asarray(q_values, dtype=float)
    n = int(np.isfinite(p).sum())
    lines = []
    if n:
        lines.append({"p": alpha / n, "label": f"Bonferroni (p = {alpha}/{n})", "colour": "firebrick", "dash": "solid"})
    sig = np.isfinite(p) & np.isfinite(q) & (q <= alpha)
    if sig.any():
        lines.append({"p": float(p[sig].max()), "label": f"FDR {alpha:g} (BH)", "colour": "darkorange", "dash": "dash"})
    return lines


def manhattan_association(df: pl.DataFrame, alpha: float, out: Path | None,
                          adjusted_for: str = "age and sex") -> list[str] | Figure:
    """-log10 p of the adjusted test (``adjusted_for`` names the adjustment), with Bonferroni and
    BH-FDR lines."""
    x, centres = _x_positions(df)
    p = df["p_value"].to_numpy().astype(float)
    y = -np.log10(np.clip(p, 1e-300, 1))
    fig, ax = _subplots(figsize=(12, 4.5))
    ax.scatter(x, y, c=[chapter_colour(c) for c in df["chapter"]], s=12, edgecolors="none")
    q = df["q_value"].to_numpy().astype(float)
    sig = np.isfinite(q) & (q <= alpha)
    for line in significance_lines(p, q, alpha):
        ax.axhline(-np.log10(line["p"]), color=line["colour"], lw=0.8, ls="--" if line["dash"] == "dash" else "-",
                   label=line["label"])
    top = df.with_columns(pl.Series("x", x), pl.Series("y", y)).filter(pl.Series(sig)).sort("y", descending=True)
    top = top.group_by("chapter", maintain_order=True).head(1)
    _place_labels(ax, [(r["x"], r["y"], r["description"][:28]) for r in top.iter_rows(named=True)],
                  (x[np.isfinite(y)], y[np.isfinite(y)]))
    ax.set_xticks(centres["x"].to_list(), centres["chapter"].to_list(), rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(f"-log10 p (PPG score beyond {adjusted_for})")
    ax.set_xlim(-1, df.height)
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_title(f"Association beyond {adjusted_for} (likelihood-ratio test)")
    sns.despine(ax=ax)
    return _save(fig, out, "manhattan_association")


def chapter_distributions(df: pl.DataFrame, thresholds, out: Path | None, at_least: float = 0.70) -> list[str] | Figure:
    """The AnyPPG paper's Figure 3 in three panels over chapters: each phenotype's AUC (with the
    threshold lines), the chapter's mean AUC, and its count of phenotypes with AUC >= 0.70."""
    order = [c for c in CHAPTER_ORDER if c in set(df["chapter"])] + sorted(set(df["chapter"]) - set(CHAPTER_ORDER))
    fig, axes = _subplots(3, 1, figsize=(10, 9), sharex=True, height_ratios=[2, 1, 1])
    data = df.select("chapter", "auc").to_pandas()
    pal = {c: chapter_colour(c) for c in order}
    ax = axes[0]
    sns.boxplot(data=data, x="chapter", y="auc", order=order, hue="chapter", palette=pal, ax=ax, fliersize=0,
                linewidth=0.7, legend=False)
    rng = np.random.default_rng(0)  # the points' jitter, seeded: the same figure on every run
    for i, c in enumerate(order):
        auc = df.filter(pl.col("chapter") == c)["auc"].to_numpy()
        ax.scatter(i + rng.uniform(-0.25, 0.25, len(auc)), auc, color="0.2", s=4, linewidths=0, zorder=3)
    for t in thresholds:
        ax.axhline(t, color="0.3", lw=0.6, ls="--")
    ax.set_ylabel("AUC")
    ax.set_title("AUC by phecode chapter")
    per = df.group_by("chapter").agg(pl.col("auc").mean().alias("mean"), (pl.col("auc") >= at_least).sum().alias("n"))
    per = {c: (m, n) for c, m, n in per.iter_rows()}
    x = np.arange(len(order))
    colours = [pal[c] for c in order]
    axes[1].bar(x, [per[c][0] for c in order], color=colours)
    axes[1].axhline(0.5, color="0.3", lw=0.6, ls="--")
    axes[1].set_ylim(0.4, max(0.75, max(per[c][0] for c in order) + 0.03))
    axes[1].set_ylabel("mean AUC")
    counts = [per[c][1] for c in order]
    axes[2].bar(x, counts, color=colours)
    for xi, n in zip(x, counts):
        axes[2].text(xi, n, str(n), ha="center", va="bottom", fontsize=7)
    axes[2].set_ylabel(f"AUC >= {at_least:.2f}")
    axes[2].set_xticks(x, order, rotation=60, ha="right", fontsize=7)
    axes[2].set_xlabel("")
    for a in axes:
        sns.despine(ax=a)
    return _save(fig, out, "chapter_auc")


def auc_histogram(df: pl.DataFrame, thresholds, out: Path | None) -> list[str] | Figure:
    auc = df["auc"].to_numpy()
    fig, ax = _subplots(figsize=(6, 4))
    ax.hist(auc, bins=np.linspace(min(0.3, auc.min()), 1.0, 36), color="steelblue", edgecolor="white")
    top = ax.get_ylim()[1]
    for t in thresholds:
        ax.axvline(t, color="0.3", lw=0.7, ls="--")
        ax.text(t + 0.005, top * 0.95, f">= {t:g}: {(auc >= t).sum()}", fontsize=7, va="top")
    ax.set_xlabel("AUC")
    ax.set_ylabel("phenotypes")
    ax.set_title(f"{len(auc)} phenotypes")
    sns.despine(ax=ax)
    return _save(fig, out, "auc_histogram")


NON_SPECIFIC = r"\b(?:[Oo]ther|OTHER|NOS|[Uu]nspecified|UNSPECIFIED)\b"


def non_specific(description: pl.Expr) -> pl.Expr:
    """Descriptions with "other", "NOS" or "unspecified": left out of the top-phenotype figure,
    as in the AnyPPG paper's Figure A1 (the tables keep them)."""
    return description.fill_null("").str.contains(NON_SPECIFIC)


def top_phenotypes(df: pl.DataFrame, out: Path | None, n: int = 60) -> list[str] | Figure:
    specific = df.filter(~non_specific(pl.col("description")))
    top = specific.sort("auc", descending=True).head(n).reverse()
    fig, ax = _subplots(figsize=(7, max(3, 0.16 * top.height + 1)))
    y = np.arange(top.height)
    auc = top["auc"].to_numpy()
    err = np.vstack([auc - top["auc_ci_low"].to_numpy(), top["auc_ci_high"].to_numpy() - auc])
    for i, c in enumerate(top["chapter"]):
        ax.errorbar(auc[i], y[i], xerr=err[:, i:i + 1], fmt="o", ms=3, color=chapter_colour(c), lw=0.8)
    ax.set_yticks(y, [f"{p} {d[:40]}" for p, d in zip(top["phecode"], top["description"])], fontsize=6)
    ax.axvline(0.5, color="0.3", lw=0.6, ls="--")
    ax.set_xlabel("AUC (95% CI, patient-clustered DeLong)")
    ax.set_title(f"Top {top.height} phenotypes ({df.height - specific.height} non-specific ones left out: "
                 "other, NOS, unspecified)", fontsize=8)
    sns.despine(ax=ax)
    return _save(fig, out, "top_phenotypes")


def auc_scatter(df: pl.DataFrame, a: str, b: str, alpha: float, out: Path | None) -> list[str] | Figure:
    """Each phenotype's AUC under model ``a`` against model ``b``, coloured by chapter, with the
    diagonal; filled where the difference is significant (BH q <= ``alpha``)."""
    fig, ax = _subplots(figsize=(5.5, 5.5))
    sig = (df["q_value"].fill_null(1.0).fill_nan(1.0) <= alpha).to_numpy()
    colours = np.array([chapter_colour(c) for c in df["chapter"]])
    x, y = df["auc_b"].to_numpy(), df["auc_a"].to_numpy()
    ax.scatter(x[~sig], y[~sig], s=10, facecolors="none", edgecolors=colours[~sig], linewidths=0.6)
    ax.scatter(x[sig], y[sig], s=14, c=colours[sig], edgecolors="none")
    lo = min(0.4, float(np.nanmin(np.r_[x, y])) - 0.02)
    ax.plot([lo, 1], [lo, 1], color="0.3", lw=0.7, ls="--")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"AUC, {b}")
    ax.set_ylabel(f"AUC, {a}")
    n_a, n_b = int((sig & (y > x)).sum()), int((sig & (y < x)).sum())
    ax.set_title(f"{a} vs {b}: significantly better {n_a} / {n_b} (FDR {alpha:g}, filled)", fontsize=8)
    sns.despine(ax=ax)
    return _save(fig, out, f"auc_scatter_{a}_vs_{b}")


def manhattan_difference(df: pl.DataFrame, a: str, b: str, alpha: float, out: Path | None) -> list[str] | Figure:
    """The signed AUC difference ``a - b`` per phenotype along chapters, with its interval for the
    significant ones (BH q <= ``alpha``)."""
    x, centres = _x_positions(df)
    d = df["auc_diff"].to_numpy()
    sig = (df["q_value"].fill_null(1.0).fill_nan(1.0) <= alpha).to_numpy()
    colours = np.array([chapter_colour(c) for c in df["chapter"]])
    fig, ax = _subplots(figsize=(12, 4.5))
    ax.axhline(0, color="0.3", lw=0.7)
    ax.scatter(x[~sig], d[~sig], s=10, facecolors="none", edgecolors=colours[~sig], linewidths=0.6)
    if sig.any():
        err = np.vstack([d - df["diff_ci_low"].to_numpy(), df["diff_ci_high"].to_numpy() - d])[:, sig]
        ax.errorbar(x[sig], d[sig], yerr=err, fmt="none", ecolor="0.6", lw=0.5)
        ax.scatter(x[sig], d[sig], s=16, c=colours[sig], edgecolors="none")
    top = (df.with_columns(pl.Series("x", x)).filter(pl.Series(sig))
           .sort(pl.col("auc_diff").abs(), descending=True).head(8))
    _place_labels(ax, [(r["x"], r["auc_diff"], r["description"][:28]) for r in top.iter_rows(named=True)])
    ax.set_xticks(centres["x"].to_list(), centres["chapter"].to_list(), rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-1, df.height)
    ax.set_ylabel(f"AUC {a} - AUC {b}")
    ax.set_title(f"AUC difference by phecode ({a} above the line, {b} below; filled: FDR {alpha:g})")
    sns.despine(ax=ax)
    return _save(fig, out, f"auc_difference_{a}_vs_{b}")


def probe_metric(df: pl.DataFrame, task: str, out: Path | None) -> list[str] | Figure:
    """One task's metrics by encoder, with their bootstrap intervals: a panel per metric."""
    sub = df.filter((pl.col("task") == task) & pl.col("value").is_not_null())
    metrics = list(dict.fromkeys(sub["metric"]))
    encoders = list(dict.fromkeys(sub["encoder"]))
    fig, axes = _subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        rows = {r["encoder"]: r for r in sub.filter(pl.col("metric") == m).iter_rows(named=True)}
        x = np.arange(len(encoders))
        def column(key, rows=rows):  # None (no interval) as NaN
            return np.array([rows[e][key] if e in rows else None for e in encoders], dtype=float)
        v = column("value")
        err = np.vstack([v - column("ci_low"), column("ci_high") - v])
        ax.bar(x, v, color=[_PALETTE[i % 20] for i in range(len(encoders))])
        ax.errorbar(x, v, yerr=np.nan_to_num(np.abs(err)), fmt="none", ecolor="0.2", lw=0.8)
        ax.set_xticks(x, encoders, rotation=30, ha="right", fontsize=7)
        ax.set_title(m, fontsize=9)
        sns.despine(ax=ax)
    fig.suptitle(task, fontsize=10)
    fig.tight_layout()
    return _save(fig, out, f"probe_{task}")


def probe_comparison(df: pl.DataFrame, encoders: list[str], out: Path | None) -> list[str] | Figure:
    """The paper's comparison: each task's main metric (AUC for classification, mean absolute error
    for regression) by encoder with its 95% interval, a panel per metric, tasks as rows."""
    main = {"binary": "auc", "multiclass": "auc", "regression": "mae"}
    sub = df.filter(pl.col("value").is_not_null() & (pl.col("metric") == pl.col("kind").replace_strict(main)))
    metrics = [m for m in ("auc", "mae") if m in set(sub["metric"].to_list())]
    fig, axes = _subplots(1, len(metrics), figsize=(5 * len(metrics), 0.5 + 0.45 * sub["task"].n_unique()),
                             squeeze=False)
    for ax, m in zip(axes[0], metrics):
        part = sub.filter(pl.col("metric") == m)
        tasks = list(dict.fromkeys(part["task"].to_list()))[::-1]
        width = 0.8 / max(len(encoders), 1)
        for k, enc in enumerate(encoders):
            rows = {r["task"]: r for r in part.filter(pl.col("encoder") == enc).iter_rows(named=True)}
            y = np.array([i + (k - (len(encoders) - 1) / 2) * width for i, t in enumerate(tasks) if t in rows])
            v = np.array([rows[t]["value"] for t in tasks if t in rows])
            lo = np.array([rows[t]["ci_low"] if rows[t]["ci_low"] is not None else rows[t]["value"] for t in tasks
                           if t in rows])
            hi = np.array([rows[t]["ci_high"] if rows[t]["ci_high"] is not None else rows[t]["value"] for t in tasks
                           if t in rows])
            if len(v):
                ax.errorbar(v, y, xerr=np.abs(np.vstack([v - lo, hi - v])), fmt="o", ms=4, lw=0.8,
                            color=_PALETTE[(2 * k) % 20], label=enc)
        ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
        ax.set_xlabel("AUC" if m == "auc" else "mean absolute error")
        sns.despine(ax=ax)
    axes[0][0].legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return _save(fig, out, "probe_comparison")


def volcano(df: pl.DataFrame, alpha: float, out: Path | None, adjusted_for: str = "age and sex") -> list[str] | Figure:
    """Each phenotype's odds ratio per SD of the PPG score (adjusted for ``adjusted_for``, log
    scale) against -log10 p, coloured by chapter; filled where BH q <= ``alpha``."""
    sub = df.filter(pl.col("or_per_sd").is_finite() & (pl.col("or_per_sd") > 0) & pl.col("p_value").is_finite())
    fig, ax = _subplots(figsize=(6.5, 5))
    x = np.log2(sub["or_per_sd"].to_numpy().astype(float))
    y = -np.log10(np.clip(sub["p_value"].to_numpy().astype(float), 1e-300, 1))
    sig = (sub["q_value"].fill_null(1.0).fill_nan(1.0) <= alpha).to_numpy()
    colours = np.array([chapter_colour(c) for c in sub["chapter"]])
    ax.scatter(x[~sig], y[~sig], s=10, facecolors="none", edgecolors=colours[~sig], linewidths=0.6)
    ax.scatter(x[sig], y[sig], s=14, c=colours[sig], edgecolors="none")
    ax.axvline(0, color="0.3", lw=0.6, ls="--")
    top = sub.with_columns(pl.Series("x", x), pl.Series("y", y)).filter(pl.Series(sig)).sort("y", descending=True)
    _place_labels(ax, [(r["x"], r["y"], r["description"][:24]) for r in top.head(8).iter_rows(named=True)], (x, y))
    ax.set_xlabel(f"log2 odds ratio per SD of the PPG score (beyond {adjusted_for})")
    ax.set_ylabel("-log10 p")
    ax.set_title(f"Association by phenotype ({int(sig.sum())} with FDR <= {alpha:g}, filled)", fontsize=9)
    sns.despine(ax=ax)
    return _save(fig, out, "volcano")


def forest(df: pl.DataFrame, out: Path | None, phecodes=None, n: int = 20) -> list[str] | Figure:
    """Odds ratios per SD with their 95% intervals for ``phecodes`` (default: the ``n`` with the
    smallest p), strongest first."""
    sub = df.filter(pl.col("or_per_sd").is_finite() & (pl.col("or_per_sd") > 0)
                    & pl.col("or_ci_low").is_finite() & pl.col("or_ci_high").is_finite())
    sub = sub.filter(pl.col("phecode").is_in(list(phecodes))) if phecodes is not None else \
        sub.sort("p_value").head(n)
    sub = sub.sort("p_value", descending=True)
    fig, ax = _subplots(figsize=(7, max(2.5, 0.25 * sub.height + 1)))
    y = np.arange(sub.height)
    orr = sub["or_per_sd"].to_numpy().astype(float)
    err = np.abs(np.vstack([orr - sub["or_ci_low"].to_numpy().astype(float),
                            sub["or_ci_high"].to_numpy().astype(float) - orr]))
    for i, c in enumerate(sub["chapter"]):
        ax.errorbar(orr[i], y[i], xerr=err[:, i:i + 1], fmt="o", ms=3, color=chapter_colour(c), lw=0.8)
    ax.axvline(1, color="0.3", lw=0.6, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, [f"{p} {d[:40]}" for p, d in zip(sub["phecode"], sub["description"])], fontsize=7)
    ax.set_xlabel("odds ratio per SD of the PPG score (95% CI)")
    sns.despine(ax=ax)
    return _save(fig, out, "forest")


def roc(fpr: np.ndarray, curves: dict, title: str, out: Path | None, name: str = "roc") -> list[str] | Figure:
    """ROC curves with their pointwise bands: ``curves`` maps a model's name to ``(tpr, low,
    high)`` on the false-positive rates ``fpr`` (the page's detail view draws the same data)."""
    fig, ax = _subplots(figsize=(4.5, 4.5))
    for k, (label, (tpr, lo, hi)) in enumerate(curves.items()):
        colour = _PALETTE[(2 * k) % 20]
        ax.fill_between(fpr, lo, hi, color=colour, alpha=0.2, lw=0, step="post")
        ax.step(fpr, tpr, where="post", color=colour, lw=1.2, label=label)
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.6, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    sns.despine(ax=ax)
    return _save(fig, out, name)
