"""The Python API's edges (issue 14, item 7): what ``Flow.log_prob`` accepts, differentiable sampling,
``sample_and_log_prob``, and ``docs/api.md`` agreeing with the code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from realnvp.flow import Flow
from realnvp.models import build_image_flow, build_vector_flow

from checks import perturb_


@pytest.fixture
def flow() -> Flow:
    torch.manual_seed(0)
    return perturb_(build_vector_flow(3, n_couplings=4, hidden=(8,), loc=torch.ones(3), scale=torch.full((3,), 2.0)),
                    scale=0.3).eval()


def test_log_prob_takes_numpy_float64_lists_and_one_example(flow):
    x = np.random.RandomState(0).randn(5, 3)  # float64
    expected = flow.log_prob(torch.from_numpy(x).float())
    torch.testing.assert_close(flow.log_prob(x), expected)
    torch.testing.assert_close(flow.log_prob(torch.from_numpy(x)), expected)  # a float64 tensor
    torch.testing.assert_close(flow.log_prob(x.tolist()), expected)
    integers = np.arange(6).reshape(2, 3)
    torch.testing.assert_close(flow.log_prob(integers), flow.log_prob(torch.from_numpy(integers).float()))
    one = flow.log_prob(x[2])
    assert one.shape == () and torch.allclose(one, expected[2])
    assert flow.log_prob(x).dtype == torch.float32


def test_log_prob_keeps_a_float64_flow_in_float64(flow):
    flow = flow.double()
    assert flow.dtype == torch.float64 and flow.log_prob(np.zeros((2, 3), np.float32)).dtype == torch.float64


@pytest.mark.parametrize("shape", [(2,), (4,), (2, 2), (1, 3, 1)])
def test_a_wrong_shape_names_the_expected_one(flow, shape):
    with pytest.raises(ValueError) as info:
        flow.log_prob(np.zeros(shape))
    assert str(info.value) == f"expected one example of shape (3,) or a batch [N, 3], got shape {shape}"


def test_log_prob_refuses_integer_pixels_for_an_image_flow():
    images = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1).eval()
    assert images.log_prob(np.full((1, 4, 4), 0.5)).shape == ()
    with pytest.raises(ValueError, match=r"dequantized pixels in \[0, 1\).*n_levels"):
        images.log_prob(np.zeros((2, 1, 4, 4), np.uint8))


def test_sample_and_log_prob_equals_log_prob_of_the_samples(flow):
    torch.manual_seed(1)
    x, log_p = flow.sample_and_log_prob(200, temperature=0.8)
    assert x.shape == (200, 3) and log_p.shape == (200,)
    torch.testing.assert_close(log_p, flow.log_prob(x), atol=1e-4, rtol=1e-5)
    torch.manual_seed(1)
    torch.testing.assert_close(flow.sample(200, temperature=0.8), x.detach())  # the same draws as sample()


def test_rsample_carries_gradients_and_sample_does_not(flow):
    x = flow.rsample(16)
    assert x.requires_grad and not flow.sample(16).requires_grad
    x.square().mean().backward()
    grads = [p.grad for p in flow.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    flow.zero_grad()
    _, log_p = flow.sample_and_log_prob(16)
    (-log_p.mean()).backward()  # e.g. a reverse-KL objective
    assert any(p.grad.abs().sum() > 0 for p in flow.parameters())


def test_device_and_dtype(flow):
    assert flow.device == torch.device("cpu") and flow.dtype == torch.float32
    assert flow.sample_latent(2).device == flow.device


def test_api_doc_describes_inverse_as_it_is():
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    assert re.search(r"`inverse\(z\)` \| latent -> data: `x` only", text)
    for gone in ("inverse_trace", "forward_trace", "inverse_steps", "channel_mask"):
        assert gone not in text, gone
    flow = build_vector_flow(2, n_couplings=2, hidden=(4,))
    assert isinstance(flow.inverse(torch.zeros(1, 2)), torch.Tensor)  # x alone, as the doc says
