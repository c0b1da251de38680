"""The yardstick beside every vector result: a full-covariance Gaussian fitted (maximum likelihood) to
the training rows and scored on other rows. A flow that does not beat it has learned nothing beyond
the mean and covariance of the data."""

from __future__ import annotations

import math

import numpy as np

# Added to the covariance's diagonal, relative to its mean variance: only so a constant or collinear
# column gives a finite (if very large) density instead of a singular matrix.
RIDGE = 1e-9


def gaussian_fit(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, lower Cholesky factor of the covariance)`` of ``train`` ``[N, D]``, the maximum-likelihood
    estimate (divides by N), in float64, with a tiny relative ridge so collinear columns stay finite.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mean, chol = gaussian_fit(rng.normal(size=(50_000, 2)) @ np.array([[2.0, 0.0], [1.0, 1.0]]))
        >>> np.round(chol @ chol.T, 1).tolist()  # A^T A for x = u A
        [[5.0, 1.0], [1.0, 1.0]]
    """
    x = np.asarray(train, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"gaussian_fit needs a non-empty [N, D] table, got shape {x.shape}")
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / len(x)
    cov[np.diag_indices_from(cov)] += RIDGE * max(float(np.trace(cov)) / len(cov), 1e-12)
    return mean, np.linalg.cholesky(cov)


def gaussian_log_prob(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``log N(x; mean, L L^T)`` of every row of ``x`` in nats (float64 ``[N]``).

    Example:
        >>> gaussian_log_prob(np.zeros((1, 2)), np.zeros(2), np.eye(2)).round(4).tolist()  # -log(2 pi)
        [-1.8379]
    """
    z = np.linalg.solve(chol, (np.asarray(x, dtype=np.float64) - mean).T).T
    log_det = np.log(np.diag(chol)).sum()
    return -0.5 * (z**2).sum(1) - log_det - 0.5 * len(mean) * math.log(2 * math.pi)


def gaussian_nll(train: np.ndarray, test: np.ndarray) -> float:
    """Mean NLL (nats per example) on ``test`` of the full-covariance Gaussian fitted to ``train``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> nll = gaussian_nll(rng.normal(size=(20_000, 1)), rng.normal(size=(20_000, 1)))
        >>> abs(nll - 0.5 * math.log(2 * math.pi * math.e)) < 0.02  # the entropy of N(0, 1)
        True
    """
    mean, chol = gaussian_fit(train)
    return float(-gaussian_log_prob(test, mean, chol).mean())
