"""realnvp: density estimation with Real NVP normalizing flows (Dinh, Sohl-Dickstein, Bengio 2016).

The core import is light: torch and the flow classes; data, plotting and the CLI load on use.
"""

from realnvp.checkpoint import load
from realnvp.flow import Flow
from realnvp.models import build_model, build_vector_flow
from realnvp.scoring import score, score_array

__all__ = ["Flow", "build_model", "build_vector_flow", "load", "score", "score_array"]
__version__ = "0.1.0"
