"""2-D toy densities: scikit-learn's clustering-comparison sets (noisy moons, circles, blobs, random; the
toy figures of docs/tutorial.md) and the standard flow test densities (as in FFJORD's toy data)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.datasets import make_blobs, make_circles, make_moons, make_swiss_roll


def _moons(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    return make_moons(n, noise=0.05 if noise < 0 else noise, random_state=rng)[0]


def _circles(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    return make_circles(n, factor=0.5, noise=0.05 if noise < 0 else noise, random_state=rng)[0]


def _blobs(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    # Fixed centres (sklearn's comparison example uses random_state=8); samples vary with the seed.
    centers = np.random.RandomState(8).uniform(-10, 10, size=(3, 2))
    return make_blobs(n, centers=centers, cluster_std=1.0 if noise < 0 else noise, random_state=rng)[0]


def _random(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    return rng.rand(n, 2)  # the "no structure" set: uniform on the unit square


def _eight_gaussians(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    angles = np.arange(8) * np.pi / 4
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return centers[rng.randint(8, size=n)] + (0.1 if noise < 0 else noise) * rng.randn(n, 2)


def _checkerboard(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    x1 = rng.rand(n) * 4 - 2
    x2 = rng.rand(n) - rng.randint(0, 2, n) * 2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2


def _pinwheel(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    radial_std, tangential_std, n_classes, rate = 0.3, 0.1, 5, 0.25
    angles = np.linspace(0, 2 * np.pi, n_classes, endpoint=False)
    features = rng.randn(n, 2) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    labels = rng.randint(n_classes, size=n)
    rot = angles[labels] + rate * np.exp(features[:, 0])
    rotations = np.stack([np.cos(rot), -np.sin(rot), np.sin(rot), np.cos(rot)], 1).reshape(-1, 2, 2)
    return 2 * np.einsum("ti,tij->tj", features, rotations)


def _spirals(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    t = np.sqrt(rng.rand(n // 2 + n % 2, 1)) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(t) * t + rng.rand(len(t), 1) * 0.5
    d1y = np.sin(t) * t + rng.rand(len(t), 1) * 0.5
    arm = np.hstack([d1x, d1y])
    x = np.vstack([arm, -arm])[:n] / 3
    return x + (0.1 if noise < 0 else noise) * rng.randn(*x.shape)


def _swissroll(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    x = make_swiss_roll(n, noise=1.0 if noise < 0 else noise, random_state=rng)[0]
    return x[:, [0, 2]] / 5


def _rings(n: int, rng: np.random.RandomState, noise: float) -> np.ndarray:
    radii = np.array([1.0, 2.0, 3.0, 4.0]) * 0.9
    which = rng.randint(4, size=n)
    theta = rng.rand(n) * 2 * np.pi
    r = radii[which] + (0.08 if noise < 0 else noise) * rng.randn(n)
    return np.stack([r * np.cos(theta), r * np.sin(theta)], 1)


TOY_DENSITIES: dict[str, Callable[[int, np.random.RandomState, float], np.ndarray]] = {
    "moons": _moons,
    "circles": _circles,
    "blobs": _blobs,
    "random": _random,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "spirals": _spirals,
    "swissroll": _swissroll,
    "rings": _rings,
}


def make_toy(name: str, n: int, seed: int, noise: float = -1.0) -> np.ndarray:
    """``n`` float32 points ``[n, 2]`` of the named density; ``noise < 0`` keeps its default.

    Example:
        >>> make_toy("moons", 4, seed=0).shape
        (4, 2)
    """
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; known: {', '.join(TOY_DENSITIES)}")
    return TOY_DENSITIES[name](n, np.random.RandomState(seed), noise).astype(np.float32)
