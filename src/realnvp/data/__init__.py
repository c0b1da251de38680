"""Datasets: 2-D toy densities, the user's own vectors, and splits."""

from realnvp.data.images import IMAGE_DATASETS, load_images
from realnvp.data.splits import Splits, load_splits
from realnvp.data.toy import TOY_DENSITIES, make_toy
from realnvp.data.vectors import read_vectors

__all__ = ["IMAGE_DATASETS", "TOY_DENSITIES", "Splits", "load_images", "load_splits", "make_toy", "read_vectors"]
