"""Helpers of the refiner-training tests (a unique module name: other test folders have a conftest)."""

import numpy as np


def make_clip(t=8, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7) % 256, (y * 9) % 256, (x + y) * 3 % 256], -1)
    frames = [np.roll(base, i, axis=1) for i in range(t)]
    return (np.stack(frames) + rng.integers(0, 8, (t, h, w, 3))).clip(0, 255).astype(np.uint8)


def tiny_recipe(out_dir, **over):
    """A dict recipe for a refiner small enough for many CPU steps per second."""
    cfg = {
        "output_dir": str(out_dir),
        "seed": 0,
        "batch_size": 4,
        "model": {"type": "refiner", "name": "refiner-tiny", "config": {"in_channels": 3, "out_channels": 3},
                  "temporal_window_size": 2},
        "data": {"type": "synthetic", "num_samples": 4, "num_frames": 3, "size": [8, 8]},
        "encoder": {"type": "identity"},
        "text": {"type": "hash", "max_length": 8},
        "degrade": {"pixel": {"codec_prob": 0.0, "first": {"kernel_size": [3, 5], "jpeg_prob": 0.5},
                              "second": {"kernel_size": [3, 5]}},
                    "latent": {"noise_prob": 0.3, "noise_level": [0.0, 0.1]}},
        "optim": {"lr": 3e-3, "warmup_steps": 2, "ema_decay": 0.9},
        "phases": [{"steps": 6}],
        "checkpoint": {"every": 2, "keep": 5},
        "logging": {"every": 1, "tensorboard": False, "plot_every": 0},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg
