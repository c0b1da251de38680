"""Invertible layers: one contract (``Bijector``), composed by ``Chain``."""

from realnvp.bijectors.base import Bijector, Chain, Standardize
from realnvp.bijectors.coupling import AffineCoupling, MaskedAffineCoupling, TanhScale
from realnvp.bijectors.masks import alternating_mask, channel_mask, checkerboard_mask, half_mask, random_mask
from realnvp.bijectors.normalization import BatchNormFlow

__all__ = [
    "AffineCoupling",
    "BatchNormFlow",
    "Bijector",
    "Chain",
    "MaskedAffineCoupling",
    "Standardize",
    "TanhScale",
    "alternating_mask",
    "channel_mask",
    "checkerboard_mask",
    "half_mask",
    "random_mask",
]
