"""The probes of ``phewas probe``: the AnyPPG paper's protocol, fitted fast enough for datasets of
half a million windows.

* binary tasks: L2 logistic regression on standardised embeddings, ``C`` chosen from the paper's
  grid by the mean ROC AUC over inner folds (as ``GridSearchCV(..., scoring="roc_auc")``);
* regression: ridge regression, ``alpha`` chosen from the paper's grid by the mean absolute error;
* multi-class tasks: a random forest with the paper's grid of trees, depth and minimum split,
  chosen by accuracy (``multiclass="logistic"``: multinomial L2 logistic regression instead).

The logistic search does not fit each penalty on each fold from scratch. All folds are fitted at
once, as one L-BFGS problem whose objective is the sum of the folds' (each fold standardised with
its own training rows, as a ``StandardScaler`` pipeline does), in one pass over the rows per
evaluation (chunked in float64, so a float32 matrix of 536,399 x 512 is never copied); the
penalties are walked from the strongest, each start warm from the last solution, and the walk
stops once the mean AUC has stayed below the best for two penalties in a row (the weakest
penalties, the slowest to fit, are seldom needed). ``tests/reports/test_probe.py`` and
``bench/bench_probe_scale.py`` check the choice against ``GridSearchCV``: where the two differ, the
inner-fold AUCs are tied within solver tolerance. The final fit on the whole training part starts
from the folds' mean solution. Ridge solves every penalty of a fold from one eigendecomposition.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from phewas.base.auc import auc

CS = (0.01, 0.1, 1.0, 10.0, 100.0)  # the paper's grid of inverse L2 penalties
ALPHAS = (0.1, 1.0, 10.0, 100.0)  # the paper's grid of ridge penalties
FOREST_GRID = {"n_estimators": [100, 200], "max_depth": [10, 20], "min_samples_split": [2, 5]}
MULTICLASS = ("forest", "logistic")
ROWS = 65536  # rows per chunk of a pass over the embeddings
IN_MEMORY = 1 << 30  # embeddings up to this many bytes in float64 are converted once, not per pass
TOL = 1e-4  # L-BFGS: largest gradient component at convergence, as scikit-learn's lbfgs


@dataclass
class ProbeFit:
    """A fitted probe's test predictions (values for regression; ``(proba [n, k], classes)`` for
    classification), its chosen hyperparameters and the mean inner-fold score of each setting
    tried (``score`` names the scoring)."""

    prediction: object
    hyperparameters: dict
    scores: dict = field(default_factory=dict)
    score: str = ""


def inner_folds(groups, y, folds: int, classify: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The penalty search's folds: by subject where subjects are known (stratified for classes),
    else by example, shuffled with ``seed``."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
    dummy = np.zeros(len(y))
    if groups is not None and len(np.unique(groups)) >= folds:
        splitter = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if classify
                    else GroupKFold(folds))
        # a greedy stratified grouping can leave a fold empty with few subjects
        return [(tr, va) for tr, va in splitter.split(dummy, y, groups) if len(va)]
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if classify
                else KFold(folds, shuffle=True, random_state=seed))
    return list(splitter.split(dummy, y))


def _scaling(X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A ``StandardScaler``'s mean and scale over ``rows`` of ``X`` (scale 1 where constant)."""
    total, squares, n = np.zeros(X.shape[1]), np.zeros(X.shape[1]), 0
    for a in range(0, X.shape[0], ROWS):
        chunk = np.asarray(X[a:a + ROWS], np.float64)
        if rows is not None:
            chunk = chunk[rows[a:a + ROWS]]
        total += chunk.sum(0)
        n += len(chunk)
    mean = total / n
    for a in range(0, X.shape[0], ROWS):
        chunk = np.asarray(X[a:a + ROWS], np.float64)
        if rows is not None:
            chunk = chunk[rows[a:a + ROWS]]
        squares += ((chunk - mean) ** 2).sum(0)
    scale = np.sqrt(squares / n)
    return mean, np.where(scale > 0, scale, 1.0)


class _Folds:
    """The folds' joint L2-logistic objective over the rows of ``X`` (see the module's text)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, train: np.ndarray):
        self.X = np.asarray(X, np.float64) if X.shape[0] * X.shape[1] * 8 <= IN_MEMORY else X
        self.y = y.astype(np.float64)
        self.train = train  # [n, K] bool: the rows each fold trains on
        self.n = train.sum(0).astype(np.float64)
        self.K, self.d = train.shape[1], X.shape[1]
        self.means, self.scales = zip(*(_scaling(X, train[:, k]) for k in range(self.K)))
        self.mu, self.sigma = np.array(self.means).T, np.array(self.scales).T  # [d, K]

    def split(self, theta: np.ndarray):
        theta = theta.reshape(self.d + 1, self.K)
        return theta[:-1], theta[-1]  # w [d, K], b [K]

    def raw(self, w: np.ndarray, b: np.ndarray):
        """Coefficients on the unscaled embeddings: ``z = x . u + c``."""
        u = w / self.sigma
        return u, b - (self.mu * u).sum(0)

    def objective(self, theta: np.ndarray, C: float):
        w, b = self.split(theta)
        u, c = self.raw(w, b)
        loss, g_u, g_c = np.zeros(self.K), np.zeros((self.d, self.K)), np.zeros(self.K)
        for a in range(0, self.X.shape[0], ROWS):
            x = np.asarray(self.X[a:a + ROWS], np.float64)
            m, y = self.train[a:a + ROWS], self.y[a:a + ROWS, None]
            z = x @ u + c
            loss += np.where(m, np.logaddexp(0.0, z) - y * z, 0.0).sum(0)
            r = np.where(m, expit(z) - y, 0.0) / self.n
            g_u += x.T @ r
            g_c += r.sum(0)
        loss = loss / self.n + (w ** 2).sum(0) / (2 * C * self.n)
        g_w = (g_u - self.mu * g_c) / self.sigma + w / (C * self.n)
        return float(loss.sum()), np.vstack([g_w, g_c]).ravel()

    def fit(self, C: float, theta0: np.ndarray | None = None, tol: float = TOL, max_iter: int = 5000):
        theta0 = np.zeros((self.d + 1) * self.K) if theta0 is None else theta0
        res = minimize(self.objective, theta0, args=(C,), jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxls": 50})
        return res.x, int(res.nit)

    def decision(self, theta: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
        w, b = self.split(theta)
        u, c = self.raw(w, b)
        return np.asarray(self.X[rows], np.float64) @ u[:, k] + c[k]


def logistic_search(X: np.ndarray, y: np.ndarray, cv, Cs=CS, patience: int = 2) -> tuple[float, dict, dict]:
    """The ``C`` of ``Cs`` with the best mean inner-fold AUC (ties: the smaller ``C``, as
    ``GridSearchCV`` takes the first), the mean AUC of each ``C`` walked, and the folds' mean
    solution at the best ``C`` (standardised scale) for a warm start. A fold whose validation
    part lacks a class (few subjects, labels per subject) is left out of the mean."""
    n = len(y)
    train = np.zeros((n, len(cv)), bool)
    for k, (tr, _) in enumerate(cv):
        train[tr, k] = True
    problem = _Folds(X, y, train)
    theta, best, scores, worse, best_theta = None, None, {}, 0, None
    for C in sorted(Cs):
        theta, _ = problem.fit(C, theta)
        aucs = [auc(problem.decision(theta, va, k), y[va]) for k, (_, va) in enumerate(cv)]
        scores[C] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        if best is None or scores[C] > scores[best] or (np.isnan(scores[best]) and not np.isnan(scores[C])):
            best, worse, best_theta = C, 0, theta.copy()
        else:
            worse += 1
            if worse >= patience:
                break
    w, b = problem.split(best_theta)
    return best, scores, {"w": w.mean(1), "b": float(b.mean())}


def logistic_fit(X: np.ndarray, y: np.ndarray, C: float, start: dict | None = None):
    """One L2 logistic regression on all rows of ``X`` (standardised): ``(mean, scale, w, b)``."""
    problem = _Folds(X, y, np.ones((len(y), 1), bool))
    theta0 = None if start is None else np.append(start["w"], start["b"])
    theta, _ = problem.fit(C, theta0)
    w, b = problem.split(theta)
    return problem.mu[:, 0], problem.sigma[:, 0], w[:, 0], float(b[0])


def ridge_search(X: np.ndarray, y: np.ndarray, cv, alphas=ALPHAS) -> tuple[float, dict]:
    """The ``alpha`` with the smallest mean inner-fold absolute error (ties: the first), and each
    ``alpha``'s mean error."""
    errors = np.zeros(len(alphas))
    for tr, va in cv:
        predict = _ridge_solutions(X, y, tr, alphas)
        for j, p in enumerate(predict(X[va])):
            errors[j] += np.mean(np.abs(p - y[va])) / len(cv)
    best = int(np.argmin(errors))
    return float(alphas[best]), {float(a): float(e) for a, e in zip(alphas, errors)}


def _ridge_solutions(X, y, rows, alphas):
    """Ridge on the standardised ``X[rows]`` for every ``alpha`` from one eigendecomposition;
    returns a function giving each alpha's predictions for new rows."""
    mean, scale = _scaling(X, np.isin(np.arange(len(X)), rows))
    Xs = (np.asarray(X[rows], np.float64) - mean) / scale
    yc = y[rows] - y[rows].mean()
    evals, evecs = np.linalg.eigh(Xs.T @ Xs)
    proj = evecs.T @ (Xs.T @ yc)
    coefs = [evecs @ (proj / (evals + a)) for a in alphas]

    def predict(Xnew):
        Xn = (np.asarray(Xnew, np.float64) - mean) / scale
        return [Xn @ w + y[rows].mean() for w in coefs]
    return predict


def fit_probe(X_train, y_train, X_test, kind: str, *, groups=None, folds: int = 5, seed: int = 0,
              multiclass: str = "forest", workers: int = 1, fixed: dict | None = None) -> ProbeFit:
    """Choose the hyperparameters on the training part (inner folds), refit on all of it, and
    predict the test part (see the module's text). ``fixed``: hyperparameters given (as a fit's
    ``hyperparameters``), so that no inner search runs."""
    classify = kind != "regression"
    cv = None if fixed else inner_folds(groups, y_train, folds, classify, seed)
    if kind == "regression":
        alpha, scores = (fixed["alpha"], {}) if fixed else ridge_search(X_train, y_train, cv)
        prediction = _ridge_solutions(X_train, y_train, np.arange(len(y_train)), [alpha])(X_test)[0]
        return ProbeFit(prediction, {"alpha": alpha}, scores, "mean absolute error")
    classes = np.unique(y_train)
    if kind == "binary":
        yb = (y_train == classes[1]).astype(np.float64)
        C, scores, start = (fixed["C"], {}, None) if fixed else logistic_search(X_train, yb, cv)
        mean, scale, w, b = logistic_fit(X_train, yb, C, start)
        p = expit((np.asarray(X_test, np.float64) - mean) / scale @ w + b)
        return ProbeFit((np.column_stack([1 - p, p]), classes), {"C": C}, scores, "roc_auc")
    return _multiclass(X_train, y_train, X_test, cv, multiclass, seed, workers, fixed)


def _multiclass(X_train, y_train, X_test, cv, model: str, seed: int, workers: int, fixed: dict | None = None
                ) -> ProbeFit:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if model == "forest":
        estimator, grid = RandomForestClassifier(random_state=seed, n_jobs=workers), FOREST_GRID
    else:
        estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        grid = {"logisticregression__C": list(CS)}
    if fixed:
        names = {k.split("__")[-1]: k for k in grid}
        estimator.set_params(**{names[k]: v for k, v in fixed.items() if k in names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(np.asarray(X_train), y_train)
        return ProbeFit((estimator.predict_proba(np.asarray(X_test)), estimator.classes_), dict(fixed), {},
                        "accuracy")
    search = GridSearchCV(estimator, grid, cv=cv, scoring="accuracy", n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at weak penalties; classes absent from a fold
        search.fit(np.asarray(X_train), y_train)
    scores = {str(p): float(s) for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])}
    best = {k.split("__")[-1]: v for k, v in search.best_params_.items()}
    return ProbeFit((search.predict_proba(np.asarray(X_test)), search.classes_), {"model": model, **best},
                    scores, "accuracy")


# The AnyPPG release's protocol (``downstream_evaluation/linear_prob.py``), exactly

RELEASE_SEED = 42  # the release's random forest's random_state
RELEASE_BOOTSTRAP = 500  # its bootstrap rounds
RELEASE_FOLDS = 5


def release_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, classes)`` as the release's ``LabelEncoder`` makes them: the distinct labels
    ordered as numbers when every label is one (its labels are numeric arrays), else as text;
    ``codes`` are positions in ``classes``."""
    labels = np.unique(np.asarray(y))
    try:
        order = np.argsort(labels.astype(np.float64), kind="stable")
    except (TypeError, ValueError):
        order = np.arange(len(labels))
    classes = labels[order]
    return _codes(y, classes), classes


def _codes(y, classes: np.ndarray) -> np.ndarray:
    position = {c: i for i, c in enumerate(classes.tolist())}
    return np.array([position[v] for v in np.asarray(y).tolist()], dtype=np.int64)


def release_fit(X_train, y_train, X_test, kind: str, workers: int = 1) -> ProbeFit:
    """``run_linear_probe_solver``: a ``StandardScaler`` pipeline searched by ``GridSearchCV`` with
    ``cv=5`` (unshuffled ``StratifiedKFold`` for classes, ``KFold`` for values, over rows): L2
    logistic regression (lbfgs, ``max_iter=1000``) over C in (0.01, 0.1, 1, 10, 100) by ROC AUC for
    two classes; a random forest (``random_state=42``) over the paper's grid by accuracy for more;
    ridge over alpha in (0.1, 1, 10, 100) by mean absolute error; refit on the whole training
    part."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    if kind == "regression":
        pipe = Pipeline([("scaler", StandardScaler()), ("reg", Ridge())])
        grid, scoring, y = {"reg__alpha": list(ALPHAS)}, "neg_mean_absolute_error", np.asarray(y_train, np.float64)
    else:
        y, classes = release_labels(y_train)
        if len(classes) > 2:
            pipe = Pipeline([("scaler", StandardScaler()), ("rf", RandomForestClassifier(random_state=RELEASE_SEED))])
            grid, scoring = {f"rf__{k}": v for k, v in FOREST_GRID.items()}, "accuracy"
        else:
            pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(solver="lbfgs", max_iter=1000))])
            grid, scoring = {"clf__C": list(CS)}, "roc_auc"
    search = GridSearchCV(pipe, grid, cv=RELEASE_FOLDS, scoring=scoring, n_jobs=workers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the release silences every warning
        search.fit(X_train, y)
    scores = {str(p): float(s) for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])}
    best = {k.split("__")[-1]: v for k, v in search.best_params_.items()}
    if kind == "regression":
        return ProbeFit(search.predict(X_test), best, scores, scoring)
    return ProbeFit((search.predict_proba(X_test), classes), best, scores, scoring)


def release_metrics(kind: str, y: np.ndarray, pred) -> dict:
    """The release's ``calculate_regression_metrics`` / ``calculate_classification_metrics`` in
    this toolkit's metric names: ``pearson_r`` 0 (not undefined) when the predictions are
    constant; a multi-class AUC only when the test part holds every class (one-vs-rest, macro,
    as ``roc_auc_score(..., multi_class="ovr")``), else undefined; ``balanced_accuracy`` beside
    them (the release reports accuracy, sensitivity and specificity instead)."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        f1_score,
        mean_absolute_error,
        mean_squared_error,
        roc_auc_score,
    )
    if kind == "regression":
        mse = mean_squared_error(y, pred)
        r = float(np.corrcoef(y, pred)[0, 1]) if len(y) > 1 and np.std(pred) > 1e-9 else 0.0
        return {"mae": float(mean_absolute_error(y, pred)), "rmse": float(np.sqrt(mse)), "pearson_r": r}
    proba, classes = pred
    codes, guess = _codes(y, classes), proba.argmax(1)
    try:
        if len(classes) == 2:
            auc = float(roc_auc_score(codes, proba[:, 1]))
        else:
            auc = float(roc_auc_score(codes, proba, multi_class="ovr", average="macro"))
    except ValueError:
        auc = float("nan")
    return {"auc": auc, "macro_f1": float(f1_score(codes, guess, average="macro")),
            "balanced_accuracy": float(balanced_accuracy_score(codes, guess))}


def release_bootstrap(kind: str, y: np.ndarray, pred, rounds: int = RELEASE_BOOTSTRAP, seed: int = 0,
                      level: float = 0.95) -> tuple[dict, dict]:
    """The release's ``bootstrap_ci``: resample test rows with replacement (``RandomState(seed)``,
    the draws of ``sklearn.utils.resample`` after ``np.random.seed(seed)``), skip a class
    resample that holds one class, keep each metric's finite values. Returns ``(intervals,
    values)``: percentile intervals (``np.percentile``) and every round's values per metric."""
    rng = np.random.RandomState(seed)
    n = len(y)
    values: dict[str, list] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            idx = rng.randint(0, n, size=n)
            if kind != "regression" and len(np.unique(y[idx])) < 2:
                continue
            sub = pred[idx] if kind == "regression" else (pred[0][idx], pred[1])
            for k, v in release_metrics(kind, y[idx], sub).items():
                values.setdefault(k, [])
                if np.isfinite(v):
                    values[k].append(v)
    q = 100 * (1 - level) / 2
    ci = {k: ((float(np.percentile(v, q)), float(np.percentile(v, 100 - q))) if v else (float("nan"), float("nan")))
          for k, v in values.items()}
    return ci, values
