"""The colour benchmark's data (``benchmarks/colour.py`` describes it): 32x32 patches of the natural
photographs scikit-image ships, split into training windows and test cells that never overlap, and the
test bits/dim under its one fixed dequantization. Apart from the peers, so the GPU check needs only
scikit-image and realnvp."""

from __future__ import annotations

from typing import Any

import numpy as np
import skimage.data
import torch

from realnvp.evaluation.metrics import bits_per_dim, seeded_dequantizations

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
SIZE, N_TEST, LEVELS, D = 32, 600, 256, 3 * 32 * 32


def _cells(photo: np.ndarray) -> list[tuple[int, int]]:
    """Top-left corners of the photo's non-flat 32x32 grid cells."""
    h, w = photo.shape[0] // SIZE, photo.shape[1] // SIZE
    return [(SIZE * i, SIZE * j) for i in range(h) for j in range(w)
            if photo[SIZE * i: SIZE * (i + 1), SIZE * j: SIZE * (j + 1)].std() >= 4]


def make_patches() -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's train and test patches, uint8 ``[N, 32, 32, 3]`` (see ``benchmarks/colour.py``)."""
    photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
    cells = [(k, y, x) for k, photo in enumerate(photos) for y, x in _cells(photo)]
    test_cells = [cells[i] for i in sorted(np.random.RandomState(0).permutation(len(cells))[:N_TEST])]
    test = np.stack([photos[k][y: y + SIZE, x: x + SIZE] for k, y, x in test_cells])
    train = []
    for k, photo in enumerate(photos):
        blocked = np.zeros(photo.shape[:2], bool)
        for kk, y, x in test_cells:
            if kk == k:
                blocked[y: y + SIZE, x: x + SIZE] = True
        for y in range(0, photo.shape[0] - SIZE + 1, SIZE // 2):
            for x in range(0, photo.shape[1] - SIZE + 1, SIZE // 2):
                patch = photo[y: y + SIZE, x: x + SIZE]
                if not blocked[y: y + SIZE, x: x + SIZE].any() and patch.std() >= 4:
                    train.append(patch)
    return np.stack(train), test


def bpd_on_test(log_prob: Any, test: np.ndarray) -> float:
    """Bits/dim of the test patches under the fixed dequantization (first draw of RandomState(1))."""
    y = next(seeded_dequantizations(test, LEVELS, 1, seed=1)).float()
    with torch.inference_mode():
        nll = -torch.cat([log_prob(chunk).double().cpu() for chunk in y.split(200)]).mean().item()
    return bits_per_dim(nll, D, LEVELS)
