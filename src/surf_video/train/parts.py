"""The pieces the refiner :class:`~surf_video.train.trainer.Trainer` is assembled from.

Model and data-set builders, the timestep density, the flow-mapping loss, the lr schedule and a
plain Euler refinement for validation: functions of their arguments only, usable without a Trainer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from surf_video.core.flow_map import flow_map_interpolate, flow_map_sample, flow_map_velocity
from surf_video.train.config import ModelConfig, TimestepConfig, TrainConfig
from surf_video.train.data import ProceduralDataset, VideoClipDataset, load_callable, scan_videos, synthetic_sample
from surf_video.train.latents import CachedLatentDataset

__all__ = ["build_model", "build_dataset", "sample_timesteps", "flow_mapping_loss", "refine", "lr_lambda"]


def _wan_folder(path: str) -> dict:
    """A local transformer folder loads as is; a pipeline folder or a hub id (diffusers layout) via transformer/."""
    p = Path(path)
    if p.is_dir():
        return {"subfolder": "transformer"} if (p / "transformer").is_dir() else {}
    return {"subfolder": "transformer"}


def build_model(cfg: ModelConfig) -> torch.nn.Module:
    """The transformer to train (see :class:`ModelConfig`)."""
    from diffusers import WanTransformer3DModel

    wan = None
    if cfg.init_from_wan:
        wan = WanTransformer3DModel.from_pretrained(cfg.init_from_wan, **_wan_folder(cfg.init_from_wan))
    if cfg.type == "wan":
        model = wan if wan is not None else WanTransformer3DModel(**cfg.config)
    else:
        from surf_video.models.refiner import RefinerTransformer3DModel

        extra = {} if cfg.temporal_window_size is None else {"temporal_window_size": cfg.temporal_window_size}
        if wan is not None:
            model = RefinerTransformer3DModel.from_wan(wan, **{"temporal_window_size": 7, **extra})
        elif cfg.name:
            model = RefinerTransformer3DModel.from_config_name(cfg.name, **{**cfg.config, **extra})
        else:
            model = RefinerTransformer3DModel(**{**cfg.config, **extra})
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model.train()


def build_dataset(cfg: TrainConfig, sample_fn: Callable | None = None):
    """The training dataset for ``cfg.data`` (``sample_fn`` overrides a procedural source)."""
    d = cfg.data
    if d.type == "latents":
        return CachedLatentDataset(d.path, crop=d.latent_crop, seed=cfg.seed)
    if d.type == "videos":
        return VideoClipDataset(scan_videos(d.path, d.video_column, d.caption_column), d.num_frames, d.size,
                                d.frame_stride, cfg.degrade.pixel, cfg.seed)
    if sample_fn is None:
        if d.type == "synthetic":
            sample_fn = synthetic_sample
        else:
            sample_fn = load_callable(d.source)
            if d.source_kwargs:
                sample_fn = sample_fn(**d.source_kwargs)
    return ProceduralDataset(sample_fn, d.num_samples, d.num_frames, d.size, cfg.degrade.pixel, cfg.seed)


def sample_timesteps(n: int, cfg: TimestepConfig, generator: torch.Generator) -> torch.Tensor:
    """``n`` values of t in (0, 1) from the configured density (then the flow shift)."""
    if cfg.density == "uniform":
        t = torch.rand(n, generator=generator)
    else:
        t = torch.sigmoid(cfg.mean + cfg.std * torch.randn(n, generator=generator))
    if cfg.shift != 1.0:
        t = cfg.shift * t / (1 + (cfg.shift - 1) * t)
    return t


def flow_mapping_loss(model, z_hr, z_lr, text, t) -> torch.Tensor:
    """MSE between ``model(z_t, 1000 t, text)`` and ``z_lr - z_hr``; inputs ``[B, C, F, H, W]``, t ``[B]``."""
    z_t = flow_map_interpolate(z_hr, z_lr, t)
    pred = model(hidden_states=z_t, timestep=t.to(z_hr) * 1000, encoder_hidden_states=text, return_dict=False)[0]
    return F.mse_loss(pred.float(), flow_map_velocity(z_hr, z_lr).float())


@torch.no_grad()
def refine(model, z_lr: torch.Tensor, text: torch.Tensor, num_steps: int = 10) -> torch.Tensor:
    """Validation sampling: :func:`~surf_video.core.flow_map.flow_map_sample` (Euler from t=1 at ``z_lr`` to t=0,
    uniform steps) with a refiner ``model`` conditioned on ``text``; returns the refined latent."""

    def fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(hidden_states=z, timestep=t * 1000, encoder_hidden_states=text, return_dict=False)[0]

    return flow_map_sample(fn, z_lr, num_steps=num_steps)


def lr_lambda(warmup: int, total: int, schedule: str):
    """Multiplier of the base lr at optimizer step ``step``: linear warm-up, then constant, cosine or linear decay."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        frac = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else 1.0 - frac
    return f
