"""The layer-by-layer animation of Eric Jang's Real NVP tutorial (docs/tutorial.md): samples from the base
normal bent through each coupling layer in turn."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.viz.plots import _pyplot, plot_limits


def layer_names(flow: Flow) -> list[str]:
    """Names of the chain's layers in the inverse (latent -> data) order the animation follows.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> layer_names(build_vector_flow(dim=2, n_couplings=2, hidden=(8,), batch_norm=True))
        ['AffineCoupling', 'BatchNormFlow', 'AffineCoupling']
    """
    return [type(layer).__name__ for layer in reversed(flow.chain.layers)]


def animate(flow: Flow, path: str | Path, n: int = 2000, frames_per_layer: int = 10, seed: int = 0,
            data: np.ndarray | None = None, context: torch.Tensor | np.ndarray | None = None) -> None:
    """Write ``path`` (.gif, or .mp4 where ffmpeg is present): ``n`` base samples moving from the
    latent through each coupling layer's inverse to data space, interpolating linearly between them
    (a conditional flow's samples given ``context``: one, or one per sample).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> animate(build_vector_flow(dim=2, n_couplings=2, hidden=(8,)), tmp / "layers.gif", n=100,
        ...         frames_per_layer=2)
        >>> (tmp / "layers.gif").read_bytes()[:6]
        b'GIF89a'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UserError(f"animation output must end in .gif or .mp4, got {path.name!r}")
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        raise UserError("writing .mp4 needs ffmpeg on PATH; write a .gif instead")
    torch.manual_seed(seed)
    flow.eval()
    z = flow.sample_latent(n)
    trace = [z] + [step.output for step in flow.trace(z, inverse=True, context=context)]
    # One stage per coupling: fixed affine and batch-norm layers ride along with the next coupling
    # (they only rescale), and the last stage is always the data space.
    stages = [0] + [i for i, name in enumerate(layer_names(flow), 1) if "Coupling" in name]
    stages = stages if stages[-1] == len(trace) - 1 else [*stages, len(trace) - 1]
    states = [trace[i][:, :2].cpu().numpy() for i in stages]
    names = ["base N(0, I)"] + [f"after coupling {k}" for k in range(1, len(stages))]
    names[-1] = "data space"
    plt = _pyplot()
    from matplotlib.animation import FFMpegWriter, PillowWriter

    # One fixed frame for the whole animation: the union of every stage's bulk.
    xlim, ylim = plot_limits(np.concatenate(states + ([data[:, :2]] if data is not None else [])))
    fig, ax = plt.subplots(figsize=(5, 5))
    colors = plt.get_cmap("viridis")(np.linspace(0, 1, n)[np.argsort(np.argsort(states[0][:, 0]))])
    scatter = ax.scatter(states[0][:, 0], states[0][:, 1], s=3, c=colors, linewidths=0)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal", adjustable="box")
    title = ax.set_title(names[0])
    hold = frames_per_layer // 2
    schedule = [(0, 0.0)] * hold
    for k in range(len(states) - 1):
        schedule += [(k, (f + 1) / frames_per_layer) for f in range(frames_per_layer)] + [(k, 1.0)] * hold

    def draw(frame: int) -> tuple:
        k, a = schedule[frame]
        scatter.set_offsets((1 - a) * states[k] + a * states[k + 1] if a > 0 else states[k])
        title.set_text(names[k + 1] if a >= 1.0 else names[k])
        return (scatter, title)

    writer = PillowWriter(fps=15) if suffix == ".gif" else FFMpegWriter(fps=15)
    try:
        # The writer's own loop: FuncAnimation.save would draw every frame twice (once to show it, once to
        # grab it), and drawing is nearly all of an animation's time. The frames are the same.
        with writer.saving(fig, path, dpi=80):
            for frame in range(len(schedule)):
                draw(frame)
                writer.grab_frame()
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
