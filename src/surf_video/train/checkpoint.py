"""Atomic training checkpoints and an EMA of weights.

A checkpoint is the folder ``CKPT/step-00000100``, holding accelerate's state (model and EMA
weights as safetensors, optimizer, LR schedule, RNG states) plus ``trainer_state.json``. It is
written as ``CKPT/.tmp-step-00000100``, every file fsynced, then a ``COMPLETE`` marker is written
last and the folder renamed. :func:`latest_checkpoint` only accepts folders with the marker, so a
write interrupted at any point is never taken for a good checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

__all__ = ["COMPLETE", "EMA", "latest_checkpoint", "list_checkpoints", "finalize_checkpoint", "prune_checkpoints",
           "read_trainer_state"]

COMPLETE = "COMPLETE"
STATE = "trainer_state.json"


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync directories
    finally:
        os.close(fd)


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoints under ``ckpt_dir``, oldest first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    good = [p for p in d.glob("step-*") if p.is_dir() and (p / COMPLETE).is_file() and (p / STATE).is_file()]
    return sorted(good, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (``None`` if none); temp and unmarked folders are ignored."""
    cks = list_checkpoints(ckpt_dir)
    return cks[-1] if cks else None


def read_trainer_state(ckpt: str | Path) -> dict:
    return json.loads((Path(ckpt) / STATE).read_text())


def finalize_checkpoint(tmp: Path, final: Path, state: dict) -> Path:
    """Write ``trainer_state.json`` and the ``COMPLETE`` marker into ``tmp``, then rename it to ``final``."""
    with open(tmp / STATE, "w") as fh:
        json.dump(state, fh, indent=1)
    _fsync_tree(tmp)
    with open(tmp / COMPLETE, "w") as fh:
        fh.write(f"step {state.get('step')}\n")
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def prune_checkpoints(ckpt_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and stale temp folders."""
    d = Path(ckpt_dir)
    for p in list_checkpoints(d)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in d.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)


class EMA:
    """Exponential moving average of a model's float parameters (kept in fp32).

    ``state_dict``/``load_state_dict`` make it a checkpointable object for
    ``accelerator.register_for_checkpointing``.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        # warm-up of the decay, as in the usual EMA implementations: early weights are not over-weighted
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                p.copy_(self.shadow[n].to(p.dtype))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.shadow = {k: v.float().clone() for k, v in state["shadow"].items()}
