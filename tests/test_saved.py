"""One file per flow (issue "The library for PyTorch users"): ``flow.save(path)`` then
``realnvp.load(path)`` gives the same densities, for vector, image and trained table flows, read
without running code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import realnvp
from realnvp.bijectors import Chain, Standardize
from realnvp.cli import main
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models import build_image_flow, build_vector_flow


def _perturbed(flow: Flow) -> Flow:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow.eval()


def test_a_conditional_spline_vector_flow_round_trips(tmp_path):
    flow = _perturbed(build_vector_flow(dim=3, n_couplings=3, hidden=(8,), context_size=2, coupling="spline",
                                        loc=torch.ones(3), scale=2 * torch.eye(3), linear=True))
    flow.save(tmp_path / "flow.pt")
    loaded = realnvp.load(tmp_path / "flow.pt")
    x, c = torch.randn(6, 3), torch.randn(6, 2)
    assert torch.equal(loaded.log_prob(x, c), flow.log_prob(x, c)) and not loaded.training


def test_a_class_conditional_image_flow_round_trips(tmp_path):
    flow = _perturbed(build_image_flow((1, 8, 8), n_scales=2, feature_maps=4, n_blocks=1, n_classes=3))
    flow.save(tmp_path / "image.pt")
    y, labels = torch.rand(2, 1, 8, 8) * 0.9 + 0.05, torch.tensor([0, 2])
    assert torch.equal(realnvp.load(tmp_path / "image.pt").log_prob(y, labels), flow.log_prob(y, labels))


def test_a_trained_table_flow_keeps_its_columns_and_defensive_share(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=300), rng.lognormal(size=300), rng.poisson(3, 300)]
    np.save(tmp_path / "t.npy", rows)
    main(["train", "--data", str(tmp_path / "t.npy"), "--out", str(tmp_path / "run"), "--steps", "20",
          "--no-pictures", "--quiet", "--set", "model.hidden=8"])
    flow = realnvp.load(tmp_path / "run")
    flow.save(tmp_path / "table.pt")
    loaded = realnvp.load(tmp_path / "table.pt")
    x = torch.from_numpy(rows[:20]).float() + 0.5
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))
    assert torch.equal(loaded.lattice, flow.lattice) and float(loaded.defensive_weight) == float(flow.defensive_weight)


def test_other_files_and_hand_made_flows_are_refused(tmp_path):
    main(["train", "moons", "--out", str(tmp_path / "run"), "--steps", "5", "--no-pictures", "--quiet",
          "--set", "model.hidden=4", "--set", "data.n_train=200"])
    with pytest.raises(UserError, match="is not a flow saved by Flow.save"):
        realnvp.load(tmp_path / "run" / "best.pt")
    hand_made = Flow(Chain([Standardize(torch.zeros(2), torch.ones(2))]), (2,))
    with pytest.raises(ValueError, match="not made by a realnvp builder"):
        hand_made.save(tmp_path / "x.pt")


def test_a_flow_from_a_custom_loop_becomes_a_run_every_command_takes(tmp_path):
    """Issue 'The library for PyTorch users', done when: built and trained in a user's own loop, saved,
    then evaluated, sampled, scored and reported by the command line in fresh processes."""
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    a = rng.normal(size=600)
    rows = np.c_[a, a**2 + 0.3 * rng.normal(size=600), rng.poisson(2.0, 600)]
    flow = realnvp.from_data(rows[:500], hidden=(16,), n_couplings=2)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
    x = torch.from_numpy(rows[:500]).float() + torch.from_numpy(np.c_[np.zeros((500, 2)), np.full(500, 0.5)]).float()
    before = -flow.log_prob(x).mean().item()
    for _ in range(60):
        loss = -flow.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert -flow.log_prob(x).mean().item() < before
    flow.save(tmp_path / "mine.pt")
    run = realnvp.save_run(realnvp.load(tmp_path / "mine.pt"), tmp_path / "run", rows[:500], rows[500:],
                           names=("a", "b", "count"))
    np.save(tmp_path / "points.npy", rows[:7])
    for argv in (["evaluate", str(run), "--json"], ["sample", str(run), "-n", "50", "-o", str(tmp_path / "s.csv")],
                 ["score", str(run), str(tmp_path / "points.npy"), "-o", str(tmp_path / "scores.csv")],
                 ["report", str(run)]):
        done = subprocess.run([sys.executable, "-m", "realnvp", *argv], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "a,b,count"
    assert len((tmp_path / "scores.csv").read_text().splitlines()) == 8 and (run / "report.html").exists()
