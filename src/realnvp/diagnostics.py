"""Where a flow's values blow up: every elementary layer's input and output magnitudes on a batch, the
first layer whose output turns non-finite, and a warning naming it when samples come out NaN or Inf."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from realnvp.bijectors.base import Bijector
from realnvp.bijectors.coupling import TanhScale

if TYPE_CHECKING:
    from realnvp.flow import Flow


def leaves(flow: nn.Module) -> list[tuple[str, Bijector]]:
    """Elementary bijectors (no bijector inside them) in forward order, named as in ``flow``.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> [name for name, _ in leaves(build_vector_flow(2, 2, hidden=(4,)))]
        ['chain.layers.0', 'chain.layers.1']
    """
    return [(name, m) for name, m in flow.named_modules()
            if isinstance(m, Bijector) and not any(isinstance(c, Bijector) for c in list(m.modules())[1:])]


def _max_abs(t: Tensor) -> float:
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else float("nan")


def trace_layers(flow: Flow, x: Tensor, inverse: bool = False, context: Tensor | None = None) -> list[dict[str, Any]]:
    """Run ``x`` through ``flow`` (``forward``, or ``inverse`` for a latent) with ``Flow.trace`` and
    record, for every elementary layer in the order it runs: its name and type, max |input|, max
    |output| (over finite entries, in the flow's layout), the number of non-finite outputs, and for
    couplings max |s| and the learned scale's max (read by forward hooks on ``TanhScale``).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(2, 2, hidden=(4,))
        >>> [(r["layer"], r["type"], r["non_finite"]) for r in trace_layers(flow, torch.zeros(3, 2))]
        [('chain.layers.0', 'AffineCoupling', 0), ('chain.layers.1', 'AffineCoupling', 0)]
    """
    scales: dict[str, tuple[float, float]] = {}

    def record_s(name: str) -> Callable:
        def hook(module: TanhScale, args: tuple[Tensor], s: Tensor) -> None:
            scales[name] = (_max_abs(s), float(module.scale.abs().max()))
        return hook

    handles = [m.register_forward_hook(record_s(n.rpartition(".")[0]))
               for n, m in flow.named_modules() if isinstance(m, TanhScale)]
    try:
        steps = flow.trace(x, inverse, context=context)
    finally:
        for handle in handles:
            handle.remove()
    records: list[dict[str, Any]] = []
    for before, step in zip([x] + [s.output for s in steps], steps):
        records.append({"layer": step.name, "type": type(step.layer).__name__, "in": _max_abs(before),
                        "out": _max_abs(step.output), "non_finite": int((~torch.isfinite(step.output)).sum()),
                        "log_det_finite": bool(torch.isfinite(step.log_det).all())})
        if step.name in scales:
            records[-1]["max_s"], records[-1]["scale"] = scales[step.name]
    return records


def _describe(record: dict[str, Any]) -> str:
    text = f"{record['layer']} ({record['type']}): max|input| {record['in']:.3g}, max|output| {record['out']:.3g}"
    if "max_s" in record:
        text += f", max|s| {record['max_s']:.3g} (learned scale up to {record['scale']:.3g})"
    if record["non_finite"]:
        text += f", {record['non_finite']} non-finite outputs"
    return text


def locate_blowup(flow: Flow, x: Tensor, inverse: bool = False, context: Tensor | None = None) -> str:
    """One line naming where ``x`` first turns non-finite on its way through ``flow``, with that
    layer's statistics; if nothing does, the layer that amplifies its input most and the coupling
    with the largest |s| (a finite but huge activation overflows later, in the base density).

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> locate_blowup(build_vector_flow(2, 2, hidden=(4,)), torch.full((2, 2), float("nan")))
        'the batch itself holds 4 non-finite values'
    """
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        return f"the {'latent' if inverse else 'batch'} itself holds {bad} non-finite values"
    records = trace_layers(flow, x, inverse, context)
    for record in records:
        if record["non_finite"] or not record["log_det_finite"]:
            return "first non-finite after " + _describe(record)
    if not records:
        return "the flow has no layers"
    # The layer that amplifies most (output over input magnitude) is where activations explode.
    growth = max(records, key=lambda r: r["out"] / max(r["in"], 1.0) if r["out"] == r["out"] else 0.0)
    text = f"a re-run is finite; the largest growth is in {_describe(growth)}"
    couplings = [r for r in records if "max_s" in r]
    if couplings:
        widest = max(couplings, key=lambda r: r["max_s"])
        text += f"; largest |s| in {widest['layer']} ({widest['max_s']:.3g})"
    return text


def warn_if_non_finite(flow: Flow, z: Tensor, x: Tensor, context: Tensor | None = None) -> None:
    """Warn, naming the layer, when any sample ``x = flow.inverse(z)`` (given ``context``, for a
    conditional flow: one per sample) is not finite.

    Example:
        >>> from realnvp.models import build_vector_flow
        >>> flow = build_vector_flow(2, 2, hidden=(4,))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_non_finite(flow, torch.zeros(1, 2), torch.full((1, 2), float("inf")))
        >>> str(caught[0].message).startswith("1 of 1 samples are not finite")
        True
    """
    bad_rows = ~torch.isfinite(x.flatten(1)).all(1)
    if bool(bad_rows.any()):
        where = locate_blowup(flow, z[bad_rows], inverse=True, context=None if context is None else context[bad_rows])
        warnings.warn(f"{int(bad_rows.sum())} of {len(x)} samples are not finite ({where}); "
                      f"try a lower temperature", RuntimeWarning, stacklevel=3)
