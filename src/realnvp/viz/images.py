"""Pictures of a trained image flow: sample grids, what each scale encodes (paper, appendix D) and
base samples turning into images layer by layer. Pillow only; no matplotlib needed. Every picture
carries its title (and column headers) drawn above it and as PNG metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from realnvp.bijectors import Logit
from realnvp.bijectors.reshape import unsqueeze_to
from realnvp.errors import UserError
from realnvp.flow import Flow
from realnvp.models import latent_scale_map


def grid(images: np.ndarray, ncol: int = 0, pad: int = 1, zoom: int = 1) -> np.ndarray:
    """Images ``[N, C, H, W]`` with values in ``[0, 1]`` tiled into one ``uint8`` picture
    (``[rows*H, cols*W]`` for one channel, ``[..., 3]`` for three), ``zoom`` times larger.

    Example:
        >>> grid(np.zeros((6, 1, 4, 4)), ncol=3).shape
        (11, 16)
    """
    n, c, h, w = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    canvas = np.ones((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), dtype=np.float32)
    for i, img in enumerate(np.clip(images, 0.0, 1.0)):
        r, q = divmod(i, ncol)
        canvas[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = img
    canvas = canvas.repeat(zoom, 1).repeat(zoom, 2)
    out = (canvas * 255 + 0.5).astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


THUMBNAIL = 128  # pixels: scales.png shows each image at least this tall (an 8x8 digit 16 times, CIFAR 4 times)


def _zoom_for(height: int) -> int:
    return max(1, 64 // height)


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(text: str, width: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> list[str]:
    """``text`` broken into lines of at most ``width`` pixels (a word longer than that keeps its line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def labelled(picture: np.ndarray, title: str, headers: list[str] | None = None, rows: list[str] | None = None,
             one_line: bool = False) -> np.ndarray:
    """``picture`` (``uint8``, grey or RGB, from ``grid``) with ``title`` written above it and, when
    given, one header per column of tiles (equal widths) between the title and the tiles, and one label
    per row of tiles (equal heights) in a margin on the left. ``one_line``: the title is not wrapped;
    the picture is widened (white on the right) where the title is wider.

    Example:
        >>> picture = grid(np.zeros((4, 1, 8, 8)), ncol=2, zoom=8)
        >>> labelled(picture, "two columns", ["left", "right"]).shape[1:] == picture.shape[1:]
        True
        >>> labelled(picture, "two rows", rows=["class 0", "class 1"]).shape[1] > picture.shape[1]
        True
    """
    font, line = _font(), 15
    margin = int(max(font.getlength(r) for r in rows)) + 10 if rows else 0
    width = margin + picture.shape[1]
    if one_line:
        width = max(width, int(font.getlength(title)) + 10)
    title_lines = [title] if one_line else _wrap(title, width - 8, font)
    column = picture.shape[1] / len(headers) if headers else picture.shape[1]
    header_lines = [_wrap(h, int(column) - 4, font) for h in headers or []]
    top = 4 + line * len(title_lines) + (line * max(map(len, header_lines)) + 4 if header_lines else 0)
    mode = "L" if picture.ndim == 2 else "RGB"
    canvas = Image.new(mode, (width, top + picture.shape[0]), 255 if mode == "L" else "white")
    canvas.paste(Image.fromarray(picture), (margin, top))
    draw = ImageDraw.Draw(canvas)
    ink = 0 if mode == "L" else "black"
    for k, text in enumerate(title_lines):
        draw.text((4, 2 + k * line), text, fill=ink, font=font)
    for c, lines in enumerate(header_lines):
        for k, text in enumerate(lines):
            x = margin + c * column + (column - font.getlength(text)) / 2
            draw.text((max(x, 0), 4 + line * (len(title_lines) + k)), text, fill=ink, font=font)
    for r, text in enumerate(rows or []):
        y = top + (r + 0.5) * picture.shape[0] / len(rows) - line / 2
        draw.text((margin - 6 - font.getlength(text), y), text, fill=ink, font=font)
    return np.asarray(canvas)


def save_png(picture: np.ndarray, path: str | Path, title: str = "") -> None:
    """Write a ``uint8`` picture (from ``grid``) as PNG, ``title`` in its metadata; an unwritable
    path is a ``UserError``.

    Example:
        >>> save_png(grid(np.ones((4, 1, 8, 8))), tmp / "ones.png", title="ones")
        >>> Image.open(tmp / "ones.png").text["Title"]
        'ones'
    """
    info = PngInfo()
    if title:
        info.add_text("Title", title)
    try:
        Image.fromarray(picture).save(path, format="PNG", pnginfo=info)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def _to_pixels(flow: Flow, state: Tensor, in_logit_space: bool = True) -> np.ndarray:
    """Any state of the flow shown as pixels: unsqueezed to the image layout, and mapped through the
    inverse logit when it lives in logit space (so noise and image share one colour scale). The data
    space (after the logit layer's inverse) is shown as it is: mapped again, it would be grey."""
    state = unsqueeze_to(state, flow.event_shape[1])
    first = flow.chain.layers[0]
    if in_logit_space and isinstance(first, Logit):
        state = first.inverse(state)[0]
    return state.clamp(0, 1).cpu().numpy()


def scale_headers(n_scales: int) -> list[str]:
    """Column headers of ``scales_picture``: the image, then each scale resampled, finest first (scale 1
    is the first factored out, at full resolution; the last is the coarsest).

    Example:
        >>> scale_headers(3)
        ['image', 'scale 1 (finest) resampled', 'scale 2 resampled', 'scale 3 (coarsest) resampled']
    """
    which = {0: " (finest)", n_scales - 1: " (coarsest)"} if n_scales > 1 else {}
    return ["image"] + [f"scale {k + 1}{which.get(k, '')} resampled" for k in range(n_scales)]


@torch.no_grad()
def sample_grid(flow: Flow, path: str | Path, n: int = 64, temperature: float = 1.0, seed: int = 0,
                name: str = "") -> None:
    """``n`` samples at ``temperature`` as one PNG grid, the temperature written above it.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> sample_grid(build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1), tmp / "grid.png", n=9, temperature=0.7)
        >>> Image.open(tmp / "grid.png").text["Title"]
        'Real NVP samples, temperature 0.7'
    """
    torch.manual_seed(seed)
    samples = flow.eval().sample(n, temperature=temperature)
    title = f"{name + ': ' if name else ''}Real NVP samples, temperature {temperature:g}"
    picture = grid(samples.clamp(0, 1).cpu().numpy(), zoom=_zoom_for(flow.event_shape[1]))
    save_png(labelled(picture, title), path, title)


@torch.no_grad()
def scales_picture(flow: Flow, images: Tensor, n_scales: int, path: str | Path, temperature: float = 1.0,
                   seed: int = 0) -> None:
    """What each scale encodes (paper, appendix D): one row per image ``y`` (dequantized, ``[N, C,
    H, W]``); first column the image, then for each scale ``k``, finest first, the image rebuilt after
    resampling only scale ``k``'s factored-out latents from the base (the others stay those of ``y``).

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1)
        >>> scales_picture(flow, torch.rand(2, 1, 4, 4), 2, tmp / "scales.png")
        >>> Image.open(tmp / "scales.png").text["Title"].split(";")[0]
        'what each scale encodes, finest to coarsest (temperature 1)'
    """
    flow.eval()
    ref = next(flow.parameters())
    scale_of = latent_scale_map(flow.event_shape, n_scales).to(ref.device)
    z, _ = flow(images.to(ref.device))
    torch.manual_seed(seed)
    columns = [images.to(ref.device)]
    for k in range(n_scales):
        fresh = flow.sample_latent(len(images), temperature)
        columns.append(flow.inverse(torch.where(scale_of == k, fresh, z)))
    tiles = torch.stack(columns, 1).flatten(0, 1).clamp(0, 1).cpu().numpy()
    headers = scale_headers(n_scales)
    title = f"what each scale encodes, finest to coarsest (temperature {temperature:g})"
    height = flow.event_shape[1]
    picture = grid(tiles, ncol=n_scales + 1, zoom=max(1, -(-THUMBNAIL // height)))
    save_png(labelled(picture, title, headers, one_line=True), path,
             f"{title}; one row per training image; columns: {', '.join(headers)}")


@torch.no_grad()
def animate_images(flow: Flow, path: str | Path, n: int = 16, seed: int = 0, ms_per_frame: int = 250,
                   context: Tensor | np.ndarray | None = None) -> None:
    """A GIF of ``n`` base samples bent into images one elementary layer at a time (latent -> data),
    each frame labelled with the layer just inverted; a class-conditional flow's samples take the
    classes in turn (``i % n_classes``), a flow conditioned on a context vector the rows of ``context``.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> animate_images(build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1), tmp / "layers.gif", n=4)
    """
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise UserError(f"image animations are written as .gif, got {path.name!r}")
    torch.manual_seed(seed)
    flow.eval()
    z = flow.sample_latent(n)
    labels = torch.arange(n) % flow.n_classes if flow.n_classes else context
    # Each state, and whether it is still in the logit's space (the first layer's inverse ends that).
    steps = [("base N(0, I)", z, True)] + [(type(s.layer).__name__, s.output, s.layer is not flow.chain.layers[0])
                                          for s in flow.trace(z, inverse=True, context=labels)]
    zoom = _zoom_for(flow.event_shape[1])
    frames = []
    for i, (name, state, in_logit_space) in enumerate(steps):
        picture = grid(_to_pixels(flow, state, in_logit_space), zoom=zoom)
        img = Image.fromarray(picture).convert("RGB")
        canvas = Image.new("RGB", (max(img.width, 200), img.height + 16), "white")
        canvas.paste(img, (0, 16))
        ImageDraw.Draw(canvas).text((2, 2), f"{i}/{len(steps) - 1} {name}" if i else name, fill="black")
        frames.append(canvas)
    frames += [frames[-1]] * 6  # hold the final images
    try:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_image_pictures(run_dir: Path, flow: Flow, train_images: np.ndarray, n_levels: int,
                         n_scales: int, name: str = "") -> list[Path]:
    """samples.png (temperature 1), samples_t0.7.png, scales.png and animation.gif for an image run.

    Example:
        >>> from realnvp.models import build_image_flow
        >>> flow = build_image_flow((1, 4, 4), feature_maps=4, n_blocks=1)
        >>> [p.name for p in write_image_pictures(tmp, flow, np.zeros((8, 1, 4, 4), np.uint8), 17, 2)]
        ['samples.png', 'samples_t0.7.png', 'scales.png', 'animation.gif']
    """
    written = [run_dir / "samples.png", run_dir / "samples_t0.7.png", run_dir / "scales.png",
               run_dir / "animation.gif"]
    sample_grid(flow, written[0], temperature=1.0, name=name)
    sample_grid(flow, written[1], temperature=0.7, name=name)
    v = torch.from_numpy(train_images[:8])
    y = (v.float() + torch.rand(v.shape, generator=torch.Generator().manual_seed(0))) / n_levels
    scales_picture(flow, y, n_scales, written[2])
    animate_images(flow, written[3])
    return written
