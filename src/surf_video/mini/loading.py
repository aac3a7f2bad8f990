"""Load the shipped SURF-Mini weights (``src/surf_video/assets/surf-mini``).

The folder has diffusers' pipeline layout (``model_index.json``, ``tokenizer/``, ``text_encoder/``,
``vae/``, ``transformer/``, ``scheduler/``) plus ``refiner/``. Weights are stored in float16 to keep
the repository small; loading upcasts to the requested dtype (float32 by default, what CPUs want).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

__all__ = [
    "SURF_MINI_PATH",
    "surf_mini_path",
    "load_surf_mini",
    "load_surf_mini_refiner",
    "has_surf_mini",
    "has_surf_mini_refiner",
]

SURF_MINI_PATH = Path(__file__).resolve().parent.parent / "assets" / "surf-mini"


def surf_mini_path(path: str | os.PathLike | None = None) -> Path:
    """The SURF-Mini folder: ``path`` if given, else the shipped one."""
    return Path(path) if path is not None else SURF_MINI_PATH


def has_surf_mini(path: str | os.PathLike | None = None) -> bool:
    """True when the folder holds a complete SURF-Mini pipeline (weights present, not LFS pointers)."""
    p = surf_mini_path(path)
    parts = [(p / "transformer", "diffusion_pytorch_model"), (p / "vae", "diffusion_pytorch_model"),
             (p / "text_encoder", "model")]
    return (p / "model_index.json").is_file() and all(_has_weights(*part) for part in parts)


def has_surf_mini_refiner(path: str | os.PathLike | None = None) -> bool:
    """True when ``<path>/refiner`` holds refiner weights (shipped since SURF-Mini v2; v1 had none)."""
    return _has_weights(surf_mini_path(path) / "refiner", "diffusion_pytorch_model")


def _has_weights(folder: Path, stem: str) -> bool:
    """True when ``folder`` holds ``stem.safetensors`` or every shard its ``stem.safetensors.index.json`` names.

    Files of 1 kB or less are Git LFS pointers (a clone without ``git lfs pull``), not weights.
    """
    index = folder / f"{stem}.safetensors.index.json"
    if index.is_file():
        files = {folder / name for name in json.loads(index.read_text())["weight_map"].values()}
    else:
        files = {folder / f"{stem}.safetensors"}
    return all(f.is_file() and f.stat().st_size > 1024 for f in files)


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
    return dtype


def load_surf_mini(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32):  # fmt: skip
    """Load SURF-Mini as a diffusers ``WanPipeline``.

    Args:
        path: pipeline folder (default: the shipped weights).
        device: device to move the pipeline to.
        dtype: dtype of the text encoder and transformer; the VAE always runs in float32 on CPU.

    Returns:
        ``WanPipeline``. Use ``max_sequence_length=surf_video.mini.config.MAX_SEQUENCE_LENGTH`` (40),
        17 frames and square sizes 64 / 128 / 192 / 288 (multiples of 16 work).
    """
    from diffusers import AutoencoderKLWan, WanPipeline

    dtype = _check_dtype(dtype)
    p = surf_mini_path(path)
    if not (p / "model_index.json").is_file():
        raise FileNotFoundError(f"no SURF-Mini pipeline at {p} (model_index.json missing)")
    vae_dtype = torch.float32 if torch.device(device).type == "cpu" else dtype
    with warnings.catch_warnings():  # diffusers >= 0.42 renames torch_dtype to dtype; older ones need it
        warnings.simplefilter("ignore", FutureWarning)
        vae = AutoencoderKLWan.from_pretrained(p / "vae", torch_dtype=vae_dtype)
        pipe = WanPipeline.from_pretrained(p, vae=vae, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_surf_mini_refiner(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                           dtype: torch.dtype = torch.float32):  # fmt: skip
    """Load the SURF-Mini Refiner (``RefinerTransformer3DModel``) from ``<path>/refiner``.

    It works in the base transformer's latent space (VAE latents normalised by the VAE config's
    ``latents_mean`` / ``latents_std``), takes the SURF-Mini text encoder's embeddings (padded to 40),
    and was trained for preview latents (64 px video, 8x8 latents) upsampled to 24x24 (192 px) and
    36x36 (288 px).
    """
    from surf_video.models.refiner import RefinerTransformer3DModel

    dtype = _check_dtype(dtype)
    p = surf_mini_path(path) / "refiner"
    if not (p / "config.json").is_file():
        raise FileNotFoundError(
            f"no SURF-Mini refiner at {p} (config.json missing); train one with `surf mini train refiner` "
            "(see assets/surf-mini/README.md)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = RefinerTransformer3DModel.from_pretrained(p, torch_dtype=dtype)
    return model.to(device).eval()
