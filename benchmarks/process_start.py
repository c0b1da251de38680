"""Imported first by the benchmark modules that time training steps: what the ``realnvp`` command does
where its process starts, before torch loads libgomp (``realnvp.cli.set_openmp_spin``: the short OpenMP
spin, PROFILE.md section 3). ``--no-spin`` on the command line keeps libgomp's passive 0 instead (the
``realnvp_nospin`` row of the moons table)."""

import os
import sys

from realnvp.cli import set_openmp_spin  # no torch

if "--no-spin" in sys.argv:
    os.environ["GOMP_SPINCOUNT"] = "0"
set_openmp_spin()
