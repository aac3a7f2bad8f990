"""Refined rows of the signature benchmark (issue 7, ``surf eval signature --refiner PATH``).

Every SURF method (``kind='surf'``) gets a ``<name>+refiner`` row: its final preview latent goes through
:meth:`SURFPipeline.refine` (the code path of ``surf refine``: linear latent upsampling to the target size,
then ``refine_steps`` Euler steps of the flow map, :func:`surf_video.core.flow_map.flow_map_sample`) at
``refine_size`` pixels. The refined video is decoded at that size and area-downsized to the scoring size like
every other video. Cost: the source method's forwards and FLOPs plus ``refine_steps`` refiner forwards (no
CFG) at the target size (:func:`surf_video.bench.flops.refiner_forward_flops`, windowed attention counted);
seconds: the source's plus the refine call's (its text encoding included, as ``surf refine`` does).

A video of ``switch_step='auto'`` that never switched ends at the base size; it is refined from there.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

__all__ = ["load_refiner", "check_refiner", "refined_methods", "run_refined", "refiner_flops_per_forward"]


def load_refiner(path: str | Path):
    """A ``RefinerTransformer3DModel`` from a ``save_pretrained`` folder (safetensors), in eval mode.

    Raises:
        FileNotFoundError: if ``path`` is not a folder with a refiner config and safetensors weights.
    """
    from ..models.refiner import RefinerTransformer3DModel

    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"--refiner: {p} is not a folder (expected a RefinerTransformer3DModel saved with "
                                "save_pretrained)")
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"--refiner: {p} holds no config.json (expected a RefinerTransformer3DModel saved "
                                "with save_pretrained)")
    return RefinerTransformer3DModel.from_pretrained(p).eval()


def check_refiner(surf, cfg) -> None:
    """Checks, before any model work, that ``surf.refiner`` can refine this benchmark's previews.

    Raises:
        ValueError: no refiner, latent channels or text width that differ from the base's, or a target size the
            refiner cannot produce (not a multiple of the latent grid, or smaller than the preview).
    """
    ref = surf.refiner
    if ref is None:
        raise ValueError("refine_size: set, but the SURFPipeline has no refiner (pass --refiner PATH)")
    a = surf.adapter
    z = a.latent_channels
    rc = ref.config
    if rc.in_channels != z or rc.out_channels != z:
        raise ValueError(f"--refiner: its latent channels (in {rc.in_channels}, out {rc.out_channels}) differ from the "
                         f"base's latent space ({z} channels); train or pick a refiner for this VAE")
    text_dim = a.transformer.config.text_dim
    if rc.text_dim != text_dim:
        raise ValueError(f"--refiner: its text_dim ({rc.text_dim}) differs from the base's text embeddings ({text_dim})")
    size, step = cfg.refine_size, a.spatial_factor * int(rc.patch_size[-1])
    if not isinstance(size, int) or size < cfg.preview_size or size % step:
        raise ValueError(f"--target-size must be a multiple of {step} and >= the preview size {cfg.preview_size}, "
                         f"got {size!r}")
    if not isinstance(cfg.refine_steps, int) or cfg.refine_steps < 1:
        raise ValueError(f"refine_steps must be an integer >= 1, got {cfg.refine_steps!r}")


def refined_methods(methods: list) -> list:
    """A ``<name>+refiner`` method for every SURF method in ``methods``."""
    from .signature import Method

    return [Method(f"{m.name}+refiner", "refined", form=m.form, k=m.k, at_preview=False, source=m.name)
            for m in methods if m.kind == "surf"]


def refiner_flops_per_forward(surf, cfg) -> float:
    """Analytic FLOPs of one refiner forward at ``cfg.refine_size`` (batch 1)."""
    from .flops import patch_grid, refiner_forward_flops

    a, rc = surf.adapter, dict(surf.refiner.config)
    grid = patch_grid(cfg.num_frames, cfg.refine_size, cfg.refine_size, patch=tuple(rc["patch_size"]),
                      vae_temporal=a.temporal_factor, vae_spatial=a.spatial_factor)
    return float(refiner_forward_flops(rc, grid, text_len=cfg.max_sequence_length)["total"])


@torch.no_grad()
def run_refined(surf, m, source: dict, source_flops: list[float], cfg, prompts: list[str]) -> dict:
    """Refines a source method's final latents (one batch) with :meth:`SURFPipeline.refine`.

    Args:
        m: the ``'refined'`` method.
        source: the source method's run (``latents`` a ``[B, ...]`` tensor or a list of ``[C, F, h, w]``,
            ``evals``, ``seconds``, ``switch``).
        source_flops: the source's transformer FLOPs per video.
        prompts: the batch's B captions.

    Returns:
        A run like the others, with per-video ``evals`` (the source's plus ``"refiner": refine_steps``) and
        ``flops`` (the source's plus the refiner's).
    """
    size, steps = cfg.refine_size, cfg.refine_steps
    kw = dict(refine_steps=steps, output_type="latent", max_sequence_length=cfg.max_sequence_length)
    lat = source["latents"]
    t0 = time.perf_counter()
    if isinstance(lat, torch.Tensor):
        out = surf.refine(lat, list(prompts), size, size, **kw)
    else:  # 'auto': previews of mixed sizes, one call each
        out = [surf.refine(z[None], p, size, size, **kw)[0] for z, p in zip(lat, prompts)]
    if surf.adapter.device.type == "cuda":
        torch.cuda.synchronize()
    own = (time.perf_counter() - t0) / len(prompts)
    b = len(prompts)
    evs = source["evals"] if isinstance(source["evals"], list) else [source["evals"]] * b
    per = refiner_flops_per_forward(surf, cfg)
    return {"latents": out, "evals": [{**ev, "refiner": steps} for ev in evs], "seconds": source["seconds"] + own,
            "switch": source["switch"], "flops": [f + steps * per for f in source_flops]}
