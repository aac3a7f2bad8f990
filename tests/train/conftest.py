"""Fixtures of the refiner-training tests."""

import pytest
import torch

from surf_video.io.video import write_video
from train_helpers import make_clip

# The CI box has 2 cores shared by many jobs; intra-op threads on tiny tensors only add contention
# (measured: 0.76 s vs 0.05 s per tiny refiner step with 2 vs 1 threads under load).
torch.set_num_threads(1)


@pytest.fixture
def video_dir(tmp_path):
    """3 good videos with captions, one corrupt file and one too-short video."""
    d = tmp_path / "videos"
    d.mkdir()
    for i in range(3):
        write_video(d / f"good{i}.mp4", make_clip(seed=i), fps=8)
        (d / f"good{i}.txt").write_text(f"caption {i}")
    (d / "corrupt.mp4").write_bytes(b"\x00\x01garbage" * 100)
    write_video(d / "short.mp4", make_clip(t=2), fps=8)
    return d
