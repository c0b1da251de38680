"""The yardstick beside every vector result: a full-covariance Gaussian fitted to the training rows
and scored on other rows. A flow that does not beat it has learned nothing beyond the mean and
covariance of the data.

Real tables mix scales (a column in metres beside one in micrometres), so every fit first divides
each column by its own standard deviation and factors the correlation matrix, then maps back
(``chol = diag(std) @ chol(corr)``): exact in float64 whether a column's spread is 1e-30 or 1e30. A
ridge is added, relative to the correlation, only when it is (numerically) singular: collinear
columns, or no more rows than columns; ``collinear_columns`` says which, so callers can warn.

Two estimates: maximum likelihood (``gaussian_fit``) and Ledoit-Wolf shrinkage (``shrinkage_fit``),
which wins when rows per column are few (400 rows x 200 columns: ML scores 251.8 nats on its own
rows but 352.5 on new ones); ``choose_gaussian`` picks between them on held-out rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A column whose variance the earlier columns explain to all but this fraction counts as collinear:
# correlations computed in float64 carry errors near 1e-16 x rows, so a smaller remainder is noise.
COLLINEAR = 1e-10
# Then added to the correlation's diagonal (each column's own variance times it), so the density
# stays finite, if very peaked, along the collinear direction.
RIDGE = 1e-10


@dataclass(frozen=True)
class GaussianFit:
    """A fitted Gaussian kept in its scaled form, ``cov = diag(std) C diag(std)`` with ``C = L L^T``,
    so densities never form products of very large and very small scales; ``collinear`` lists the
    columns the earlier ones (almost) determine (empty: no ridge was needed).

    Example:
        >>> fit = fit_ml(np.array([[0.0, 1e-30], [1.0, 3e-30], [2.0, 2e-30]]))
        >>> fit.std.tolist(), fit.collinear, np.isfinite(fit.log_prob(np.ones((1, 2)))).tolist()
        ([0.816496580927726, 8.16496580927726e-31], (), [True])
    """

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D], each column's own ML standard deviation
    corr_chol: np.ndarray  # [D, D] lower Cholesky factor of the (shrunk, ridged) correlation
    collinear: tuple[int, ...] = ()

    @property
    def chol(self) -> np.ndarray:
        """The lower Cholesky factor of the covariance, ``diag(std) @ corr_chol``."""
        return self.std[:, None] * self.corr_chol

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log N(x)`` of every row of ``x`` in nats (float64 ``[N]``)."""
        return _log_prob(x, self.mean, self.std, self.corr_chol)

    def nll(self, x: np.ndarray) -> float:
        """Mean negative log-likelihood of the rows of ``x``, nats per example."""
        return float(-self.log_prob(x).mean())


def _log_prob(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``log N(x; mean, S F F^T S)`` for ``S = diag(scale)``: standardise, then a triangular solve
    against the well-scaled ``F``; the log-det is a sum of logs, never a product of scales."""
    z = (np.asarray(x, dtype=np.float64).reshape(-1, len(mean)) - mean) / scale
    w = np.linalg.solve(factor, z.T)  # F is well conditioned: each column was scaled by its own std
    log_det = np.log(scale).sum() + np.log(np.diag(factor)).sum()
    return -0.5 * (w**2).sum(0) - log_det - 0.5 * len(mean) * math.log(2 * math.pi)


def _columns(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:10]) + (", ..." if len(indices) > 10 else "")
    return f"column{'s' if len(indices) > 1 else ''} {shown} (0-based)"


def _standardize(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, std, z)`` with ``z = (train - mean) / std`` in float64; the std is taken after dividing
    by each column's largest deviation, so spreads of 1e-200 or 1e200 neither under- nor overflow.
    A constant or non-finite column raises ``ValueError`` naming it: it has no Gaussian density."""
    x = np.asarray(train, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"a Gaussian fit needs a non-empty [rows, columns] table, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x).all(0))
    if bad.size:
        raise ValueError(f"{_columns(bad)} of the training rows hold NaN or infinite values")
    constant = np.flatnonzero(np.ptp(x, axis=0) == 0)
    if constant.size:
        raise ValueError(f"{_columns(constant)} of the training rows {'is' if constant.size == 1 else 'are'}"
                         " constant (no spread, so no density): drop or jitter them")
    mean = x.mean(0)
    mean = mean + (x - mean).mean(0)  # a second pass: the mean to the last bit for offsets >> spread
    centred = x - mean
    peak = np.abs(centred).max(0)
    std = peak * np.sqrt(((centred / peak) ** 2).mean(0))
    return mean, std, centred / std


def _pivots(corr: np.ndarray) -> np.ndarray:
    """Each column's variance fraction that the earlier non-collinear columns leave unexplained (the
    squared diagonal of a Cholesky that skips columns below ``COLLINEAR`` instead of failing)."""
    a = corr.copy()
    pivots = np.empty(len(a))
    for j in range(len(a)):
        pivots[j] = a[j, j]
        if pivots[j] >= COLLINEAR:
            v = a[j + 1:, j] / math.sqrt(pivots[j])
            a[j + 1:, j + 1:] -= np.outer(v, v)
    return pivots


def _factor(corr: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(lower Cholesky factor, collinear columns)`` of a correlation matrix, ridged only when some
    column is (numerically) a combination of earlier ones."""
    try:
        factor = np.linalg.cholesky(corr)
        if np.diag(factor).min() ** 2 >= COLLINEAR:
            return factor, ()
    except np.linalg.LinAlgError:
        pass
    pivots = _pivots(corr)
    low = np.flatnonzero(pivots < COLLINEAR)
    collinear = tuple(int(i) for i in low) if low.size else (int(pivots.argmin()),)
    ridge = RIDGE
    while True:  # RIDGE suffices unless rounding made corr indefinite by more than it
        try:
            return np.linalg.cholesky(corr + ridge * np.eye(len(corr))), collinear
        except np.linalg.LinAlgError:
            ridge *= 10


def fit_ml(train: np.ndarray) -> GaussianFit:
    """The maximum-likelihood Gaussian (divides by N) of ``train`` ``[N, D]``, in scaled form.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(1000, 3)) * [1e8, 1e-4, 1.0]
        >>> fit = fit_ml(x)
        >>> bool(np.allclose(fit.chol @ fit.chol.T, np.cov(x.T, bias=True), rtol=1e-12, atol=0))
        True
    """
    mean, std, z = _standardize(train)
    corr_chol, collinear = _factor(z.T @ z / len(z))
    return GaussianFit(mean, std, corr_chol, collinear)


def _ledoit_wolf(z: np.ndarray) -> tuple[np.ndarray, float]:
    """``(shrunk covariance, shrinkage)`` of centred rows ``z`` by Ledoit and Wolf's (2004) closed
    form, towards ``mu I``: the weight minimising the expected Frobenius error, estimated from ``z``."""
    n, d = z.shape
    emp = z.T @ z / n
    mu = np.trace(emp) / d
    delta = ((emp - mu * np.eye(d)) ** 2).sum() / d  # how far the sample covariance is from the target
    z2 = z**2
    beta = ((z2.T @ z2).sum() / n - (emp**2).sum()) / (n * d)  # its sampling noise
    shrinkage = 0.0 if delta == 0 else min(beta, delta) / delta
    return (1 - shrinkage) * emp + shrinkage * mu * np.eye(d), float(shrinkage)


def fit_shrinkage(train: np.ndarray) -> GaussianFit:
    """The Ledoit-Wolf Gaussian of ``train``: the ML mean and variances, correlations shrunk towards
    zero by the closed-form weight (Ledoit-Wolf on the standardised columns; matches
    ``sklearn.covariance.ledoit_wolf`` there). Far better than ML when rows per column are few.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> train, test = rng.normal(size=(60, 40)), rng.normal(size=(2000, 40))
        >>> fit_shrinkage(train).nll(test) < fit_ml(train).nll(test)  # 1.5 rows per column
        True
    """
    mean, std, z = _standardize(train)
    corr_chol, collinear = _factor(_ledoit_wolf(z)[0])
    return GaussianFit(mean, std, corr_chol, collinear)


def gaussian_fit(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, lower Cholesky factor of the covariance)`` of ``train`` ``[N, D]``, the maximum-likelihood
    estimate (divides by N) in float64, exact whatever the column scales (``fit_ml``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, chol = gaussian_fit(rng.normal(size=(50_000, 2)) @ np.array([[2.0, 0.0], [1.0, 1.0]]))
        >>> np.round(chol @ chol.T, 1).tolist()  # A^T A for x = u A
        [[5.0, 1.0], [1.0, 1.0]]
    """
    fit = fit_ml(train)
    return fit.mean, fit.chol


def shrinkage_fit(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, lower Cholesky factor of the covariance)`` of the Ledoit-Wolf Gaussian (``fit_shrinkage``).

    Example:
        >>> mean, chol = shrinkage_fit(np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]]))
        >>> mean.tolist(), bool(abs(chol[1, 0]) < 0.5)  # the ML correlation 0.5, shrunk
        ([1.0, 1.0], True)
    """
    fit = fit_shrinkage(train)
    return fit.mean, fit.chol


def collinear_columns(train: np.ndarray) -> tuple[int, ...]:
    """The columns of ``train`` that earlier columns (almost) determine, so that its ML covariance is
    singular and was ridged; empty when it is not. No more rows than columns makes every column past
    the rank collinear too. Callers warn with it: the baseline is then very peaked on such columns.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(100, 2))
        >>> collinear_columns(x), collinear_columns(np.c_[x, x[:, 0] + x[:, 1]])
        ((), (2,))
    """
    return fit_ml(train).collinear


def gaussian_log_prob(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``log N(x; mean, L L^T)`` of every row of ``x`` in nats (float64 ``[N]``); each row of ``L`` is
    divided by its diagonal first, so columns of any scale solve exactly.

    Example:
        >>> gaussian_log_prob(np.zeros((1, 2)), np.zeros(2), np.eye(2)).round(4).tolist()  # -log(2 pi)
        [-1.8379]
    """
    chol = np.asarray(chol, dtype=np.float64)
    scale = np.diag(chol).copy()
    return _log_prob(x, np.asarray(mean, dtype=np.float64), scale, chol / scale[:, None])


def gaussian_nll(train: np.ndarray, test: np.ndarray) -> float:
    """Mean NLL (nats per example) on ``test`` of the maximum-likelihood Gaussian fitted to ``train``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> nll = gaussian_nll(rng.normal(size=(20_000, 1)), rng.normal(size=(20_000, 1)))
        >>> abs(nll - 0.5 * math.log(2 * math.pi * math.e)) < 0.02  # the entropy of N(0, 1)
        True
    """
    return fit_ml(train).nll(test)


@dataclass(frozen=True)
class GaussianChoice:
    """The Gaussian ``choose_gaussian`` picked (``name``: "ml" or "shrinkage") with its ``mean`` and
    covariance ``chol``, both fitted on the training rows, and each candidate's mean NLL on the
    held-out rows (``None`` without any); ``collinear``: the ML fit's collinear columns.

    Example:
        >>> GaussianChoice("ml", np.zeros(1), np.eye(1), 1.42, 1.43).name
        'ml'
    """

    name: str
    mean: np.ndarray
    chol: np.ndarray
    ml_val_nll: float | None
    shrinkage_val_nll: float | None
    collinear: tuple[int, ...] = ()


def choose_gaussian(train: np.ndarray, val: np.ndarray | None) -> GaussianChoice:
    """The ML or the Ledoit-Wolf Gaussian of ``train``, whichever has the lower mean NLL on the
    held-out ``val`` rows (ML on a tie). ML over-fits when rows per column are few (400 x 200: 251.8
    nats on its own rows, 352.5 on new ones), shrinkage costs a little bias when they are many, and
    held-out rows measure which matters more; without any, shrinkage below 2 rows per column, else ML.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> choose_gaussian(rng.normal(size=(60, 40)), rng.normal(size=(60, 40))).name
        'shrinkage'
        >>> choose_gaussian(rng.normal(size=(5000, 2)), None).name  # no held-out rows, 2500 per column
        'ml'
    """
    ml, shrunk = fit_ml(train), fit_shrinkage(train)
    if val is not None and len(val) > 0:
        ml_nll, shrunk_nll = ml.nll(val), shrunk.nll(val)
        pick_ml = ml_nll <= shrunk_nll
    else:
        ml_nll = shrunk_nll = None
        pick_ml = len(ml.mean) * 2 <= len(np.asarray(train))
    best = ml if pick_ml else shrunk
    return GaussianChoice("ml" if pick_ml else "shrinkage", best.mean, best.chol, ml_nll, shrunk_nll,
                          ml.collinear)
