"""Refiner training: video data, degradations, latent caching and an accelerate trainer.

Main entry points: :func:`surf_video.train.config.load_config`, :class:`surf_video.train.trainer.Trainer`,
:func:`surf_video.train.degrade.degrade_video`, :func:`surf_video.train.latents.cache_latents`.
"""

from surf_video.train.config import TrainConfig, load_config
from surf_video.train.degrade import DegradeConfig, degrade_latents, degrade_video, preview_like

__all__ = ["TrainConfig", "load_config", "DegradeConfig", "degrade_video", "degrade_latents", "preview_like",
           "Trainer", "TrainingDiverged"]


def __getattr__(name):
    # the trainer pulls in accelerate / diffusers: import it on first use only
    if name in ("Trainer", "TrainingDiverged"):
        from surf_video.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
