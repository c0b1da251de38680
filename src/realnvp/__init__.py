"""realnvp: density estimation with Real NVP normalizing flows (Dinh, Sohl-Dickstein, Bengio 2016).

``import realnvp`` is instant and changes nothing: the public names below load their modules (and torch) on
first use, so the command line's ``--help`` and tab completion never wait for torch. What a process
should set before torch loads (the OpenMP spin) is set where the process starts: ``realnvp.cli.main``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Flow": "realnvp.flow",
    "build_model": "realnvp.models",
    "build_vector_flow": "realnvp.models",
    "build_image_flow": "realnvp.models",
    "from_data": "realnvp.table_flow",
    "save_run": "realnvp.export",
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
