"""SURFPipeline: noise-reshifted preview with a diffusers base model, then flow-mapping refinement.

The denoising loop is our own (not a diffusers callback): it drives the base pipeline's components
through an adapter (``adapters.py``) and the pure SURF math in ``surf_video.core``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..core.reshift import (
    estimate_x0,
    relative_change,
    renoise as renoise_fn,
    resize_latent,
    resize_noise_gain,
    snr_resume,
)
from ..core.schedule import Stage, make_stage_plan, resolution_shift_factor, restage_sigmas
from .adapters import BaseAdapter, adapter_for
from .checks import check_call

logger = logging.getLogger(__name__)

__all__ = ["SURFPipeline", "SURFPipelineOutput"]


@dataclass
class SURFPipelineOutput:
    """What a SURF call returns.

    Attributes:
        frames: the video(s) in ``output_type`` (latents when ``output_type='latent'``): the refined video
            when a refiner ran, else the preview.
        preview_latents: the preview latents ``[B, C, F, h, w]`` (transformer space), to refine later.
        latents: the final latents (refined when a refiner ran).
        switch_steps: the switch step(s) actually used (``'auto'`` resolved).
        stage_sigmas: the sigmas each non-empty stage ran, for inspection.
        num_evaluations: transformer forward passes per stage (CFG counted), the refiner's last.
        timings: seconds per stage ("stage0", "stage1", ..., "refine", "decode").
    """

    frames: Any
    preview_latents: torch.Tensor
    latents: torch.Tensor
    switch_steps: list[int]
    stage_sigmas: list[list[float]] = field(default_factory=list)
    num_evaluations: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"

    def now(self):
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


class SURFPipeline:
    """SURF around a diffusers ``WanPipeline`` or ``HunyuanVideoPipeline``.

    Build it with :meth:`from_pipe` (reuses every component of the base pipeline) or
    :meth:`from_pretrained`. Calling it makes previews (no refiner) or full high-resolution videos.
    """

    def __init__(self, base_pipe, refiner=None, base_size: tuple[int, int] | None = None):
        self.base = base_pipe
        self.adapter: BaseAdapter = adapter_for(base_pipe)
        self.refiner = refiner
        #: first-stage (optimal) resolution used when base_height/base_width are not given
        self.base_size = tuple(base_size) if base_size is not None else self.adapter.optimal_size
        self._progress_kwargs: dict[str, Any] = {}
        if refiner is not None:
            self._check_refiner(refiner)

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_pipe(cls, base_pipe, refiner=None, base_size: tuple[int, int] | None = None) -> "SURFPipeline":
        """Wraps an existing diffusers pipeline (its tokenizer, text encoder, transformer, scheduler, VAE).

        Args:
            base_pipe: a ``WanPipeline`` or ``HunyuanVideoPipeline``.
            refiner: an optional ``RefinerTransformer3DModel`` for the base VAE's latent space.
            base_size: the base model's optimal ``(height, width)``; default 480x832 for Wan 2.1,
                544x960 for HunyuanVideo.
        """
        return cls(base_pipe, refiner=refiner, base_size=base_size)

    @classmethod
    def from_pretrained(cls, base: str, refiner: str | None = None, torch_dtype=None, **kwargs) -> "SURFPipeline":
        """Loads a base pipeline (local folder or hub id) and optionally a refiner folder (safetensors)."""
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(base, torch_dtype=torch_dtype, **kwargs)
        ref = None
        if refiner is not None:
            from ..models.refiner import RefinerTransformer3DModel

            ref = RefinerTransformer3DModel.from_pretrained(refiner, torch_dtype=torch_dtype, use_safetensors=True)
        return cls(pipe, refiner=ref)

    def to(self, device=None, dtype=None) -> "SURFPipeline":
        self.base.to(device) if dtype is None else self.base.to(device, dtype)
        if self.refiner is not None:
            self.refiner.to(device=device, dtype=dtype) if dtype is not None else self.refiner.to(device)
        return self

    def enable_accelerations(self, *, cache=None, attention_backend: str | None = None, compile: bool = False,
                             quantize: str | None = None, refiner: bool = True, compile_kwargs: dict | None = None):
        """Applies user-side accelerations (see :mod:`surf_video.pipelines.accel`) to the base transformer
        and, with ``refiner=True``, to the refiner (all but ``cache``, which only the base uses).

        Call :meth:`disable_accelerations` to remove them (fp8 quantization cannot be removed).
        """
        from .accel import apply_accelerations

        self.disable_accelerations()
        self._accel = {"base": apply_accelerations(self.adapter.transformer, cache=cache, attention_backend=attention_backend,
                                                   compile=compile, quantize=quantize, compile_kwargs=compile_kwargs)}
        if refiner and self.refiner is not None:
            self._accel["refiner"] = apply_accelerations(self.refiner, attention_backend=attention_backend,
                                                         compile=compile, quantize=quantize,
                                                         compile_kwargs=compile_kwargs)
        return self

    def disable_accelerations(self) -> None:
        """Removes what :meth:`enable_accelerations` applied."""
        from .accel import remove_accelerations

        for key, done in getattr(self, "_accel", {}).items():
            remove_accelerations(self.adapter.transformer if key == "base" else self.refiner, done)
        self._accel = {}

    def set_progress_bar_config(self, **kwargs) -> None:
        """Same as diffusers: e.g. ``disable=True``."""
        self._progress_kwargs = kwargs

    def _check_refiner(self, refiner) -> None:
        z = getattr(self.base.vae.config, "z_dim", None) or self.base.vae.config.latent_channels
        if refiner.config.in_channels != z or refiner.config.out_channels != z:
            raise ValueError(
                f"refiner: its latent channels (in {refiner.config.in_channels}, out {refiner.config.out_channels}) "
                f"differ from the base VAE's {z}; train or pick a refiner for this VAE's latent space"
            )

    # ---- the call --------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int = 81,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        attention_kwargs: dict | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        max_sequence_length: int = 512,
        *,
        switch_step: int | list[int] | str = 10,
        base_height: int | None = None,
        base_width: int | None = None,
        preview_height: int | None = None,
        preview_width: int | None = None,
        stage_sizes: list[tuple[int, int]] | None = None,
        renoise: str = "flow",
        resize_mode: str = "area",
        stage_shift: bool = False,
        resume_schedule: str = "truncate",
        auto_switch_tol: float = 0.05,
        min_switch_step: int = 2,
        max_switch_step: int | None = None,
        true_cfg_scale: float = 1.0,
        num_previews: int | None = None,
        refine_steps: int = 10,
        refine_noise: float = 0.0,
        vae_tiling: bool = False,
    ) -> SURFPipelineOutput:
        """Generates a video with SURF.

        Args follow diffusers' ``WanPipeline``; SURF's own:
            switch_step: base-resolution steps k before the switch (one int per switch for multi-stage plans),
                or ``'auto'`` (switch when the clean estimate's relative change falls below ``auto_switch_tol``,
                within ``[min_switch_step, max_switch_step]``).
            base_height, base_width: first-stage resolution (default: the base model's optimal one).
            preview_height, preview_width: preview resolution (default: half the base resolution).
            stage_sizes: pixel sizes of every stage for plans of more than two stages (overrides the above).
            renoise: ``'flow'`` (``(1-s) x0 + s eps``), ``'paper'`` (eq. 2, ``x0 + s eps``) or ``'snr'``
                (resize the noisy latent and resume at the sigma of equal signal-to-noise ratio).
            resize_mode: latent downscale: ``'area'``, ``'bilinear'``, ``'bicubic'``.
            stage_shift: shift each low-resolution stage's sigmas by ``sqrt(tokens ratio)`` (SD3-style).
            resume_schedule: for ``'snr'``: ``'truncate'`` (skip the sigmas above the resumed one) or ``'respace'``.
            true_cfg_scale: HunyuanVideo only: real two-pass CFG with ``negative_prompt`` when > 1.
            num_previews: videos per prompt (alias of ``num_videos_per_prompt``), batched in one call.
            height, width: output size after refinement (needs a refiner); default: no refinement size change.
            refine_steps, refine_noise: flow-mapping steps and the noise augmentation of the upsampled preview.
            vae_tiling: tiled VAE decode for large outputs.
        """
        a = self.adapter
        if num_previews is not None:
            num_videos_per_prompt = num_previews
        base_h = base_height or self.base_size[0]
        base_w = base_width or self.base_size[1]
        if stage_sizes is None:
            ph = preview_height or base_h // 2
            pw = preview_width or base_w // 2
            stage_sizes = [(base_h, base_w), (ph, pw)]
        stage_sizes = [tuple(int(v) for v in s) for s in stage_sizes]
        auto = switch_step == "auto"
        switches = check_call(
            a, prompt=prompt, prompt_embeds=prompt_embeds, num_frames=num_frames, num_inference_steps=num_inference_steps,
            stage_sizes=stage_sizes, switch_step=switch_step, renoise=renoise, resize_mode=resize_mode,
            resume_schedule=resume_schedule, output_type=output_type, latents=latents, height=height, width=width,
            refiner=self.refiner, refine_steps=refine_steps, auto_switch_tol=auto_switch_tol,
            min_switch_step=min_switch_step, max_switch_step=max_switch_step,
        )
        # The stage plan (latent sizes and steps) is pure arithmetic: made before any model work, so a stage that
        # context parallelism cannot split fails first.
        lat_sizes = [(h // a.spatial_factor, w // a.spatial_factor) for h, w in stage_sizes]
        plan = make_stage_plan(num_inference_steps, lat_sizes, switches if not auto else [max_switch_step or num_inference_steps])
        self._check_parallel(stage_sizes, plan, auto, num_frames, height, width)
        if callback_on_step_end is not None and hasattr(callback_on_step_end, "tensor_inputs"):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        timer = _Timer(a.device)
        timings: dict[str, float] = {}
        t0 = timer.now()

        # 1. Encode the prompt exactly as the base pipeline does.
        enc_kwargs = dict(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds)
        if a.name == "hunyuan":
            enc_kwargs = dict(true_cfg_scale=true_cfg_scale)
        cond = a.encode(prompt, negative_prompt, guidance_scale, num_videos_per_prompt, max_sequence_length, **enc_kwargs)
        batch = cond.tensors["encoder_hidden_states"].shape[0]
        timings["text"] = timer.now() - t0

        # 2. The base schedule (the stage plan was made above).
        scheduler = self._fresh_scheduler(num_inference_steps)
        base_sigmas = scheduler.sigmas.clone()

        # 3. Initial noise at the first stage that runs (k = 0 starts at the preview size: direct inference).
        first = next(i for i, s in enumerate(plan) if s.num_steps > 0)
        h0, w0 = stage_sizes[first]
        z = a.prepare_latents(batch, h0, w0, num_frames, generator, latents)
        if latents is not None and z.shape[1] != a.latent_channels:
            raise ValueError(f"latents: {z.shape[1]} channels given, the transformer takes {a.latent_channels}")

        # 4. Denoise stage by stage, switching resolution between stages. A diffusers cache's state is dropped
        # first: the previous call left tensors of its last stage's size (diffusers pipelines drop it at the end).
        a.reset_cache()
        z, info = self._denoise(
            z, plan, first, scheduler, base_sigmas, cond, generator, num_inference_steps, renoise=renoise,
            resize_mode=resize_mode, stage_shift=stage_shift, resume_schedule=resume_schedule, auto=auto,
            auto_tol=auto_switch_tol, min_switch=min_switch_step, max_switch=max_switch_step or num_inference_steps,
            attention_kwargs=attention_kwargs, callback=callback_on_step_end,
            callback_inputs=callback_on_step_end_tensor_inputs, timer=timer, timings=timings,
            prompt_embeds=cond.tensors["encoder_hidden_states"],
        )
        a.reset_cache()  # free the cached tensors (as diffusers' maybe_free_model_hooks does)
        preview = z
        out_latents = z
        evals = info["evals"]

        # 5. Refine: upsample the preview latent to the target size and integrate the flow map.
        if self.refiner is not None and height is not None and width is not None:
            t1 = timer.now()
            out_latents = self._refine(preview, cond, height, width, refine_steps, refine_noise, generator)
            timings["refine"] = timer.now() - t1
            evals["refine"] = refine_steps

        # 6. Decode.
        if output_type == "latent":
            frames = out_latents
        else:
            t2 = timer.now()
            frames = self._decode(out_latents, output_type, vae_tiling)
            timings["decode"] = timer.now() - t2
        return SURFPipelineOutput(
            frames=frames, preview_latents=preview, latents=out_latents, switch_steps=info["switches"],
            stage_sigmas=info["sigmas"], num_evaluations=evals, timings=timings,
        )

    # ---- pieces ----------------------------------------------------------------------------------------
    def _check_parallel(self, stage_sizes, plan, auto, num_frames, height, width) -> None:
        """Under context parallelism every stage that runs must have a token count the degree divides."""
        from .parallel import check_context_parallel_sizes

        # auto may switch at any step, so every stage can run
        run = list(range(len(stage_sizes))) if auto else [i for i, s in enumerate(plan) if s.num_steps > 0]
        check_context_parallel_sizes(self, stage_sizes, run, num_frames, height if self.refiner else None, width)

    def _fresh_scheduler(self, num_steps: int, sigmas: torch.Tensor | None = None):
        """A new scheduler from the base's config (solver history empty), optionally on a custom sigma list.

        Args:
            num_steps: N, to initialise the scheduler exactly as the base pipeline does.
            sigmas: ``[M + 1]`` sigmas (terminal included) of a resumed stage; ``None`` keeps the base schedule.
        """
        base = self.base.scheduler
        sched = type(base).from_config(base.config)
        device = self.adapter.device
        if self.adapter.name == "hunyuan":
            import numpy as np

            sched.set_timesteps(num_steps, device=device, sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1])
        else:
            sched.set_timesteps(num_steps, device=device)
        if sigmas is not None:
            ts_dtype = sched.timesteps.dtype
            sched.sigmas = sigmas.to(sched.sigmas.device, sched.sigmas.dtype)
            ts = sigmas[:-1] * sched.config.num_train_timesteps
            sched.timesteps = ts.to(device=sched.timesteps.device, dtype=ts_dtype)
            sched.num_inference_steps = len(sched.timesteps)
        sched.set_begin_index(0)
        return sched

    def _denoise(self, z, plan: list[Stage], first: int, scheduler, base_sigmas, cond, generator, num_steps, *,
                 renoise, resize_mode, stage_shift, resume_schedule, auto, auto_tol, min_switch, max_switch,
                 attention_kwargs, callback, callback_inputs, timer, timings, prompt_embeds):
        a = self.adapter
        base_size = plan[0].size
        evals: dict[str, int] = {}
        switches: list[int] = []
        used_sigmas: list[list[float]] = []
        per_eval = 2 if cond.do_cfg else 1
        if auto:  # two stages; the first runs until the clean estimate settles (at most max_switch steps)
            stages = [Stage(*plan[0].size, 0, max_switch), Stage(*plan[1].size, max_switch, num_steps)]
        else:
            stages = [s for s in plan[first:] if s.num_steps > 0]
        if first > 0:  # direct inference at a smaller size (k = 0): the whole schedule runs there
            shift = resolution_shift_factor(base_size, stages[0].size) if stage_shift else 1.0
            scheduler = self._fresh_scheduler(num_steps, restage_sigmas(base_sigmas, 0, num_steps, shift=shift))
        step_counter = 0
        with tqdm(total=sum(s.num_steps for s in stages), desc="SURF", **self._progress_kwargs) as bar:
            for si, stage in enumerate(stages):
                t_start = timer.now()
                used_sigmas.append([float(s) for s in scheduler.sigmas])
                n_run, prev_x0, last = 0, None, None
                for t in scheduler.timesteps[: stage.num_steps] if not (auto and si == 0) else scheduler.timesteps:
                    sigma = float(scheduler.sigmas[n_run])
                    v = a.predict(z, t, cond, step_index=step_counter, sigma=sigma, num_steps=num_steps,
                                  attention_kwargs=attention_kwargs)
                    last = (z, sigma, v)
                    n_run += 1
                    settled = False
                    if auto and si == 0:  # the clean estimate at the preview size costs no extra evaluation
                        x0s = resize_latent(estimate_x0(z, sigma, v), stages[1].size, resize_mode)
                        change = relative_change(x0s, prev_x0) if prev_x0 is not None else float("inf")
                        prev_x0 = x0s
                        settled = (n_run >= min_switch and change < auto_tol) or n_run >= max_switch
                    z = scheduler.step(v, t, z, return_dict=False)[0]
                    step_counter += 1
                    bar.update(1)
                    if callback is not None:
                        local = {"latents": z, "prompt_embeds": prompt_embeds}
                        out = callback(self, step_counter - 1, t, {k: local[k] for k in callback_inputs}) or {}
                        z = out.pop("latents", z)
                    if settled:
                        logger.info("switch_step='auto': switching after %d base steps", n_run)
                        break
                evals[f"stage{si}"] = n_run * per_eval
                timings[f"stage{si}"] = timer.now() - t_start
                if auto and si == 0:
                    stages[1] = Stage(*stages[1].size, n_run, num_steps)
                    bar.total = n_run + stages[1].num_steps
                if si == len(stages) - 1 or stages[si + 1].num_steps == 0:
                    break
                # Switch: the last evaluation of this stage gives x0 (or the stepped z for 'snr'); resize;
                # re-noise at the next stage's first sigma with a fresh solver state.
                nxt = stages[si + 1]
                switches.append(nxt.start)
                a.reset_cache()
                z, scheduler = self._switch(z, last, stage, nxt, scheduler, n_run, base_sigmas, base_size, num_steps,
                                            generator, renoise, resize_mode, stage_shift, resume_schedule)
        if auto and not switches:
            switches = [stages[0].end]
        return z, {"evals": evals, "switches": switches or [s.start for s in plan[1:]], "sigmas": used_sigmas}

    def _switch(self, z, last, stage, nxt, scheduler, n_run, base_sigmas, base_size, num_steps, generator,
                renoise, resize_mode, stage_shift, resume_schedule):
        shift = resolution_shift_factor(base_size, nxt.size) if stage_shift else 1.0
        if renoise == "snr":
            gain = resize_noise_gain(stage.size, nxt.size, resize_mode)
            sigma_next = float(scheduler.sigmas[n_run])
            if gain == 1.0 and shift == 1.0:  # same size: the stepped state is already where the run goes on
                new_sigmas = restage_sigmas(base_sigmas, nxt.start, nxt.end)
            else:
                z, s_new = snr_resume(resize_latent(z, nxt.size, resize_mode), sigma_next, gain)
                new_sigmas = restage_sigmas(base_sigmas, nxt.start, nxt.end, first_sigma=s_new, shift=shift,
                                            mode=resume_schedule)
        else:
            z_prev, sigma_prev, v_prev = last
            x0_small = resize_latent(estimate_x0(z_prev, sigma_prev, v_prev), nxt.size, resize_mode)
            new_sigmas = restage_sigmas(base_sigmas, nxt.start, nxt.end, shift=shift)
            z = renoise_fn(x0_small, float(new_sigmas[0]), _randn_like(x0_small, generator), renoise)
        return z, self._fresh_scheduler(num_steps, new_sigmas)

    def _refine(self, preview, cond, height, width, steps, noise_aug, generator):
        from ..core.flow_map import flow_map_sample, upsample_latent

        a = self.adapter
        size = (height // a.spatial_factor, width // a.spatial_factor)
        z_lr = upsample_latent(preview.float(), size)  # the same linear upsampling the refiner is trained on
        text = a.text_embeddings_for_refiner(cond)
        ref = self.refiner
        if text.shape[-1] != ref.config.text_dim:
            raise ValueError(
                f"refiner: text_dim {ref.config.text_dim} differs from the base's text embeddings ({text.shape[-1]})"
            )

        def model_fn(z_t, t):
            tt = (t * 1000.0).to(z_t.device).expand(z_t.shape[0])
            return ref(hidden_states=z_t.to(ref.dtype), timestep=tt, encoder_hidden_states=text.to(ref.dtype),
                       return_dict=False)[0].float()

        return flow_map_sample(model_fn, z_lr, num_steps=steps, noise_aug=noise_aug, generator=_first(generator),
                               progress=not self._progress_kwargs.get("disable", False))

    def _decode(self, latents, output_type, vae_tiling):
        vae = self.adapter.vae
        if vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        try:
            return self.adapter.decode(latents, output_type)
        finally:
            if vae_tiling and hasattr(vae, "disable_tiling"):
                vae.disable_tiling()

    @torch.no_grad()
    def refine(self, preview_latents: torch.Tensor, prompt=None, height: int | None = None, width: int | None = None,
               *, refine_steps: int = 10, refine_noise: float = 0.0, generator=None, output_type: str = "np",
               max_sequence_length: int = 512, vae_tiling: bool = False, prompt_embeds=None):
        """Refines saved preview latents ``[B, C, F, h, w]`` to ``height x width`` (no re-generation)."""
        from .checks import check_refine

        check_refine(self.adapter, self.refiner, preview_latents, height, width, refine_steps, output_type)
        from .parallel import check_context_parallel_sizes

        frames = (preview_latents.shape[2] - 1) * self.adapter.temporal_factor + 1
        check_context_parallel_sizes(self, [], [], frames, height, width)
        cond = self.adapter.encode(prompt, None, 1.0, 1, max_sequence_length, **(
            {"prompt_embeds": prompt_embeds} if self.adapter.name == "wan" else {}))
        emb = cond.tensors["encoder_hidden_states"]
        if emb.shape[0] == 1 and preview_latents.shape[0] > 1:
            cond.tensors = {k: v.expand(preview_latents.shape[0], *v.shape[1:]) for k, v in cond.tensors.items()}
        z = self._refine(preview_latents.to(self.adapter.device), cond, height, width, refine_steps, refine_noise,
                         generator)
        return z if output_type == "latent" else self._decode(z, output_type, vae_tiling)


def _first(generator):
    return generator[0] if isinstance(generator, list) else generator


def _randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)
