"""Held-out populations drawn differently from the project's simulator, with a known AUC: the
ground of the interval calibration (``tests/reports/test_intervals.py``,
``bench/bench_auc_intervals.py``).

Patients visit ``1 + Poisson(1)`` times, and ``frequent`` of them six times; a diagnosis is
chronic (every stay of a case patient is positive); a stay's score is the case effect plus a
patient effect shared by the patient's stays plus the stay's own noise, normal or skewed (a
standardised gamma). Every case-control pair of stays is a pair of patients, so the pooled
stay-level AUC is the probability that a case patient's stay outscores a control patient's: for
normal noise ``Phi(delta / sqrt(2 (patient_sd^2 + 1)))``, for skewed noise computed once from two
million pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit

PREVALENCE = 0.025
FREQUENT, FREQUENT_STAYS = 0.12, 6


@dataclass
class Population:
    patient: np.ndarray  # each stay's patient
    label: np.ndarray  # 1 case, 0 control
    scores: list[np.ndarray]  # one score per model


RHO = 0.7  # the share of the patient effect and noise that two models' scores have in common


def _noise(rng, shape, skewed: bool) -> np.ndarray:
    if not skewed:
        return rng.normal(size=shape)
    return (rng.gamma(2.0, size=shape) - 2.0) / np.sqrt(2.0)


def _mixed(rng, shared: np.ndarray, skewed: bool) -> np.ndarray:
    """A model's own noise: ``RHO`` of the shared draw and the rest its own, unit variance."""
    return RHO * shared + np.sqrt(1 - RHO ** 2) * _noise(rng, shared.shape, skewed)


def true_auc(delta: float, patient_sd: float, skewed: bool) -> float:
    if not skewed:
        return float(stats.norm.cdf(delta / np.sqrt(2 * (patient_sd ** 2 + 1))))
    rng = np.random.default_rng(12345)
    n = 2_000_000
    case = delta + patient_sd * rng.normal(size=n) + _mixed(rng, _noise(rng, n, True), True)
    control = patient_sd * rng.normal(size=n) + _mixed(rng, _noise(rng, n, True), True)
    return float(np.mean(case > control))


def delta_for(auc: float, patient_sd: float, skewed: bool) -> float:
    """The case effect that gives ``auc`` (solved on the true AUC)."""
    if not skewed:
        return float(stats.norm.ppf(auc) * np.sqrt(2 * (patient_sd ** 2 + 1)))
    lo, hi = 0.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if true_auc(mid, patient_sd, True) < auc else (lo, mid)
    return (lo + hi) / 2


def draw(rng, case_patients: int, deltas: tuple[float, ...], *, patient_sd: float = 1.0,
         skewed: bool = False) -> Population:
    """One population with ``case_patients`` case patients at 2.5% prevalence and one score per case
    effect in ``deltas``: the models share ``RHO`` of the patient effect and of the noise (so that
    their AUCs are correlated, as two models' on one population are)."""
    n = int(round(case_patients / PREVALENCE))
    case = np.zeros(n, bool)
    case[rng.choice(n, case_patients, replace=False)] = True
    visits = np.where(rng.random(n) < FREQUENT, FREQUENT_STAYS, 1 + rng.poisson(1.0, n))
    patient = np.repeat(np.arange(n), visits)
    label = case[patient].astype(np.int8)
    u0, e0 = rng.normal(size=n), _noise(rng, len(patient), skewed)
    scores = []
    for delta in deltas:
        u = RHO * u0 + np.sqrt(1 - RHO ** 2) * rng.normal(size=n)
        scores.append(delta * label + patient_sd * u[patient] + _mixed(rng, e0, skewed))
    return Population(patient, label, scores)


def confounded_nulls(rng, n_patients: int, phenotypes: int, strength: float, *, lowest: float = 0.01):
    """Null phenotypes given age, sex and race: race (four levels) moves both the disease risk and
    the score, by ``strength`` on the logit and the score's scale. Prevalence from ``lowest`` to
    30% (few and many cases); patients return (1 + Poisson(0.6) stays); the score has a patient
    effect. Returns ``(y [stays, phenotypes], score, age, sex, race, patient)``."""
    visits = 1 + rng.poisson(0.6, n_patients)
    patient = np.repeat(np.arange(n_patients), visits)
    n = len(patient)
    age = np.round(rng.uniform(18, 90, n_patients))[patient]
    sex = rng.choice(["F", "M"], n_patients)[patient]
    race = rng.choice(np.array(["White", "Black", "Asian", "Other"]), n_patients, p=[0.55, 0.2, 0.15, 0.1])[patient]
    shift = np.select([race == "Black", race == "Asian"], [1.0, -0.6], 0.0)
    prevalence = np.exp(np.linspace(np.log(lowest), np.log(0.3), phenotypes))
    risk = np.log(prevalence / (1 - prevalence))[None, :] + strength * shift[:, None] + 0.01 * (age[:, None] - 55)
    y = (rng.random((n_patients, phenotypes)) < expit(risk[np.r_[0, np.cumsum(visits)[:-1]]]))[patient]
    patient_effect = rng.normal(size=(n_patients, 1))[patient]
    score = expit(strength * shift[:, None] + rng.normal(size=(n, phenotypes)) + patient_effect)
    return y.astype(np.int8), score, age, sex, race, patient
