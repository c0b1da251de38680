"""The Gaussian baselines against independent float64 formulas on tables whose columns differ in scale
by twelve orders of magnitude, with a column of spread 1e-30, a constant column, collinear columns,
and the ML-or-shrinkage choice on few and on many rows per column."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.covariance import ledoit_wolf

from realnvp.evaluation.baselines import (
    choose_gaussian,
    collinear_columns,
    fit_ml,
    fit_shrinkage,
    gaussian_fit,
    gaussian_log_prob,
    gaussian_nll,
    shrinkage_fit,
)


def correlated(n: int, scales: np.ndarray, seed: int) -> np.ndarray:
    """``n`` rows whose columns have unit-scale correlations, then multiplied by ``scales``."""
    rng = np.random.default_rng(seed)
    d = len(scales)
    mix = np.eye(d) + 0.6 * np.tril(rng.normal(size=(d, d)), -1)
    return (rng.normal(size=(n, d)) @ mix.T) * scales + 3.0 * scales


def exact_log_prob(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The ML Gaussian's log-density by the textbook formula on the exact covariance (slogdet, solve)."""
    mean, cov = train.mean(0), np.cov(train.T, bias=True)
    sign, log_det = np.linalg.slogdet(cov)
    assert sign > 0
    d = x - mean
    quad = np.sum(d * np.linalg.solve(cov, d.T).T, axis=1)
    return -0.5 * (quad + log_det + len(mean) * math.log(2 * math.pi))


def test_ml_gaussian_is_exact_when_column_variances_span_1e_minus4_to_1e8():
    scales = np.sqrt(np.logspace(-4, 8, 6))  # variances 1e-4 ... 1e8, correlated columns
    train, test = correlated(3000, scales, 0), correlated(500, scales, 1)
    mean, chol = gaussian_fit(train)
    ours = gaussian_log_prob(test, mean, chol)
    np.testing.assert_allclose(ours, exact_log_prob(train, test), rtol=0, atol=1e-6)
    # scipy on the raw covariance refuses it (its eigenvalue cut-off is relative to 1e8); on the rows
    # divided by the generator's known scales, plus that Jacobian, it gives the same density
    unit = multivariate_normal(train.mean(0) / scales, np.cov((train / scales).T, bias=True))
    np.testing.assert_allclose(ours, unit.logpdf(test / scales) - np.log(scales).sum(), rtol=0, atol=1e-6)
    assert gaussian_nll(train, test) == pytest.approx(-ours.mean(), abs=1e-9)
    assert collinear_columns(train) == ()


def test_a_column_of_spread_1e_minus30_beside_unit_columns_is_exact():
    scales = np.array([1.0, 1e-30, 1.0, 1.0])
    train, test = correlated(2000, scales, 2), correlated(300, scales, 3)
    ours = gaussian_log_prob(test, *gaussian_fit(train))
    assert np.isfinite(ours).all()
    # the ML Gaussian is scale-equivariant: the rows with that column times 1e30, minus the Jacobian
    big = train / scales
    reference = multivariate_normal(big.mean(0), np.cov(big.T, bias=True)).logpdf(test / scales) + 30 * math.log(10)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fit_ml(train).log_prob(test), reference, rtol=0, atol=1e-6)
    assert collinear_columns(train) == ()


@pytest.mark.parametrize("fit", [gaussian_fit, shrinkage_fit, lambda x: choose_gaussian(x, x)])
def test_a_constant_column_raises_naming_it(fit):
    x = correlated(50, np.ones(4), 4)
    x[:, 2] = 0.1  # exactly constant, though its float mean need not be exactly 0.1
    with pytest.raises(ValueError, match=r"column 2 \(0-based\).*constant"):
        fit(x)


def test_collinear_columns_give_a_finite_density_and_are_reported():
    x = correlated(500, np.array([1.0, 5.0]), 5)
    table = np.c_[x, x[:, 0] + x[:, 1]]
    mean, chol = gaussian_fit(table)
    assert np.isfinite(chol).all() and (np.diag(chol) > 0).all()
    off_plane = table[:3] + [0.0, 0.0, 1.0]
    assert np.isfinite(gaussian_log_prob(np.r_[table, off_plane], mean, chol)).all()
    assert collinear_columns(table) == (2,)
    assert choose_gaussian(table, table).collinear == (2,)
    assert collinear_columns(correlated(3, np.ones(5), 6)) == (2, 3, 4)  # 3 centred rows span 2 directions
    assert np.isfinite(gaussian_nll(table, table))


def test_shrinkage_equals_sklearn_ledoit_wolf_on_the_standardised_columns():
    train = correlated(80, np.logspace(-3, 3, 30), 7)
    mean, chol = shrinkage_fit(train)
    std = train.std(0)
    expected = ledoit_wolf((train - train.mean(0)) / std)[0] * np.outer(std, std)
    np.testing.assert_allclose(chol @ chol.T, expected, rtol=1e-9, atol=0)
    np.testing.assert_allclose(mean, train.mean(0), rtol=1e-12)


def known_gaussian(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(100 + d).normal(size=(d, d)) / math.sqrt(d) + np.eye(d)
    return rng.normal(size=(n, d)) @ mix.T


def test_few_rows_per_column_choose_shrinkage_which_wins_on_new_rows():
    train, val, test = known_gaussian(400, 200, 8), known_gaussian(200, 200, 9), known_gaussian(4000, 200, 10)
    choice = choose_gaussian(train, val)
    assert choice.name == "shrinkage" and choice.shrinkage_val_nll < choice.ml_val_nll
    ml_test, shrunk_test = gaussian_nll(train, test), fit_shrinkage(train).nll(test)
    assert shrunk_test < ml_test
    assert -gaussian_log_prob(test, choice.mean, choice.chol).mean() == pytest.approx(shrunk_test, rel=1e-9)
    # without held-out rows, the rule: below 2 rows per column shrinkage, else ML
    assert choose_gaussian(train[:399], np.empty((0, 200))).name == "shrinkage"
    assert choose_gaussian(train, None).name == "ml"


def test_many_rows_per_column_choose_ml_or_tie():
    train, val = known_gaussian(10_000, 3, 11), known_gaussian(2000, 3, 12)
    choice = choose_gaussian(train, val)
    assert choice.name == "ml" or abs(choice.ml_val_nll - choice.shrinkage_val_nll) < 1e-3
    assert choice.ml_val_nll == pytest.approx(gaussian_nll(train, val), abs=1e-12)
    assert choose_gaussian(train, None).name == "ml" and choose_gaussian(train, None).ml_val_nll is None
