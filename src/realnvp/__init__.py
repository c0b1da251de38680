"""realnvp: density estimation with Real NVP normalizing flows (Dinh, Sohl-Dickstein, Bengio 2016).

``import realnvp`` is instant: the public names below load their modules (and torch) on first use,
so the command line's ``--help`` and tab completion never wait for torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# With OMP_WAIT_POLICY=PASSIVE, libgomp's worker threads (torch's intra-op pool, MKL's GEMMs) sleep the
# moment a parallel region ends, so each of the hundreds of small regions in a training step must wake
# a sleeping thread again; in a VM that wake-up costs more than many of the ops (benchmarks/PROFILE.md:
# 0.6x the step time on moons with a short spin). A short spin first (libgomp counts ~100,000 rounds
# per ms, so tens of microseconds) keeps the threads awake between back-to-back ops and still sleeps
# in real idle time. With more runnable jobs than cores spinning takes the core the awaited thread needs
# (measured 1.5x slower at load 4 on 2 cores), so only below that load. It acts only if set before torch
# loads libgomp and never overrides a user's value.
if (os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive" and hasattr(os, "getloadavg")
        and os.getloadavg()[0] < (os.cpu_count() or 1)):
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")

_EXPORTS = {
    "Flow": "realnvp.flow",
    "build_model": "realnvp.models",
    "build_vector_flow": "realnvp.models",
    "build_image_flow": "realnvp.models",
    "load": "realnvp.rundir",
    "RunDir": "realnvp.rundir",
    "train": "realnvp.training",
    "score": "realnvp.evaluation.scoring",
    "score_array": "realnvp.evaluation.scoring",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'realnvp' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
