"""Invertible layers: one contract (``Bijector``), composed by ``Chain``."""

from realnvp.bijectors.base import Bijector, Chain, Standardize, Step
from realnvp.bijectors.coupling import AffineCoupling, Coupling, MaskedAffineCoupling, TanhScale
from realnvp.bijectors.linear import InvertibleLinear
from realnvp.bijectors.masks import (
    alternating_mask,
    checkerboard_mask,
    half_mask,
    random_mask,
    squeezed_checkerboard_mask,
)
from realnvp.bijectors.normalization import BatchNormFlow, Whiten
from realnvp.bijectors.preprocessing import Logit, dequantize, random_hflip
from realnvp.bijectors.reshape import FactorOut, Squeeze, Unsqueeze
from realnvp.bijectors.spline import SplineCoupling, rational_quadratic_spline

__all__ = [
    "AffineCoupling",
    "BatchNormFlow",
    "Bijector",
    "Chain",
    "Coupling",
    "FactorOut",
    "InvertibleLinear",
    "Logit",
    "MaskedAffineCoupling",
    "SplineCoupling",
    "Squeeze",
    "Standardize",
    "Step",
    "TanhScale",
    "Unsqueeze",
    "Whiten",
    "alternating_mask",
    "checkerboard_mask",
    "squeezed_checkerboard_mask",
    "dequantize",
    "half_mask",
    "random_hflip",
    "random_mask",
    "rational_quadratic_spline",
]
