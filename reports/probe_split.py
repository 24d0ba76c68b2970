"""How a probe's examples are held out (``probe --evaluation``): one split, repeated subject
splits, or each subject in turn.

* ``split``: one test part (the dataset's official one where ``labels.csv`` has ``split``; else
  8:2 by subject, by example where subjects are unknown, seeded) - the paper's single split;
* ``repeated``: ``K`` seeded subject splits (seeds ``seed, seed + 1, ...``), each 8:2;
* ``loso``: leave one subject out, each subject the test part once;
* ``auto`` (the default): ``split`` where the dataset has an official split or one split's test
  part would hold at least :data:`MIN_TEST_SUBJECTS` subjects, else ``repeated``.

Every draw of a subject split is redrawn (up to :data:`DRAWS` times) until each class task has two
classes among the labelled examples on both sides: a test part holding one class has no AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

EVALUATIONS = ("auto", "split", "repeated", "loso")
DRAWS = 100  # seeded splits tried until every class task has two classes on each side
MIN_TEST_SUBJECTS = 10  # fewer in one split's test part: auto repeats the split


@dataclass(frozen=True)
class Fold:
    """One held-out part: ``name`` (``split``, ``split 3``, a subject's id) and ``test``, a
    boolean mask over the examples."""

    name: str
    test: np.ndarray


@dataclass(frozen=True)
class Plan:
    """An evaluation: ``kind`` (``split``, ``repeated`` or ``loso``), its folds and ``how``, in words
    (recorded in ``summary.json`` and on the page)."""

    kind: str
    folds: list
    how: str

    @property
    def label(self) -> str:
        """What ``probe.csv``'s ``evaluation`` column says: ``split``, ``repeated:K``, ``loso:N``."""
        return self.kind if self.kind == "split" else f"{self.kind}:{len(self.folds)}"


def units(labels: pl.DataFrame) -> tuple[np.ndarray, bool]:
    """The units a split holds out (subjects where every example has one, else examples) and
    whether they are subjects."""
    by_subject = labels["subject"].is_not_null().all()
    return (np.unique(labels["subject"].to_numpy()) if by_subject else np.arange(labels.height)), by_subject


def _mask(labels: pl.DataFrame, chosen, by_subject: bool) -> np.ndarray:
    return (labels["subject"].is_in(list(chosen)).to_numpy() if by_subject
            else np.isin(np.arange(labels.height), chosen))


def _sides_ok(labels: pl.DataFrame, mask: np.ndarray, class_tasks) -> int:
    """How many of ``class_tasks`` have two classes among the labelled examples on both sides."""
    ok = 0
    for t in class_tasks:
        col = labels[t]
        have = col.is_not_null().to_numpy()
        ok += all(col.filter(pl.Series(have & side)).n_unique() >= 2 for side in (mask, ~mask))
    return ok


def split_examples(labels: pl.DataFrame, test_fraction: float, seed: int, class_tasks=()) -> tuple[np.ndarray, str]:
    """Boolean test mask over examples and how it was made. Without an official split, the first
    of :data:`DRAWS` seeded draws in which every one of ``class_tasks`` (label columns) has two
    classes among the labelled training and test examples, else the first draw in which the
    most do (a task whose positives are one subject can never have them on both sides)."""
    if labels["split"].is_not_null().all():
        return (labels["split"] == "test").to_numpy(), "official"
    rng = np.random.default_rng(seed)
    pool, by_subject = units(labels)
    n_test = max(1, int(round(test_fraction * len(pool))))
    best, best_ok, best_k = None, -1, 0
    for k in range(1, DRAWS + 1):
        mask = _mask(labels, rng.choice(pool, n_test, replace=False), by_subject)
        ok = _sides_ok(labels, mask, class_tasks)
        if ok > best_ok:
            best, best_ok, best_k = mask, ok, k
        if ok == len(class_tasks):
            break
    unit = "subject" if by_subject else "example"
    note = "" if not class_tasks else (f"; draw {best_k}: " + ("every class task has two classes on each side"
                                                            if best_ok == len(class_tasks) else
                                                            f"{best_ok} of {len(class_tasks)} class tasks have "
                                                            "two classes on each side"))
    return best, f"by {unit} (8:2, seeded{note})"


def plan(labels: pl.DataFrame, evaluation: str, *, test_fraction: float, seed: int, splits: int,
         class_tasks=()) -> Plan:
    """The folds of ``evaluation`` (see the module's text)."""
    official = labels["split"].is_not_null().all()
    pool, by_subject = units(labels)
    if evaluation == "auto":
        small = by_subject and not official and round(test_fraction * len(pool)) < MIN_TEST_SUBJECTS
        evaluation = "repeated" if small else "split"
        auto = (f"; chosen because one split's test part would hold {max(1, round(test_fraction * len(pool)))} "
                f"of {len(pool)} subjects (fewer than {MIN_TEST_SUBJECTS})" if small else "")
    else:
        auto = ""
    if evaluation == "split":
        mask, how = split_examples(labels, test_fraction, seed, class_tasks)
        return Plan("split", [Fold("split", mask)], f"one split, {how}")
    if evaluation == "repeated":
        folds = []
        for k in range(splits):
            mask, _ = split_examples(labels.with_columns(pl.lit(None, pl.String).alias("split")), test_fraction,
                                     seed + k, class_tasks)
            folds.append(Fold(f"split {k + 1}", mask))
        unit = "subject" if by_subject else "example"
        return Plan("repeated", folds, f"{splits} splits by {unit} (8:2, seeds {seed}-{seed + splits - 1})"
                    f"{' (the official split set aside)' if official else ''}{auto}")
    if evaluation == "loso":
        if not by_subject:
            raise ValueError("leave-one-subject-out needs a subject for every example (labels.csv 'subject')")
        subject = labels["subject"].to_numpy()
        return Plan("loso", [Fold(str(s), subject == s) for s in pool],
                    f"leave one subject out ({len(pool)} subjects)")
    raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
