"""Typed run configuration: a preset (TOML) plus ``section.key=value`` overrides, type-checked, and
range checks (``check_settings``) so an impossible value is one line before anything is read or written."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from realnvp.errors import UserError


@dataclass
class DataConfig:
    """The ``[data]`` section: which dataset, how much of it and how it is split.

    Example:
        >>> cfg = DataConfig(name="file", path="my.npy")
        >>> cfg.test_fraction, cfg.val_fraction  # 20% held out for test, 10% of the rest for validation
        (0.2, 0.1)
    """

    name: str = "moons"  # a toy density name, or "file" with ``path``
    path: str = ""  # .npy / .npz / .csv of vectors when name == "file"
    test_path: str = ""  # a held-out file (or image folder) used as the test split instead of a split of path
    n_train: int = 10000  # toy sets only
    n_test: int = 10000  # toy sets only
    noise: float = -1.0  # toy sets only; < 0 means the dataset's own default
    test_fraction: float = 0.2  # files only: held-out share for the test split
    val_fraction: float = 0.1  # share of the training split held out for validation/early stopping
    seed: int = 0  # data generation and split seed
    # Images (name: digits | mnist | fashion-mnist | cifar10 | celeba | folder; path: the dataset's
    # root folder, an .npz with x_train/x_test, or for "folder" any folder of images).
    flip: bool = False  # images: random horizontal flips of training batches
    download: bool = False  # images: fetch mnist / fashion-mnist / cifar10 with torchvision if missing
    image_size: int = 0  # celeba / folder: resize to this square size; 0 keeps the default (celeba 64)
    test_draws: int = 10  # images: dequantization noise draws averaged in the test bits/dim
    # Conditional vector models: these columns (0-based) of the table are the context c; the flow models
    # the density of the other columns given them, p(x | c) (data/labels.py).
    context_columns: tuple[int, ...] = ()
    # Tables (data/vectors.py, data/columns.py): rows with a missing cell (NA, empty) are refused or dropped;
    # constant columns are refused or dropped; each column's type is detected ("auto") or given.
    missing: str = "refuse"  # refuse | drop
    constant: str = "refuse"  # refuse | drop
    column_types: str = "auto"  # auto | one type per column (real,log,logit,integer,count) | NAME=TYPE,...
    column_names: tuple[str, ...] = ()  # the modelled columns' names (a CSV header's), recorded when training


@dataclass
class ModelConfig:
    """The ``[model]`` section: a vector flow (``kind="vector"``) or the paper's multi-scale image model.

    Example:
        >>> ModelConfig(n_couplings=6, hidden=(64, 64)).mask
        'alternating'
    """

    kind: str = "vector"
    n_couplings: int = 4
    hidden: tuple[int, ...] = (512, 512)
    mask: str = "alternating"  # alternating | half | random
    batch_norm: bool = False
    bn_momentum: float = 0.05
    scale_init: float = 1.0  # starting value of every coupling's learned tanh scale (bounds |s| at first)
    whiten: bool = False  # vectors: first layer whitens with the training rows' full covariance (Cholesky)
    linear: bool = False  # a learned invertible linear (LU) layer before each coupling (images: 1x1 convolution)
    # Tables: > 0 makes the density a defensive mixture with a Student-t of these degrees of freedom over the
    # training rows (distributions.py), its weight chosen on validation rows; 0: the flow alone.
    defensive_df: float = 0.0
    # The latent density: "normal" (N(0, I), the paper's), "diagonal" (learned mean and scale per dimension)
    # or "mixture" (base_components learned diagonal Gaussians); distributions.Base.
    base: str = "normal"
    base_components: int = 4
    coupling: str = "affine"  # affine | spline: vectors' element-wise map (spline: bijectors/spline.py)
    spline_bins: int = 8  # spline couplings: rational-quadratic bins on [-spline_bound, spline_bound]
    spline_bound: float = 4.0  # spline couplings: identity outside [-B, B]; standardised data lie mostly inside 4
    # kind = "image": the paper's multi-scale model (models/image.py)
    n_scales: int = 2  # scales; each but the last squeezes once and factors out half
    feature_maps: int = 64  # s/t ResNet width at the first scale, doubled at each later scale
    n_blocks: int = 8  # residual blocks per s/t ResNet
    conditioner_norm: str = "batch"  # batch | instance | none, inside the s/t ResNets
    scale_couplings: int = 3  # checkerboard and channel-wise couplings per scale (paper: 3)
    final_couplings: int = 4  # checkerboard couplings at the last scale (paper: 4)
    logit: str = "symmetric"  # symmetric | paper | none: logit(alpha + beta y) first layer (bijectors/preprocessing.py)
    logit_alpha: float = 0.05
    checkpoint: bool = False  # gradient checkpointing of the s/t ResNets (saves memory)
    squeezed_checkerboard: bool = False  # checkerboard couplings' s/t nets see the squeezed image (4x fewer positions)
    # Conditional models (nets.py ContextResNet / ContextMLP): images p(x | class label), vectors p(x | context)
    conditional: bool = False
    n_context: int = 0  # classes (images) or context columns (vectors); 0: read from the data when training
    context_embed: int = 8  # images: channels of each coupling's learned label embedding
    context_dim: int = 0  # images: real context values per example (an .npz's context array), read through an MLP


@dataclass
class TrainConfig:
    """The ``[train]`` section: optimisation, evaluation, stopping and where it runs.

    Example:
        >>> TrainConfig(steps=500).lr, TrainConfig().scale_l2  # Adam's rate; the paper's L2 on the scales
        (0.001, 5e-05)
    """

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine | cosine_time (cosine to zero at train.steps or at
    # train.time_budget, whichever comes first: a budgeted run ends its schedule on any machine)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    scale_l2: float = 5e-5  # L2 on the coupling tanh scales (paper: 5e-5)
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    eval_every: int = 500  # steps between validation evaluations and checkpoints
    log_every: int = 0  # steps between running train-NLL records in metrics.jsonl; 0: max(1, steps // 50)
    patience: int = 0  # stop after this many evaluations without validation improvement; 0 disables
    cv_folds: int = 0  # >= 2: choose the number of steps by K-fold cross-validation, then train on every row
    time_budget: float = 0.0  # seconds of training; 0 disables
    seed: int = 0  # model initialisation and batch order
    compile: bool = False  # torch.compile the model's log-density for training
    tensorboard: bool = False  # also log metrics to RUN_DIR/tensorboard (pip install 'realnvp[tensorboard]')
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 | auto: bf16 autocast for the s/t networks only (log-dets, norms, loss
    # stay fp32); auto: bf16 on a CUDA GPU with bf16 units, fp32 elsewhere
    flush_denormal: bool = True  # denormal floats (|x| < 1.2e-38) flushed to zero in training steps, as XLA does:
    # x86 CPUs compute on them ~100x slower, and they creep into trained networks (moons: 9.2 vs 12.7 ms/step)
    max_bad_steps: int = 5  # non-finite steps (each rolled back, lr halved) tolerated between checkpoints


@dataclass
class Config:
    """A whole run's settings; ``to_dict``/``from_dict`` are what ``config.json`` holds.

    Example:
        >>> cfg = Config.from_dict({"train": {"steps": 100}, "model": {"hidden": [32, 32]}})
        >>> cfg.train.steps, cfg.model.hidden, Config.from_dict(cfg.to_dict()) == cfg
        (100, (32, 32), True)
        >>> Config.from_dict({"train": {"stepz": 100}})
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: config: unknown setting 'train.stepz'; train has: batch_size, ...
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "config") -> Config:
        cfg = cls()
        if not isinstance(raw, dict):
            raise UserError(f"{origin}: expected a table of settings, got a {type(raw).__name__}")
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise UserError(f"{origin}: [{section}] must be a table of settings")
            for key, value in values.items():
                _assign(cfg, f"{section}.{key}", value, origin)
        return cfg


def _coerce(value: Any, typ: Any, name: str) -> Any:
    """Convert ``value`` (from TOML or a ``--set`` string) to the field's type, or raise UserError."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        if typ == tuple[str, ...]:
            items = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(v, str) for v in items):
                raise ValueError
            return tuple(v.strip() for v in items)
        if typ == tuple[int, ...]:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_coerce(v.strip() if isinstance(v, str) else v, int, name) for v in items if v != "")
    except (ValueError, TypeError):
        pass
    type_name = ("comma-separated integers" if typ == tuple[int, ...] else "comma-separated names"
                 if typ == tuple[str, ...] else typ.__name__)
    raise UserError(f"{name}: expected {type_name}, got {value!r}")


def _assign(cfg: Config, dotted: str, value: Any, origin: str) -> None:
    section_name, _, key = dotted.partition(".")
    section = getattr(cfg, section_name, None) if section_name in {f.name for f in dataclasses.fields(cfg)} else None
    if section is None or not key:
        raise UserError(f"{origin}: unknown setting {dotted!r} (sections: data, model, train)")
    hints = get_type_hints(type(section))
    if key not in hints:
        known = ", ".join(sorted(hints))
        raise UserError(f"{origin}: unknown setting {dotted!r}; {section_name} has: {known}")
    setattr(section, key, _coerce(value, hints[key], dotted))


def preset_names() -> list[str]:
    """The presets shipped in ``realnvp/presets`` (``realnvp train NAME``), sorted.

    Example:
        >>> {"moons", "digits", "vector"} <= set(preset_names())
        True
    """
    return sorted(p.name[:-5] for p in resources.files("realnvp.presets").iterdir() if p.name.endswith(".toml"))


def _read_text(path: Path) -> str:
    """A config file's text; unreadable or not UTF-8 (TOML files are UTF-8) is a ``UserError``."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid TOML (not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x})"
                        ) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_config(preset_or_file: str, overrides: list[str] = ()) -> Config:
    """A named preset or a TOML file, then ``section.key=value`` overrides applied in order.

    Example:
        >>> cfg = load_config("moons", ["train.steps=200", "model.hidden=64,64"])
        >>> cfg.data.name, cfg.train.steps, cfg.model.hidden
        ('moons', 200, (64, 64))
        >>> load_config("moons", ["train.steps=lots"])
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: train.steps: expected int, got 'lots'
    """
    path = Path(preset_or_file)
    # A preset's name wins over a same-named folder or file in the working directory (./NAME picks the file).
    if preset_or_file in preset_names():
        if os.path.isfile(path):  # False, not OSError, for a name too long to exist
            warnings.warn(f"{preset_or_file!r} is both a preset and a file here; took the preset "
                          f"(for the file, write ./{preset_or_file})", stacklevel=2)
        text = (resources.files("realnvp.presets") / f"{preset_or_file}.toml").read_text()
        origin = f"preset {preset_or_file}"
    elif preset_or_file.endswith(".toml") or os.path.isfile(path):
        if not os.path.isfile(path):
            raise UserError(f"config file not found: {preset_or_file}")
        text, origin = _read_text(path), str(path)
    else:
        folder = f" ({preset_or_file} here is a folder, not a .toml file)" if os.path.isdir(path) else ""
        raise UserError(f"unknown preset {preset_or_file!r}{folder}; presets: {', '.join(preset_names())}")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{origin}: not valid TOML ({exc})") from None
    except RecursionError:
        raise UserError(f"{origin}: not valid TOML (nested too deeply)") from None
    cfg = Config.from_dict(raw, origin)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects key=value, got {item!r}")
        _assign(cfg, key.strip(), value.strip(), "--set")
    return cfg


SEED_MAX = 2**31 - 1  # seeds feed numpy's RandomState (at most 2**32 - 1, with seed + 3 used) and torch
# name: (lowest, highest, whether the lowest value itself is allowed). The upper bounds stop a typo (a
# few extra zeros) from running for hours or filling the memory; each is far above every preset.
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "data.n_train": (0, 10**7, False), "data.n_test": (0, 10**7, False), "data.seed": (0, SEED_MAX, True),
    "data.image_size": (0, 1024, True), "data.test_draws": (0, 1000, False),
    "model.n_couplings": (0, 1000, False), "model.scale_init": (0, 100, False), "model.bn_momentum": (0, 1, False),
    "model.n_scales": (0, 8, False), "model.feature_maps": (0, 4096, False), "model.n_blocks": (0, 256, True),
    "model.scale_couplings": (0, 64, False), "model.final_couplings": (0, 64, False),
    "model.n_context": (0, 10**5, True), "model.defensive_df": (0, 1000, True), "model.context_dim": (0, 10**5, True),
    "model.base_components": (0, 1024, False), "model.context_embed": (0, 1024, False),
    "model.spline_bins": (1, 1024, False), "model.spline_bound": (0, 10**6, False),
    "train.steps": (0, 10**9, True), "train.batch_size": (0, 2**20, False), "train.lr": (0, 10, False),
    "train.warmup_steps": (0, 10**9, True), "train.weight_decay": (0, 100, True), "train.scale_l2": (0, 100, True),
    "train.grad_clip": (0, 10**6, True), "train.eval_every": (0, 10**9, False), "train.log_every": (0, 10**9, True),
    "train.patience": (0, 10**6, True), "train.cv_folds": (0, 100, True),
    "train.time_budget": (0, 10**8, True), "train.seed": (0, SEED_MAX, True), "train.max_bad_steps": (0, 1000, False),
}
MAX_WIDTH, MAX_DEPTH = 65536, 64  # model.hidden: each width, and the number of hidden layers
CHOICES = {"data.missing": ("refuse", "drop"), "data.constant": ("refuse", "drop"),
           "train.lr_schedule": ("constant", "cosine", "cosine_time"), "train.device": ("auto", "cpu", "cuda"),
           "train.precision": ("fp32", "bf16", "auto"), "model.kind": ("vector", "image"),
           "model.mask": ("alternating", "half", "random"), "model.base": ("normal", "diagonal", "mixture"),
           "model.conditioner_norm": ("batch", "instance", "none"),
           "model.logit": ("symmetric", "paper", "none"), "model.coupling": ("affine", "spline")}


def _get(cfg: Config, dotted: str) -> object:
    section, _, key = dotted.partition(".")
    return getattr(getattr(cfg, section), key)


def check_settings(cfg: Config) -> None:
    """Raise ``UserError`` naming the first setting whose value is out of range (NaN and infinity
    included), so an impossible value is one line before any data is read or file written.

    Example:
        >>> cfg = Config()
        >>> cfg.train.lr = -1.0
        >>> check_settings(cfg)
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: train.lr must be > 0, got -1.0
        >>> cfg.train.lr = float("inf")
        >>> check_settings(cfg)
        Traceback (most recent call last):
        ...
        realnvp.errors.UserError: train.lr must be at most 10, got inf
    """
    for name, (low, high, low_allowed) in BOUNDS.items():
        value = _get(cfg, name)
        if not (value >= low if low_allowed else value > low):  # written this way so NaN fails too
            raise UserError(f"{name} must be {'>=' if low_allowed else '>'} {low}, got {value}")
        if not value <= high:
            raise UserError(f"{name} must be at most {high}, got {value}")
    for name, choices in CHOICES.items():
        if _get(cfg, name) not in choices:
            raise UserError(f"{name} must be one of {', '.join(choices)}, got {_get(cfg, name)!r}")
    if not math.isfinite(cfg.data.noise):
        raise UserError(f"data.noise must be a finite number (< 0 for the dataset's default), got {cfg.data.noise}")
    if not 0 <= cfg.data.val_fraction < 1:
        raise UserError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.train.lr_schedule == "cosine_time" and not cfg.train.time_budget > 0:
        raise UserError("train.lr_schedule = 'cosine_time' needs train.time_budget > 0 (seconds)")
    if cfg.train.cv_folds == 1:
        raise UserError("train.cv_folds must be 0 (off) or at least 2 folds, got 1")
    if not 0 < cfg.data.test_fraction < 1:
        raise UserError(f"data.test_fraction must be in (0, 1), got {cfg.data.test_fraction}")
    if not 0 < cfg.model.logit_alpha < 0.5:
        raise UserError(f"model.logit_alpha must be in (0, 0.5), got {cfg.model.logit_alpha}")
    if cfg.model.kind == "image" and cfg.model.coupling != "affine":
        raise UserError(f"model.coupling = {cfg.model.coupling!r} is for vector models; image models are affine")
    hidden = cfg.model.hidden
    if cfg.model.kind == "vector" and not (len(hidden) <= MAX_DEPTH and all(0 < h <= MAX_WIDTH for h in hidden)):
        raise UserError(f"model.hidden must be at most {MAX_DEPTH} widths, each from 1 to {MAX_WIDTH}, got "
                        f"{_short(hidden)}")


def _short(values: tuple[int, ...]) -> str:
    """A tuple for a message, cut after a few items (a pasted list of thousands stays one short line)."""
    return str(values) if len(values) <= 6 else f"({', '.join(map(str, values[:6]))}, ... {len(values)} widths)"
