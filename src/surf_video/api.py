"""High-level functions behind the ``surf`` CLI: load a SURF pipeline, generate, preview, refine, upscale.

Each function is importable and does what its CLI subcommand does, so scripts and notebooks can call
them directly.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .pipelines.surf_pipeline import SURFPipeline

logger = logging.getLogger(__name__)

__all__ = [
    "load_pipeline",
    "generate",
    "make_previews",
    "save_preview",
    "load_preview",
    "refine_preview",
    "upscale_video",
    "to_uint8",
    "defaults_for",
    "LOCAL_BASES",
]

#: base names that need no download: SURF-Mini (shipped) and tiny random pipelines (tests, smoke runs)
LOCAL_BASES = ("surf-mini", "tiny-wan", "tiny-hunyuan")
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def load_pipeline(base: str = "surf-mini", refiner: str | None = "auto", device: str = "cpu",
                  dtype: str | torch.dtype | None = None) -> SURFPipeline:
    """Builds a :class:`SURFPipeline`.

    Args:
        base: ``'surf-mini'`` (shipped), ``'tiny-wan'`` / ``'tiny-hunyuan'`` (random toy pipelines), or a
            diffusers folder / hub id of a Wan 2.1 or HunyuanVideo pipeline.
        refiner: a folder with a ``RefinerTransformer3DModel`` (safetensors), ``'auto'`` (SURF-Mini's own
            refiner for ``surf-mini``, none otherwise) or ``None``.
        device: torch device.
        dtype: weights dtype (``'bf16'``, ``'fp16'``, ``'fp32'``); default: as stored (fp32 for SURF-Mini).
    """
    dt = _dtype(dtype)
    base_size = None
    ref = None
    if base == "surf-mini":
        from .mini.config import OPTIMAL_SIZE
        from .mini.loading import has_surf_mini, has_surf_mini_refiner, load_surf_mini, load_surf_mini_refiner

        if not has_surf_mini():
            raise FileNotFoundError("base: the SURF-Mini weights are not in this install "
                                    "(src/surf_video/assets/surf-mini); use --base tiny-wan or a diffusers folder")
        pipe = load_surf_mini(device=device, dtype=dt or torch.float32)
        base_size = (OPTIMAL_SIZE, OPTIMAL_SIZE)
        if refiner == "auto" and has_surf_mini_refiner():
            ref = load_surf_mini_refiner(device=device, dtype=dt or torch.float32)
        elif refiner == "auto":
            logger.warning("this SURF-Mini folder has no refiner (see its model card): writing the preview only")
    elif base in ("tiny-wan", "tiny-hunyuan"):
        from .pipelines.tiny import tiny_hunyuan_pipeline, tiny_wan_pipeline

        pipe = tiny_wan_pipeline() if base == "tiny-wan" else tiny_hunyuan_pipeline()
        base_size = (32, 32)
        if refiner == "auto" and base == "tiny-wan":
            from .models.refiner import RefinerTransformer3DModel

            torch.manual_seed(0)
            ref = RefinerTransformer3DModel.from_config_name("refiner-tiny", text_dim=32)
    else:
        from diffusers import DiffusionPipeline

        if not Path(base).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(f"base: {base} is not a local folder and the hub is offline")
        pipe = DiffusionPipeline.from_pretrained(base, torch_dtype=dt)
    if refiner not in (None, "auto"):
        from .models.refiner import RefinerTransformer3DModel

        if not Path(refiner).is_dir():
            raise FileNotFoundError(f"refiner: {refiner} is not a folder with a RefinerTransformer3DModel")
        ref = RefinerTransformer3DModel.from_pretrained(refiner, torch_dtype=dt)
    pipe.to(device)
    if ref is not None:
        ref.to(device)
        if dt is not None:
            ref.to(dtype=dt)
    return SURFPipeline.from_pipe(pipe, refiner=ref, base_size=base_size)


def to_uint8(frames) -> np.ndarray:
    """``[F, H, W, 3]`` floats in [0, 1] (diffusers' ``np`` output) to uint8."""
    arr = np.asarray(frames)
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _generator(seed: int | None, device: str) -> torch.Generator:
    g = torch.Generator(device="cpu" if str(device).startswith("mps") else device)
    return g.manual_seed(int(seed if seed is not None else 0))


def generate(pipe: SURFPipeline, prompt: str, out: str | os.PathLike, *, seed: int = 0, fps: int = 16,
             height: int | None = None, width: int | None = None, **call_kwargs) -> dict:
    """Generates one video and writes it to ``out`` (mp4/webm/gif by extension).

    ``height``/``width`` is the refined output size (needs a refiner); without them the preview is written.
    Other keyword arguments go to :meth:`SURFPipeline.__call__`. Returns a summary dict (timings, sizes).
    """
    from .io.video import write_video

    device = str(pipe.adapter.device)
    if pipe.refiner is None:
        height = width = None
    result = pipe(prompt, generator=_generator(seed, device), height=height, width=width, output_type="np",
                  **call_kwargs)
    video = to_uint8(result.frames[0])
    from .pipelines.parallel import is_main_process

    # Under context parallelism every rank holds the same video; only rank 0 writes it.
    path = write_video(out, video, fps=fps) if is_main_process() else Path(out)
    summary = {
        "out": str(path), "frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2]),
        "switch_steps": result.switch_steps, "num_evaluations": result.num_evaluations,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    logger.info("generate: %s", summary)
    return summary


def make_previews(pipe: SURFPipeline, prompt: str, out_dir: str | os.PathLike, *, num_previews: int = 1,
                  seed: int = 0, fps: int = 16, **call_kwargs) -> list[Path]:
    """Makes ``num_previews`` previews in one batched call; saves each as ``preview_<i>.mp4`` + ``.safetensors``."""
    from .io.video import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = str(pipe.adapter.device)
    result = pipe(prompt, generator=_generator(seed, device), num_previews=num_previews, output_type="np",
                  **call_kwargs)
    paths = []
    for i in range(num_previews):
        write_video(out_dir / f"preview_{i}.mp4", to_uint8(result.frames[i]), fps=fps)
        meta = {"prompt": prompt, "seed": seed, "index": i, "switch_steps": result.switch_steps}
        paths.append(save_preview(out_dir / f"preview_{i}.safetensors", result.preview_latents[i : i + 1], meta))
    return paths


def save_preview(path: str | os.PathLike, latents: torch.Tensor, meta: dict) -> Path:
    """Saves preview latents ``[1, C, F, h, w]`` with JSON metadata as safetensors (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({"preview_latents": latents.detach().float().cpu().contiguous()}, str(tmp),
              metadata={"surf_video": json.dumps(meta)})
    os.replace(tmp, path)
    return path


def load_preview(path: str | os.PathLike) -> tuple[torch.Tensor, dict]:
    """Reads what :func:`save_preview` wrote: ``(latents, metadata)``."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"preview: expected a .safetensors file written by `surf preview`, got {path.name}")
    if not path.is_file():
        raise FileNotFoundError(f"preview: {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("surf_video", "{}"))
        return f.get_tensor("preview_latents"), meta


def refine_preview(pipe: SURFPipeline, preview: str | os.PathLike, out: str | os.PathLike, *, height: int, width: int,
                   prompt: str | None = None, refine_steps: int = 10, seed: int = 0, fps: int = 16,
                   vae_tiling: bool = False, max_sequence_length: int = 512) -> dict:
    """Refines a saved preview (``surf preview`` output) to ``height x width`` and writes the video."""
    from .io.video import write_video

    latents, meta = load_preview(preview)
    prompt = prompt if prompt is not None else meta.get("prompt")
    if not prompt:
        raise ValueError("prompt: the preview file holds no prompt; pass --prompt")
    frames = pipe.refine(latents, prompt, height, width, refine_steps=refine_steps, output_type="np",
                         generator=_generator(seed, str(pipe.adapter.device)), vae_tiling=vae_tiling,
                         max_sequence_length=max_sequence_length)
    video = to_uint8(frames[0])
    write_video(out, video, fps=fps)
    return {"out": str(out), "frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2])}


def upscale_video(pipe: SURFPipeline, video_path: str | os.PathLike, out: str | os.PathLike, *, height: int, width: int,
                  prompt: str = "", refine_steps: int = 10, seed: int = 0, fps: int = 16, vae_tiling: bool = False,
                  max_sequence_length: int = 512, back_projection: int = 0) -> dict:
    """Refines an existing low-resolution video (the paper's video super-resolution use, Table 3).

    Encodes the video with the base VAE, upsamples its latent to ``height x width`` and runs the refiner.
    ``back_projection`` > 0 then pulls the decoded frames towards the input's pixels with that many
    iterations of :func:`surf_video.core.back_project` (it undoes the VAE's errors at the scales the
    input holds; on SURF-Mini's held-out clips 3 iterations add 6-7 dB, see the README).
    """
    from .io.video import read_video, write_video

    if back_projection < 0:
        raise ValueError(f"back_projection must be >= 0 (iterations; 0 = off), got {back_projection}")
    a = pipe.adapter
    frames = read_video(video_path)
    t = frames.shape[0]
    keep = (t - 1) // a.temporal_factor * a.temporal_factor + 1
    if keep < 1 or t < 1:
        raise ValueError(f"video: {video_path} has no frames")
    m = a.spatial_factor
    h, w = frames.shape[1] // m * m, frames.shape[2] // m * m
    if h == 0 or w == 0:
        raise ValueError(f"video: frames of {frames.shape[1]}x{frames.shape[2]} are smaller than the VAE factor {m}")
    if keep != t:
        logger.warning("upscale: using the first %d of %d frames (the VAE takes %dn+1)", keep, t, a.temporal_factor)
    x = torch.from_numpy(frames[:keep, :h, :w]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        latents = a.encode_video(x)
    frames_out = pipe.refine(latents, prompt or "a video", height, width, refine_steps=refine_steps, output_type="np",
                             generator=_generator(seed, str(a.device)), vae_tiling=vae_tiling,
                             max_sequence_length=max_sequence_length)
    video = frames_out[0]
    if back_projection:
        video = _back_project_frames(np.asarray(video, dtype=np.float32), frames[:keep, :h, :w], back_projection)
    video = to_uint8(video)
    write_video(out, video, fps=fps)
    return {"out": str(out), "frames": int(video.shape[0]), "height": int(video.shape[1]), "width": int(video.shape[2])}


def _back_project_frames(video: np.ndarray, lr_u8: np.ndarray, iterations: int, chunk: int = 8) -> np.ndarray:
    """:func:`surf_video.core.back_project` of float frames ``[T, H, W, 3]`` onto uint8 ``[T, h, w, 3]``, a few
    frames at a time (a 1080p clip in float32 at once would take several GB per temporary)."""
    from .core import back_project

    if video.shape[0] != lr_u8.shape[0]:
        raise ValueError(f"video: the refiner returned {video.shape[0]} frames for {lr_u8.shape[0]} input frames; "
                         "back-projection needs one output frame per input frame")  # fmt: skip
    out = np.empty_like(video)
    for i in range(0, video.shape[0], chunk):
        sr = torch.from_numpy(video[i : i + chunk]).permute(0, 3, 1, 2)  # [t, 3, H, W]
        lr = torch.from_numpy(lr_u8[i : i + chunk]).permute(0, 3, 1, 2).float() / 255
        out[i : i + chunk] = back_project(sr, lr, iterations).permute(0, 2, 3, 1).numpy()
    return out


def defaults_for(base: str) -> dict:
    """Sampling defaults per base: the model's own frames, steps, guidance (and SURF-Mini's target size)."""
    if base == "surf-mini":
        from .mini.config import GUIDANCE_SCALE, MAX_SEQUENCE_LENGTH, NUM_FRAMES, TARGET_SIZES

        # 40 steps with CFG, SURF's k = 10 of 40 (the paper's split), refined to the larger target
        return {"num_frames": NUM_FRAMES, "num_inference_steps": 40, "guidance_scale": GUIDANCE_SCALE,
                "switch_step": 10, "max_sequence_length": MAX_SEQUENCE_LENGTH, "target_size": (TARGET_SIZES[-1],) * 2,
                "target_sizes": [(s, s) for s in TARGET_SIZES]}
    if base in ("tiny-wan", "tiny-hunyuan"):
        return {"num_frames": 5, "num_inference_steps": 8, "guidance_scale": 3.0, "switch_step": 3,
                "target_size": (64, 64)}
    # Wan 2.1 / HunyuanVideo: diffusers' own defaults (81 frames, 50 steps, guidance 5.0)
    return {"num_frames": 81, "num_inference_steps": 50, "guidance_scale": 5.0}
