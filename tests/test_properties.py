"""Property-based tests (hypothesis) of the vector bijectors: for random dimensions, batch sizes,
masks, parameters and input values, each layer either passes the shared battery (round trip, log-det
against the float64 autograd Jacobian, forward/inverse log-dets cancel, gradients reach every
parameter) or refuses its settings with a ValueError that says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from realnvp.bijectors import AffineCoupling, BatchNormFlow, Standardize, alternating_mask, half_mask, random_mask
from realnvp.models import build_vector_flow
from realnvp.nets import MLP

from checks import check_bijector, perturb_

FAST = settings(max_examples=30, deadline=None)
MASKS = {"alternating": lambda d, g: alternating_mask(d, 0), "half": lambda d, g: half_mask(d, 1),
         "random": random_mask}


@st.composite
def batches(draw, min_dim=1, max_dim=6, max_batch=8, bound=1e3):
    """A float64 batch ``[B, D]`` with values anywhere in ``[-bound, bound]`` (zeros, repeats, mixed scales)."""
    dim = draw(st.integers(min_dim, max_dim))
    batch = draw(st.integers(1, max_batch))
    values = draw(arrays(np.float64, (batch, dim), elements=st.floats(-bound, bound, allow_subnormal=False)))
    return torch.from_numpy(values)


@FAST
@given(x=batches(), mask=st.sampled_from(sorted(MASKS)), hidden=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_affine_coupling(x, mask, hidden, seed):
    dim = x.shape[1]
    if dim < 2:
        with pytest.raises(ValueError, match="a coupling layer needs at least 2 dimensions, got 1"):
            MASKS[mask](dim, torch.Generator().manual_seed(seed))
        return
    m = MASKS[mask](dim, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    layer = perturb_(AffineCoupling(m, MLP(int(m.sum()), 2 * int((~m).sum()), hidden=(hidden,))), seed=seed)
    check_bijector(layer, x, atol=1e-7)
    with torch.no_grad():
        assert torch.equal(layer.double()(x)[0][:, m], x[:, m])  # the passing half is untouched


@FAST
@given(dim=st.integers(1, 6), passing=st.sampled_from(["all", "none"]))
def test_affine_coupling_rejects_a_one_sided_mask(dim, passing):
    mask = torch.full((dim,), passing == "all")
    with pytest.raises(ValueError, match="needs a 1-D mask with both passing and transformed coordinates"):
        AffineCoupling(mask, MLP(dim, 2 * dim, hidden=(4,)))


@FAST
@given(x=batches(), momentum=st.floats(-0.5, 1.5))
def test_batch_norm(x, momentum):
    if not 0 < momentum <= 1:
        with pytest.raises(ValueError, match=r"batch-norm momentum must be in \(0, 1\]"):
            BatchNormFlow((x.shape[1],), momentum=momentum)
        return
    check_bijector(BatchNormFlow((x.shape[1],), momentum=momentum), x, atol=1e-7, eval_matches_train=False)


@FAST
@given(x=batches(), loc=st.floats(-1e3, 1e3), scale=st.one_of(st.floats(-10, 0), st.floats(1e-6, 1e3)))
def test_standardize(x, loc, scale):
    """Scales from 1e-6 (the floor training puts on a column's std) upwards, or a refusal."""
    loc_, scale_ = (torch.full((x.shape[1],), v, dtype=torch.float64) for v in (loc, scale))
    if scale <= 0:
        with pytest.raises(ValueError, match="Standardize needs a strictly positive scale"):
            Standardize(loc_, scale_)
        return
    check_bijector(Standardize(loc_, scale_), x, atol=1e-7)


@FAST
@given(x=batches(bound=50.0), depth=st.integers(1, 5), mask=st.sampled_from(sorted(MASKS)),
       batch_norm=st.booleans(), seed=st.integers(0, 2**16))
def test_whole_vector_flow(x, depth, mask, batch_norm, seed):
    """A whole chain: round trip, log-det and log-density against autograd, or a clear refusal."""
    dim = x.shape[1]
    torch.manual_seed(seed)
    if dim < 2:
        with pytest.raises(ValueError, match="at least 2 dimensions"):
            build_vector_flow(dim, depth, hidden=(8,), mask=mask, batch_norm=batch_norm, mask_seed=seed)
        return
    flow = build_vector_flow(dim, depth, hidden=(8,), mask=mask, batch_norm=batch_norm, mask_seed=seed,
                             loc=torch.zeros(dim), scale=torch.full((dim,), 2.0))
    perturb_(flow, scale=0.2, seed=seed)
    check_bijector(flow.chain, x, atol=1e-6, eval_matches_train=not batch_norm)
    flow = flow.double().eval()
    z, log_det = flow(x)
    log_normal = -0.5 * (z**2).sum(-1) - 0.5 * dim * np.log(2 * np.pi)
    torch.testing.assert_close(flow.log_prob(x), log_normal + log_det)


@FAST
@given(dim=st.integers(2, 5), wrong=st.integers(1, 7), batch=st.integers(1, 4))
def test_flow_rejects_examples_of_another_shape(dim, wrong, batch):
    flow = build_vector_flow(dim, 2, hidden=(4,))
    x = torch.zeros(batch, wrong)
    if wrong == dim:
        assert flow.log_prob(x).shape == (batch,)
        return
    with pytest.raises(ValueError, match=rf"expected one example of shape \({dim},\) or a batch \[N, {dim}\], "
                                         rf"got shape \({batch}, {wrong}\)$"):
        flow.log_prob(x)
    with pytest.raises(ValueError, match=rf"expected a batch \[N, {dim}\] of examples, got shape \({batch}, {wrong}\)"):
        flow(x)
