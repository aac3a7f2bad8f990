"""Loss-curve plot and validation videos of a training run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["plot_loss_curve", "write_validation_video"]


def plot_loss_curve(csv_path: str | Path, png_path: str | Path) -> Path:
    """Plot ``loss`` against ``step`` from the training CSV (log scale, with a moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss")
    if len(loss) >= 10:
        k = max(len(loss) // 20, 2)
        ma = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], ma, lw=1.5, label=f"moving average ({k})")
    if len(loss) and (loss > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("flow-mapping MSE")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path)
    plt.close(fig)
    return png_path


def write_validation_video(path: str | Path, clips: Sequence[torch.Tensor], fps: int = 8) -> Path:
    """Write clips ``[3, T, H, W]`` in [-1, 1] side by side (e.g. input | refined | target)."""
    from surf_video.io.video import write_video

    frames = [((c.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy() for c in clips]
    return write_video(path, np.concatenate(frames, axis=2), fps=fps)
