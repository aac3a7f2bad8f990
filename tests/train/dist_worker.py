"""One process of a multi-process tiny training, started by the tests through ``accelerate launch``.

``python dist_worker.py OUT [--kill-at N] [--resume] [--reference REF]``: trains the tiny recipe
(2 processes x batch 2, two phases, checkpoints every 2 steps, EMA, one validation) into ``OUT``,
``os._exit(3)`` on every rank right after optimizer step ``N`` (a crash between checkpoints), or
resumes ``OUT`` from its newest checkpoint; then exports ``OUT/final``. ``--reference REF`` then
trains the same recipe uninterrupted into ``REF`` in the same processes. The main process prints
``RESULT <json>`` lines.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

from train_helpers import tiny_recipe

from surf_video.train.config import load_config
from surf_video.train.trainer import Trainer


def recipe(out):
    return tiny_recipe(out, batch_size=2, phases=[{"steps": 3, "num_frames": 3}, {"steps": 3, "num_frames": 5}],
                       checkpoint={"every": 2, "keep": 5}, validation={"every": 3, "num_samples": 1, "num_steps": 2})


def run(out, kill_at=None, resume=False):
    def crash(step):
        if step == kill_at:
            sys.stdout.flush()
            os._exit(3)

    trainer = Trainer(load_config(recipe(out)), on_step_end=crash if kill_at else None)
    result = trainer.train(resume=resume)
    trainer.export()
    if trainer.acc.is_main_process:
        print("RESULT " + json.dumps({"out": str(out), "step": result.step, "loss": result.last_loss,
                                      "processes": trainer.acc.num_processes, "fsdp": trainer.fsdp,
                                      "distributed_type": str(trainer.acc.distributed_type)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--reference", default=None)
    a = ap.parse_args()
    run(a.out, a.kill_at, a.resume)
    if a.reference:
        run(a.reference)


if __name__ == "__main__":
    main()
