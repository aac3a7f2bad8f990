"""Base-model adapters: everything that knows a diffusers pipeline's internals lives here.

SURF's loop (``surf_pipeline.py``) only talks to an adapter: encode the prompt, prepare the initial
noise, predict a (guided) velocity, decode and encode latents. One adapter per supported base model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BaseAdapter", "WanAdapter", "HunyuanVideoAdapter", "adapter_for", "SUPPORTED_SCHEDULERS"]

SUPPORTED_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "UniPCMultistepScheduler")


@dataclass
class Conditioning:
    """Text conditioning of one call, as the base pipeline computed it."""

    guidance_scale: float
    do_cfg: bool
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    negative: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BaseAdapter:
    """Interface between SURF's loop and one family of diffusers pipelines."""

    #: the base model's optimal (first-stage) resolution in pixels, used when base_height/width are None
    optimal_size: tuple[int, int] = (480, 832)
    name = "base"

    def __init__(self, pipe):
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.vae = pipe.vae

    # ---- shapes ----------------------------------------------------------------------------------------
    @property
    def spatial_factor(self) -> int:
        return int(self.pipe.vae_scale_factor_spatial)

    @property
    def temporal_factor(self) -> int:
        return int(self.pipe.vae_scale_factor_temporal)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        p = self.transformer.config.patch_size
        if isinstance(p, int):  # HunyuanVideo stores spatial and temporal patch sizes apart
            return (int(self.transformer.config.patch_size_t), p, p)
        return tuple(int(x) for x in p)

    @property
    def latent_channels(self) -> int:
        return int(self.transformer.config.in_channels)

    @property
    def size_multiple(self) -> int:
        return self.spatial_factor * max(self.patch_size[1], self.patch_size[2])

    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    # ---- work ------------------------------------------------------------------------------------------
    def encode(self, **kwargs) -> Conditioning:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_latents(self, batch, height, width, num_frames, generator, latents=None) -> torch.Tensor:
        return self.pipe.prepare_latents(
            batch, self.latent_channels, height, width, num_frames, torch.float32, self.device, generator, latents
        )

    def timestep_input(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        return t.expand(batch)

    def predict(self, latents, t, cond: Conditioning, *, step_index: int, sigma: float, num_steps: int, attention_kwargs=None):
        """Guided velocity at ``(latents, t)``, exactly as the base pipeline computes it."""
        raise NotImplementedError  # pragma: no cover - abstract

    def reset_cache(self) -> None:
        """Drops the state of diffusers' stateful caches (CacheMixin): it holds tensors of the old size."""
        reset = getattr(self.transformer, "_reset_stateful_cache", None)
        if reset is not None and getattr(self.transformer, "is_cache_enabled", False):
            reset()

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def decode(self, latents: torch.Tensor, output_type: str = "np"):
        """Decodes transformer-space latents ``[B, C, F, H, W]`` to frames in ``output_type``."""
        vae_latents = self.denormalize(latents.to(self.vae.device, self.vae.dtype))
        video = self.vae.decode(vae_latents, return_dict=False)[0]
        return self.pipe.video_processor.postprocess_video(video, output_type=output_type)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Encodes pixels ``[B, 3, T, H, W]`` in [-1, 1] to transformer-space latents (distribution mode)."""
        video = video.to(self.vae.device, self.vae.dtype)
        latents = self.vae.encode(video).latent_dist.mode()
        return self.normalize(latents).float()

    def text_embeddings_for_refiner(self, cond: Conditioning) -> torch.Tensor:
        return cond.tensors["encoder_hidden_states"]


class WanAdapter(BaseAdapter):
    """Wan 2.1 (``WanPipeline``): umT5 text, two-pass classifier-free guidance."""

    optimal_size = (480, 832)
    name = "wan"

    def __init__(self, pipe):
        super().__init__(pipe)
        if getattr(pipe, "transformer_2", None) is not None or pipe.config.get("boundary_ratio") is not None:
            raise ValueError("base pipeline: Wan 2.2 two-expert pipelines (transformer_2) are not supported yet")
        if pipe.config.get("expand_timesteps", False):
            raise ValueError("base pipeline: Wan pipelines with expand_timesteps=True are not supported yet")

    def encode(self, prompt, negative_prompt, guidance_scale, num_videos_per_prompt, max_sequence_length,
               prompt_embeds=None, negative_prompt_embeds=None) -> Conditioning:
        do_cfg = guidance_scale > 1.0
        pos, neg = self.pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=do_cfg,
            num_videos_per_prompt=num_videos_per_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            max_sequence_length=max_sequence_length,
            device=self.device,
        )
        cond = Conditioning(guidance_scale, do_cfg, {"encoder_hidden_states": pos.to(self.dtype)})
        if do_cfg:
            cond.negative = {"encoder_hidden_states": neg.to(self.dtype)}
        return cond

    def predict(self, latents, t, cond, *, step_index, sigma, num_steps, attention_kwargs=None):
        model = self.transformer
        x = latents.to(self.dtype)
        timestep = self.timestep_input(t, latents.shape[0])
        ctx = {"step_index": step_index, "sigma": sigma, "num_inference_steps": num_steps}
        with model.cache_context("cond", **ctx):
            v = model(hidden_states=x, timestep=timestep, attention_kwargs=attention_kwargs, return_dict=False,
                      **cond.tensors)[0]
        if cond.do_cfg:
            with model.cache_context("uncond", **ctx):
                v_u = model(hidden_states=x, timestep=timestep, attention_kwargs=attention_kwargs, return_dict=False,
                            **cond.negative)[0]
            v = v_u + cond.guidance_scale * (v - v_u)
        return v

    def _stats(self, latents):
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        std = torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        return mean, std

    def denormalize(self, latents):
        mean, std = self._stats(latents)
        # WanPipeline: latents / (1 / std) + mean, written the same way so decoding matches it bit for bit
        return latents / (1.0 / std) + mean

    def normalize(self, latents):
        mean, std = self._stats(latents)
        return (latents - mean) * (1.0 / std)


class HunyuanVideoAdapter(BaseAdapter):
    """HunyuanVideo (``HunyuanVideoPipeline``): LLaMA + CLIP text, embedded guidance, optional true CFG."""

    optimal_size = (544, 960)
    name = "hunyuan"

    def encode(self, prompt, negative_prompt, guidance_scale, num_videos_per_prompt, max_sequence_length,
               prompt_embeds=None, negative_prompt_embeds=None, true_cfg_scale: float = 1.0) -> Conditioning:
        if prompt_embeds is not None or negative_prompt_embeds is not None:
            raise ValueError("prompt_embeds: pass prompts, not embeddings, for HunyuanVideo bases")
        max_sequence_length = max_sequence_length or 256
        pos, pooled, mask = self.pipe.encode_prompt(
            prompt=prompt, prompt_2=None, num_videos_per_prompt=num_videos_per_prompt,
            device=self.device, max_sequence_length=max_sequence_length,
        )
        dt = self.dtype
        cond = Conditioning(true_cfg_scale, False, {
            "encoder_hidden_states": pos.to(dt), "encoder_attention_mask": mask.to(dt), "pooled_projections": pooled.to(dt),
        })
        cond.extra["embedded_guidance"] = guidance_scale
        if true_cfg_scale > 1 and negative_prompt is not None:
            npos, npooled, nmask = self.pipe.encode_prompt(
                prompt=negative_prompt, prompt_2=None, num_videos_per_prompt=num_videos_per_prompt,
                device=self.device, max_sequence_length=max_sequence_length,
            )
            cond.do_cfg = True
            cond.negative = {"encoder_hidden_states": npos.to(dt), "encoder_attention_mask": nmask.to(dt),
                             "pooled_projections": npooled.to(dt)}
        return cond

    def timestep_input(self, t, batch):
        return t.expand(batch).to(torch.float32)

    def predict(self, latents, t, cond, *, step_index, sigma, num_steps, attention_kwargs=None):
        model = self.transformer
        x = latents.to(self.dtype)
        timestep = self.timestep_input(t, latents.shape[0])
        guidance = torch.tensor([cond.extra["embedded_guidance"]] * latents.shape[0], dtype=self.dtype,
                                device=latents.device) * 1000.0
        with model.cache_context("cond"):
            v = model(hidden_states=x, timestep=timestep, guidance=guidance, attention_kwargs=attention_kwargs,
                      return_dict=False, **cond.tensors)[0]
        if cond.do_cfg:
            with model.cache_context("uncond"):
                v_u = model(hidden_states=x, timestep=timestep, guidance=guidance, attention_kwargs=attention_kwargs,
                            return_dict=False, **cond.negative)[0]
            v = v_u + cond.guidance_scale * (v - v_u)
        return v

    def normalize(self, latents):
        return latents * self.vae.config.scaling_factor

    def denormalize(self, latents):
        return latents / self.vae.config.scaling_factor


def adapter_for(pipe) -> BaseAdapter:
    """Picks the adapter for a diffusers pipeline instance, or raises a clear error."""
    from diffusers import HunyuanVideoPipeline, WanPipeline

    if isinstance(pipe, WanPipeline):
        adapter = WanAdapter(pipe)
    elif isinstance(pipe, HunyuanVideoPipeline):
        adapter = HunyuanVideoAdapter(pipe)
    else:
        raise ValueError(
            f"base pipeline: {type(pipe).__name__} is not supported; SURFPipeline.from_pipe takes a WanPipeline "
            "or a HunyuanVideoPipeline"
        )
    sched = type(pipe.scheduler).__name__
    if sched not in SUPPORTED_SCHEDULERS:
        raise ValueError(f"scheduler: {sched} is not supported; use one of {SUPPORTED_SCHEDULERS}")
    if sched == "UniPCMultistepScheduler" and not (
        pipe.scheduler.config.get("use_flow_sigmas") and pipe.scheduler.config.get("prediction_type") == "flow_prediction"
    ):
        raise ValueError("scheduler: UniPCMultistepScheduler must use use_flow_sigmas=True and prediction_type='flow_prediction'")
    return adapter
