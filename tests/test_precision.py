"""bf16 autocast touches only the s/t networks: log-dets stay float32 and training learns as in float32."""

import torch
from tiny import TINY, untrained_nll

from realnvp.config import load_config
from realnvp.models import build_model, build_vector_flow
from realnvp.training import make_optimizer, train_step
from realnvp.training.loop import train


def test_bf16_autocast_keeps_flow_maths_in_float32():
    torch.manual_seed(0)
    flow = build_vector_flow(3, n_couplings=4, hidden=(16,), batch_norm=True)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(64, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, log_det = flow(x)
    assert z.dtype == torch.float32 and log_det.dtype == torch.float32
    z32, log_det32 = flow.eval()(x)
    # Only the conditioners lost precision: the result is close to, not equal to, the float32 one.
    assert 0 < (log_det - log_det32).abs().max().item() < 0.1


def test_bf16_training_learns_as_fp32_does(tmp_path):
    """60 steps in bf16 bring the validation NLL well below the untrained model's (~2.01 -> ~1.60), to
    within 0.05 nats of the same run in float32."""
    settings = [*TINY, "model.hidden=32,32", "model.n_couplings=4", "train.steps=60"]
    quiet = {"progress": False, "log": lambda *a: None}
    bf16 = train(load_config("moons", [*settings, "train.precision=bf16"]), tmp_path / "bf16", **quiet)
    fp32 = train(load_config("moons", settings), tmp_path / "fp32", **quiet)
    # "auto" (the GPU presets' setting) is bf16 on a CUDA GPU only: on this CPU it trains exactly as fp32.
    auto = train(load_config("moons", [*settings, "train.precision=auto"]), tmp_path / "auto", **quiet)
    assert auto.best_val_nll == fp32.best_val_nll != bf16.best_val_nll
    lines = [line for line in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines() if "val_nll" in line]
    assert bf16.step == 60 and len(lines) == 3
    assert bf16.best_val_nll < untrained_nll(tmp_path / "bf16", "val") - 0.3
    assert abs(bf16.best_val_nll - fp32.best_val_nll) < 0.05


def test_training_steps_flush_denormals_unless_told_not_to_and_restore_the_callers_mode():
    """train.flush_denormal (default on) flushes denormal floats to zero inside the step, as XLA does;
    off, a denormal survives the forward; either way the caller's mode is back afterwards."""
    seen = []
    cfg = load_config("moons", ["model.hidden=8"])
    flow = build_model(cfg.model, (2,))
    flow.register_forward_hook(lambda *_: seen.append((torch.tensor([1e-39]) * 1.0).item()))
    for caller_flushes in (False, True):
        torch.set_flush_denormal(caller_flushes)
        try:
            for flush in (False, True):
                cfg = load_config("moons", ["model.hidden=8", f"train.flush_denormal={str(flush).lower()}"])
                train_step(flow, make_optimizer(flow, cfg), torch.randn(16, 2), cfg)
                assert (seen[-1] == 0.0) is (flush or caller_flushes)
                assert ((torch.tensor([1e-39]) * 1.0).item() == 0.0) is caller_flushes
        finally:
            torch.set_flush_denormal(False)
