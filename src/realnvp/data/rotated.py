"""A 2-D density whose shape depends on a known context, for conditional flows: the two moons turned
about their centre by an angle ``theta ~ U[0, pi)``. The moons are built as a known continuous mixture
(a uniform point on one of two half circles, plus isotropic Gaussian noise), so ``log p(x | theta)``
and the conditional entropy ``H(X | theta)`` (the rotation leaves it unchanged) are computed, not guessed.
"""

from __future__ import annotations

import numpy as np

CENTRE = np.array([0.5, 0.25])  # the middle of scikit-learn's two moons (make_moons' geometry)
DEFAULT_NOISE = 0.1


def _arcs(u: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Points on make_moons' outer (``which`` 0) or inner (1) half circle at arc parameter ``u``, centred."""
    outer = np.stack([np.cos(u), np.sin(u)], -1)
    inner = np.stack([1 - np.cos(u), 0.5 - np.sin(u)], -1)
    return np.where(which[..., None] == 0, outer, inner) - CENTRE


def _rotate(points: np.ndarray, theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([c * points[:, 0] - s * points[:, 1], s * points[:, 0] + c * points[:, 1]], -1)


def rotated_moons(n: int, rng: np.random.RandomState, noise: float = -1.0) -> np.ndarray:
    """``n`` rows ``[x, y, theta]``: a noisy-moons point turned by ``theta ~ U[0, pi)`` about the moons'
    centre. Column 2 is the context (the preset sets ``data.context_columns = [2]``).

    Example:
        >>> rows = rotated_moons(5, np.random.RandomState(0))
        >>> rows.shape, bool((rows[:, 2] >= 0).all() and (rows[:, 2] < np.pi).all())
        ((5, 3), True)
    """
    sigma = DEFAULT_NOISE if noise < 0 else noise
    points = _arcs(rng.rand(n) * np.pi, rng.randint(2, size=n)) + sigma * rng.randn(n, 2)
    theta = rng.rand(n) * np.pi
    return np.concatenate([_rotate(points, theta), theta[:, None]], 1)


def rotated_moons_log_density(points: np.ndarray, theta: np.ndarray, noise: float = DEFAULT_NOISE,
                              grid: int = 2000) -> np.ndarray:
    """``log p(x | theta)`` in nats of each row of ``points`` ``[n, 2]``: the points turned back by
    ``theta`` and scored under the moons' mixture, the arc integral by the midpoint rule on ``grid``
    points per half circle (spacing ``pi / grid``, far below the noise, so the sum is the integral).

    Example:
        >>> log_p = rotated_moons_log_density(np.array([[-0.5, 0.75], [5.0, 5.0]]), np.zeros(2))
        >>> log_p.round(2).tolist()  # on the outer arc's top: log(0.5 / (pi sqrt(2 pi) 0.1)); far away
        [-0.45, -1745.88]
    """
    x = _rotate(np.asarray(points, np.float64), -np.asarray(theta, np.float64))
    u = (np.arange(grid) + 0.5) * np.pi / grid
    centres = np.concatenate([_arcs(u, np.zeros(grid, int)), _arcs(u, np.ones(grid, int))])
    out = np.empty(len(x))
    for i in range(0, len(x), 2048):  # about 2048 x 4000 distances at a time
        d2 = ((x[i : i + 2048, None, :] - centres[None]) ** 2).sum(-1)
        log_k = -d2 / (2 * noise**2)
        peak = log_k.max(1, keepdims=True)
        out[i : i + 2048] = (peak[:, 0] + np.log(np.exp(log_k - peak).mean(1))
                             - np.log(2 * np.pi * noise**2))
    return out


def rotated_moons_entropy(noise: float = DEFAULT_NOISE, n: int = 50000, seed: int = 12345) -> tuple[float, float]:
    """``(H, standard error)`` of the conditional entropy ``H(X | theta)`` in nats: Monte Carlo over
    ``n`` exact draws, ``-mean log p(x | theta)``. The best NLL any model of this data can reach.

    Example:
        >>> h, se = rotated_moons_entropy(n=2000)
        >>> 0.5 < h < 1.5 and se < 0.05
        True
    """
    rows = rotated_moons(n, np.random.RandomState(seed), noise)
    log_p = rotated_moons_log_density(rows[:, :2], rows[:, 2], noise)
    return float(-log_p.mean()), float(log_p.std() / np.sqrt(n))


def make_context_toy(name: str, n: int, seed: int, noise: float = -1.0) -> np.ndarray:
    """``n`` float32 rows of a toy whose last column is a context (``CONTEXT_TOYS``), seeded like ``make_toy``.

    Example:
        >>> make_context_toy("rotated-moons", 4, seed=0).shape
        (4, 3)
    """
    if name not in CONTEXT_TOYS:
        raise ValueError(f"unknown context toy {name!r}; known: {', '.join(CONTEXT_TOYS)}")
    return CONTEXT_TOYS[name](n, np.random.RandomState(seed), noise).astype(np.float32)


# Toys with a context column: name -> (n, rng, noise) -> rows whose last column is the context.
CONTEXT_TOYS = {"rotated-moons": rotated_moons}
