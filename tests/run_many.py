"""Runs several ``realnvp`` command lines one after another in one process (under torchrun: in every
rank), each with its stderr in a file of its own. tests/test_distributed.py launches torchrun once with
all its DDP runs instead of once per run: each launch starts three Python processes that import torch
(about 4 CPU seconds each), several times what a tiny run costs.

    python -m torch.distributed.run --nproc_per_node=2 --standalone tests/run_many.py PLAN.json

PLAN.json is a list of ``{"argv": [...], "log": PATH}``; rank R writes the command's stderr to
``PATH.rankR``. The first command that exits non-zero ends the process with its status (torchrun
then stops the other rank). The first training joins the process group as ``realnvp train`` always
does; the group then stays for the next ones (gloo cannot join a second default group through the
same torchrun store: a re-joined group waits forever on the first one's keys)."""

from __future__ import annotations

import json
import os
import sys
from contextlib import redirect_stderr
from pathlib import Path

import torch.distributed as dist

from realnvp.cli import main


def run_plan(plan: list[dict]) -> int:
    rank = os.environ.get("RANK", "0")
    leave = dist.destroy_process_group
    dist.destroy_process_group = lambda *args, **kwargs: None  # training's teardown keeps the group
    try:
        for command in plan:
            with open(f"{command['log']}.rank{rank}", "w") as err, redirect_stderr(err):
                code = main(command["argv"])
            if code != 0:
                return code
    finally:
        if dist.is_initialized():
            leave()
    return 0


if __name__ == "__main__":
    sys.exit(run_plan(json.loads(Path(sys.argv[1]).read_text())))
