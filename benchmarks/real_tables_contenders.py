"""The contenders of ``real_tables.py``: each takes ``(train, test, seed, budget_s)`` in the data's
original units (float64) and returns the per-row test NLL in nats in those units plus extras.

- ``gaussian``: exact float64 maximum-likelihood full-covariance Gaussian (population covariance);
- ``shrinkage``: scikit-learn ``LedoitWolf`` on standardised columns (its target, a multiple of the
  identity, only makes sense when the columns share a scale), log-det of the standardisation added;
- ``gmm``: ``GaussianMixture`` (full covariances, ``reg_covar`` 1e-6 of each standardised column's
  variance), 1..10 components chosen by BIC on the training rows, on standardised columns;
- ``kde``: Gaussian ``KernelDensity`` on standardised columns, bandwidth by 5-fold CV on at most
  5,000 training rows (grid 10^-1.5 .. 10^0.5), fitted on every training row;
- ``zuko_nsf`` / ``zuko_maf``: ``zuko.flows.NSF(d)`` / ``zuko.flows.MAF(d)`` with zuko's defaults
  (3 autoregressive transforms, hidden (64, 64), NSF 8 bins), standardised columns, Adam lr 1e-3,
  batch 256, a seeded 10 % validation split of the training rows evaluated every 50 steps, stopped
  by the wall budget or 20 evaluations without improvement; the best-validation weights are scored.

The standardisation (training mean, population std) is fitted on the training rows; its log-det
``sum(log std)`` is added back, so every NLL is in the original units.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

KDE_CV_ROWS = 5_000
GMM_MAX_COMPONENTS = 10
GMM_REG_COVAR = 1e-6  # on standardised columns: 1e-6 of every column's variance
DRAWS = 5  # dequantization draws per test row of a table with discrete columns (realnvp's evaluate takes 10)
ZUKO_LR, ZUKO_BATCH, ZUKO_EVAL_EVERY, ZUKO_PATIENCE, ZUKO_VAL_FRACTION = 1e-3, 256, 50, 20, 0.1

Result = tuple[np.ndarray, dict[str, Any]]


def standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Training mean and population std (a constant column gets std 1) and ``sum(log std)``."""
    loc, scale = train.mean(0), train.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    return loc, scale, float(np.log(scale).sum())


def gaussian_rows(test: np.ndarray, loc: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Per-row NLL (nats) of ``test`` under N(loc, cov), in float64 through a Cholesky factor."""
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (test - loc).T)
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return 0.5 * ((z**2).sum(0) + log_det + test.shape[1] * math.log(2 * math.pi))


def gaussian(train: np.ndarray, test: np.ndarray, seed: int, budget_s: float) -> Result:
    """The maximum-likelihood full-covariance Gaussian, exact in float64."""
    loc = train.mean(0)
    cov = (train - loc).T @ (train - loc) / len(train)
    return gaussian_rows(test, loc, cov), {}


def shrinkage(train: np.ndarray, test: np.ndarray, seed: int, budget_s: float) -> Result:
    """Ledoit-Wolf shrinkage of the correlation matrix (standardised columns)."""
    from sklearn.covariance import LedoitWolf

    loc, scale, log_scale = standardise(train)
    lw = LedoitWolf().fit((train - loc) / scale)
    nll = gaussian_rows((test - loc) / scale, lw.location_, lw.covariance_) + log_scale
    return nll, {"shrinkage": float(lw.shrinkage_)}


def gmm(train: np.ndarray, test: np.ndarray, seed: int, budget_s: float) -> Result:
    """Full-covariance Gaussian mixture, 1..10 components by BIC, on standardised columns."""
    from sklearn.mixture import GaussianMixture

    loc, scale, log_scale = standardise(train)
    z_train, z_test = (train - loc) / scale, (test - loc) / scale
    dim = train.shape[1]
    best, bics = None, {}
    for k in range(1, GMM_MAX_COMPONENTS + 1):
        if k * (dim + dim * (dim + 1) / 2 + 1) > len(train):  # more parameters than rows
            break
        fit = GaussianMixture(k, covariance_type="full", reg_covar=GMM_REG_COVAR, random_state=seed).fit(z_train)
        bics[k] = float(fit.bic(z_train))
        if best is None or bics[k] < bics[best.n_components]:
            best = fit
    return -best.score_samples(z_test) + log_scale, {"components": best.n_components, "bic": bics}


def kde(train: np.ndarray, test: np.ndarray, seed: int, budget_s: float) -> Result:
    """Gaussian KDE on standardised columns, bandwidth by 5-fold CV on at most 5,000 rows."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    loc, scale, log_scale = standardise(train)
    z_train, z_test = (train - loc) / scale, (test - loc) / scale
    pick = np.random.RandomState(seed).permutation(len(z_train))[:KDE_CV_ROWS]
    grid = np.logspace(-1.5, 0.5, 21)
    search = GridSearchCV(KernelDensity(), {"bandwidth": grid}, cv=5).fit(z_train[pick])
    bandwidth = float(search.best_params_["bandwidth"])
    fitted = KernelDensity(bandwidth=bandwidth).fit(z_train)
    edge = bool(bandwidth in (grid[0], grid[-1]))
    return -fitted.score_samples(z_test) + log_scale, {"bandwidth": bandwidth, "bandwidth_at_grid_edge": edge}


def zuko_flow(kind: str) -> Callable[..., Result]:
    """The ``zuko_nsf`` / ``zuko_maf`` contender: zuko's documented defaults, early stopping."""

    def run(train: np.ndarray, test: np.ndarray, seed: int, budget_s: float) -> Result:
        import torch
        import zuko

        torch.set_num_threads(2)
        torch.manual_seed(seed)
        loc, scale, log_scale = standardise(train)
        z = (train - loc) / scale
        order = np.random.RandomState(seed).permutation(len(z))
        n_val = max(1, int(round(ZUKO_VAL_FRACTION * len(z))))
        fit_rows = torch.tensor(z[order[n_val:]], dtype=torch.float32)
        val_rows = torch.tensor(z[order[:n_val]], dtype=torch.float32)
        flow = (zuko.flows.NSF if kind == "nsf" else zuko.flows.MAF)(train.shape[1])
        info = train_zuko(flow, fit_rows, val_rows, seed, budget_s)
        with torch.no_grad():
            nll = -flow().log_prob(torch.tensor((test - loc) / scale, dtype=torch.float32)).double().numpy()
        return nll + log_scale, info

    return run


def train_zuko(flow: Any, fit_rows: Any, val_rows: Any, seed: int, budget_s: float) -> dict[str, Any]:
    """Adam on ``fit_rows`` until the budget or the patience runs out; loads the best-validation
    weights into ``flow`` and returns the training record."""
    import torch

    optimiser = torch.optim.Adam(flow.parameters(), lr=ZUKO_LR)
    batch = min(ZUKO_BATCH, len(fit_rows))
    gen = torch.Generator().manual_seed(seed)
    start, step, best, best_state, best_step, since, stop = time.perf_counter(), 0, math.inf, None, 0, 0, "budget"
    perm, at = torch.randperm(len(fit_rows), generator=gen), 0
    while time.perf_counter() - start < budget_s:
        if at + batch > len(fit_rows):
            perm, at = torch.randperm(len(fit_rows), generator=gen), 0
        loss = -flow().log_prob(fit_rows[perm[at:at + batch]]).mean()
        at += batch
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % ZUKO_EVAL_EVERY:
            continue
        with torch.no_grad():
            val = float(-flow().log_prob(val_rows).mean())
        if math.isfinite(val) and val < best:
            best, best_state, best_step, since = val, copy.deepcopy(flow.state_dict()), step, 0
        else:
            since += 1
            if since >= ZUKO_PATIENCE:
                stop = "patience"
                break
    with torch.no_grad():  # the last weights, if they beat every evaluation (or none happened)
        last = float(-flow().log_prob(val_rows).mean())
    if best_state is not None and not (math.isfinite(last) and last < best):
        flow.load_state_dict(best_state)
    elif math.isfinite(last):
        best, best_step = last, step
    return {"steps": step, "best_step": best_step, "best_val_nll_std": best, "stop": stop,
            "train_s": round(time.perf_counter() - start, 1), "batch": batch}


def lattice_steps(x: np.ndarray) -> np.ndarray:
    """Each column's lattice step (1, 0.1, 0.01 or 0.001: every value a multiple of it, the values at least
    one step apart, the step resolved by float32 at the column's size), 0 for a continuous column.
    Written here, apart from realnvp's own detection (data/columns.py), to the same rule."""
    steps = np.zeros(x.shape[1])
    for j, column in enumerate(x.T):
        for step in (1.0, 0.1, 0.01, 0.001):
            ratio = column / step
            on_lattice = np.all(np.abs(ratio - np.round(ratio)) <= 1e-6 * np.maximum(1.0, np.abs(ratio)))
            resolved = np.abs(column).max() * 2.0**-23 <= step / 16  # float32 tells the lattice's values apart
            if np.ptp(column) >= step and on_lattice and resolved:
                steps[j] = step
                break
    return steps


def dequantized_contender(fit_and_score: Any, train: np.ndarray, test: np.ndarray, seed: int,
                          budget: float) -> tuple[np.ndarray, dict[str, Any]]:
    """A contender on the variable realnvp models: discrete columns spread over their lattice cells
    (``x + step u``), the training rows once, each test row ``DRAWS`` times, its NLL averaged over the
    draws (the bound on the discrete probability that realnvp's ``evaluate`` reports). Continuous
    tables are scored as they are."""
    steps = lattice_steps(train)
    if not steps.any():
        return fit_and_score(train, test, seed, budget)
    rng = np.random.default_rng(1000 + seed)
    noisy_train = train + steps * rng.random(train.shape)
    draws = np.concatenate([test + steps * rng.random(test.shape) for _ in range(DRAWS)])
    nll, extra = fit_and_score(noisy_train, draws, seed, budget)
    return nll.reshape(DRAWS, len(test)).mean(0), {**extra, "lattice_steps": steps.tolist()}


CONTENDERS: dict[str, Callable[..., Result]] = {
    "gaussian": gaussian, "shrinkage": shrinkage, "gmm": gmm, "kde": kde,
    "zuko_nsf": zuko_flow("nsf"), "zuko_maf": zuko_flow("maf"),
}
