"""Where the time of one image training step goes (issue 4, item 1, image part): for an image preset
(default ``mnist-cpu``, the one the mnist10k protocol trains) ms/step, images/s, peak memory, the
step's FLOPs over its time as a fraction of this machine's fp32 peak, and what the model's own
convolution shapes can reach at best on this CPU (the ceiling), with and without ``torch.compile``, and
with the s/t networks in bf16 autocast (variants ``bf16``, ``compile-bf16``; for CPUs with AVX512_BF16/AMX),
and in channels-last layout (suffix ``-cl``: ``eager-cl``, ``compile-cl``).

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src /tmp/peers-venv/bin/python \\
        -m benchmarks.profile_images --preset mnist-cpu --variants eager,compile

Parts, each printed as markdown:
1. peak: the fp32 rate of a 2048^3 sgemm (MKL), the same figure ``profile_moons`` uses;
2. the step: FLOPs of one forward + backward counted by ``torch.utils.flop_counter`` (convolutions and
   matmuls; elementwise work is not counted, as in the usual MFU figures), median ms/step, images/s,
   peak resident memory, achieved GFLOP/s and its fraction of the peak, per variant (eager, compile);
3. the ceiling: every distinct convolution of the model timed alone at the step's batch size (forward,
   input gradient, weight gradient), its GFLOP/s, and the step's FLOPs over the sum of those times:
   the best any implementation of this model could do with these kernels;
4. a ``torch.profiler`` breakdown of the eager step by kind of op.

Random images of the preset's shape stand in for the data: timing does not depend on pixel values.
"""

import argparse
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.harness import median_seconds, print_by_kind, self_time_by_kind
from realnvp.config import load_config
from realnvp.models import build_model
from realnvp.training import make_optimizer, train_step

SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "celeba": (3, 64, 64)}
KINDS = {"aten::mkldnn_convolution": "convolution fwd", "aten::convolution_backward": "convolution bwd",
         "aten::_fused_adam_": "Adam (fused)", "aten::native_batch_norm": "norms",
         "aten::native_batch_norm_backward": "norms", "aten::_weight_norm_interface": "weight norm",
         "aten::_weight_norm_interface_backward": "weight norm", "aten::mm": "matmul", "aten::addmm": "matmul"}


def peak_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / median_seconds(lambda: a @ b, 8) / 1e9


def memory_format(channels_last: bool) -> torch.memory_format:
    """NHWC when ``channels_last``, else the default NCHW."""
    return torch.channels_last if channels_last else torch.contiguous_format


def make_step(preset: str, overrides: list[str], compiled: bool,
              channels_last: bool = False) -> tuple[Callable[[], float], torch.nn.Module, int]:
    """A closure running one training step of the preset's model with the library's ``train_step`` (loss
    with the L2 on the scales, fused Adam), on random dequantized images; also the flow and the batch size.
    ``channels_last``: model and batch in NHWC layout, as training does on a GPU."""
    cfg = load_config(preset, overrides)
    torch.manual_seed(0)
    shape = SHAPES[cfg.data.name]
    flow = build_model(cfg.model, shape)
    optimizer = make_optimizer(flow, cfg)
    layout = memory_format(channels_last)
    flow.to(memory_format=layout)
    x = torch.rand(cfg.train.batch_size, *shape).contiguous(memory_format=layout)
    model = torch.compile(flow) if compiled else flow

    def step() -> float:
        return train_step(flow, optimizer, x, cfg, model).item()

    flow.train()
    return step, flow, cfg.train.batch_size


def step_flop(flow: torch.nn.Module, batch: int, shape: tuple[int, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        (-flow.log_prob(torch.rand(batch, *shape)).mean()).backward()
    flow.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def conv_shapes(flow: torch.nn.Module, batch: int, shape: tuple[int, ...]) -> dict[tuple, int]:
    """Each distinct (input shape, out channels, kernel, padding) of the model's convolutions, and how
    many times one forward runs it."""
    seen: dict[tuple, int] = defaultdict(int)

    def record(conv: torch.nn.Conv2d, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        seen[(tuple(inputs[0].shape), conv.out_channels, conv.kernel_size, conv.padding)] += 1

    hooks = [m.register_forward_hook(record) for m in flow.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        flow.log_prob(torch.rand(batch, *shape))
    for h in hooks:
        h.remove()
    return dict(seen)


def conv_cost(in_shape: tuple[int, ...], out_c: int, kernel: tuple[int, int], padding: tuple[int, int],
              channels_last: bool = False) -> tuple[int, float]:
    """FLOPs and median seconds of one convolution alone: forward, input gradient and weight gradient."""
    layout = memory_format(channels_last)
    conv = torch.nn.Conv2d(in_shape[1], out_c, kernel, padding=padding).to(memory_format=layout)
    x = torch.randn(in_shape).contiguous(memory_format=layout).requires_grad_()
    counter = FlopCounterMode(display=False)
    with counter:
        conv(x).sum().backward()
    return counter.get_total_flops(), median_seconds(lambda: conv(x).sum().backward(), 20)


def ceiling(flow: torch.nn.Module, batch: int, shape: tuple[int, ...], peak: float, flop: int) -> None:
    rows, total_s, conv_flop = [], 0.0, 0
    for (in_shape, out_c, kernel, padding), count in sorted(conv_shapes(flow, batch, shape).items()):
        f, seconds = conv_cost(in_shape, out_c, kernel, padding)
        rows.append((in_shape, out_c, kernel, count, f / seconds / 1e9, 1e3 * seconds * count))
        total_s += seconds * count
        conv_flop += f * count
    print(f"## Ceiling: the model's convolutions alone (batch {batch}, forward + both gradients)\n")
    print("| input | out channels | kernel | per forward | GFLOP/s alone | % of peak | ms per step |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for in_shape, out_c, kernel, count, rate, ms in rows:
        print(f"| {'x'.join(map(str, in_shape))} | {out_c} | {kernel[0]}x{kernel[1]} | {count} | {rate:.1f} | "
              f"{rate / peak:.0%} | {ms:.1f} |")
    print(f"\nConvolutions: {conv_flop / 1e9:.3f} of the step's {flop / 1e9:.3f} GFLOP; run alone they take "
          f"{1e3 * total_s:.1f} ms, i.e. {conv_flop / total_s / 1e9:.1f} GFLOP/s = "
          f"**{conv_flop / total_s / 1e9 / peak:.0%} of peak at best** for this model's shapes.\n")


def reference(batch: int, peak: float) -> None:
    """What this CPU's convolutions reach when they are wide: 3x3, C -> C channels at 28x28, 14x14 and 7x7,
    NCHW and channels-last; bounds any model's convolutions here, not only this one's."""
    print(f"## Reference: wide 3x3 convolutions alone (batch {batch}, forward + both gradients), % of peak\n")
    print("| channels | 28x28 | 14x14 | 7x7 | 28x28 channels-last | 7x7 channels-last |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in (16, 64, 128, 256):
        cells = []
        for size, last in ((28, False), (14, False), (7, False), (28, True), (7, True)):
            f, seconds = conv_cost((batch, c, size, size), c, (3, 3), (1, 1), channels_last=last)
            cells.append(f"{f / seconds / 1e9 / peak:.0%}")
        print(f"| {c} | " + " | ".join(cells) + " |")
    print()


def breakdown(step: Callable[[], float], steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    print(f"## Profile of the eager step ({steps} steps, self time per kind of op)\n")
    print_by_kind(self_time_by_kind(prof, KINDS), steps)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-cpu", help="an image preset or TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--variants", default="eager,compile",
                        help="comma-separated: eager, compile, bf16, compile-bf16; -cl: channels-last, e.g. eager-cl")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: ceiling, reference, profile")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    skip = set(args.skip.split(","))
    cfg = load_config(args.preset, args.set)
    if cfg.model.kind != "image" or cfg.data.name not in SHAPES:
        raise SystemExit(f"{args.preset}: not an image preset with a known shape ({', '.join(SHAPES)})")
    shape = SHAPES[cfg.data.name]
    print(f"preset {args.preset} {' '.join(args.set)}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.2f}\n")
    peak = peak_gflops()
    print(f"fp32 peak: 2048^3 sgemm at **{peak:.1f} GFLOP/s** (2 threads)\n")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    eager, flow, batch = make_step(args.preset, args.set, compiled=False)
    flop = step_flop(flow, batch, shape)
    print(f"model: {flow.n_params():,} parameters, batch {batch}, {flop / 1e9:.3f} GFLOP per training step "
          f"(forward + backward, convolutions and matmuls)\n")
    print("| variant | first step s (compile) | median ms/step | images/s | GFLOP/s | % of peak | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.variants.split(","):
        bf16 = ["train.precision=bf16"] if name.endswith("bf16") else []  # s/t networks in bf16 autocast
        step = eager if name == "eager" else make_step(args.preset, args.set + bf16, "compile" in name,
                                                       channels_last="-cl" in name)[0]
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        seconds = median_seconds(step, args.steps, warmup=2)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, high-water mark
        print(f"| {name} | {first:.1f} | {1e3 * seconds:.1f} | {batch / seconds:.0f} | {flop / seconds / 1e9:.2f} | "
              f"{flop / seconds / 1e9 / peak:.1%} | {rss / 1024:.0f} |", flush=True)
    print(f"\n(peak RSS is the process's high-water mark; {rss0 / 1024:.0f} MiB before the model was built)\n")
    if "ceiling" not in skip:
        ceiling(flow, batch, shape, peak, flop)
    if "reference" not in skip:
        reference(batch, peak)
    if "profile" not in skip:
        breakdown(eager, args.profile_steps)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
