"""Pixels <-> latents, and a resumable on-disk cache of (HR, LR) latent pairs.

Cache layout (written by :func:`cache_latents`, read by :class:`CachedLatentDataset`)::

    DIR/index.json            {"version": 1, "items": [{"shard": "shard-00000.safetensors",
                               "key": "17", "caption": ..., "source": ...}, ...], "done": [...]}
    DIR/shard-00000.safetensors   tensors "17.z_hr" [C, F, h, w], "17.z_lr", "17.text" [L, D]

A shard is written to a temporary name and renamed; the index is rewritten (also atomically)
only after its shard is in place, so an interrupted run loses at most the shard in progress and
a rerun continues from the first item the index does not list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from surf_video.train.config import EncoderConfig

__all__ = ["IdentityEncoder", "WanVAEEncoder", "build_encoder", "cache_latents", "CachedLatentDataset"]


class IdentityEncoder:
    """Pixels in [-1, 1] ``[B, 3, T, H, W]`` are the latents (for pixel-space toys and tests)."""

    latent_channels = 3
    temporal_factor = 1

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(-1, 1)


class WanVAEEncoder:
    """diffusers ``AutoencoderKLWan``, latents normalised with its ``latents_mean``/``latents_std``
    exactly as ``WanPipeline`` un-normalises them before decoding. Encoding uses the posterior mode
    (deterministic)."""

    def __init__(self, path: str, subfolder: str | None = None, device="cpu", dtype=torch.float32):
        from diffusers import AutoencoderKLWan

        if subfolder is None and ((Path(path) / "vae").is_dir() or not Path(path).is_dir()):
            subfolder = "vae"  # a pipeline folder, or a hub id in the diffusers layout
        self.vae = AutoencoderKLWan.from_pretrained(path, subfolder=subfolder, torch_dtype=dtype).to(device).eval()
        c = self.vae.config
        self.latent_channels = c.z_dim
        # causal video VAE: 1 + temporal_factor * k frames -> 1 + k latent frames
        self.temporal_factor = 2 ** sum(bool(x) for x in c.temperal_downsample)
        self.mean = torch.tensor(c.latents_mean).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(c.latents_std).view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        p = next(self.vae.parameters())
        z = self.vae.encode(x.to(p)).latent_dist.mode().float()
        return (z - self.mean.to(z)) / self.std.to(z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        p = next(self.vae.parameters())
        z = z.float() * self.std.to(z.device) + self.mean.to(z.device)
        return self.vae.decode(z.to(p), return_dict=False)[0].float().clamp(-1, 1)


def build_encoder(cfg: EncoderConfig, device="cpu"):
    """The encoder object (``encode``/``decode`` on ``[B, C, T, H, W]``) for ``cfg``."""
    if cfg.type == "identity":
        return IdentityEncoder()
    if cfg.type == "wan":
        return WanVAEEncoder(cfg.path, cfg.subfolder, device=device)
    from surf_video.train.data import load_callable

    return load_callable(cfg.path)()


def _atomic_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def cache_latents(dataset, encoder, out_dir: str | Path, text_encoder: Callable | None = None,
                  shard_size: int = 64, batch_size: int = 1, variants: int = 1, device="cpu") -> Path:
    """Encode every (item, variant) of a pixel dataset to HR/LR latents, resumably.

    Args:
        dataset: a pixel dataset indexed by ``(index, epoch, sample_id)`` (``VideoClipDataset`` /
            ``ProceduralDataset``); variant ``v`` of item ``i`` is read with ``epoch = v`` so it
            gets its own clip, crop and degradation.
        encoder: ``encode([B, 3, T, H, W]) -> [B, C, F, h, w]``.
        out_dir: the cache folder (created; an existing index is continued).
        text_encoder: ``captions -> [B, L, D]``; when given, embeddings are cached as ``text``.
        shard_size: items per safetensors shard.
        variants: degraded versions per source item.

    Returns:
        ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"version": 1, "items": []}
    done = {it["key"] for it in index["items"]}
    todo = [(i, v) for v in range(variants) for i in range(len(dataset)) if f"{i}_{v}" not in done]
    shard_no = len({it["shard"] for it in index["items"]})
    pending: dict[str, torch.Tensor] = {}
    meta: list[dict] = []

    def flush():
        nonlocal shard_no, pending, meta
        if not meta:
            return
        name = f"shard-{shard_no:05d}.safetensors"
        tmp = out / f".{name}.tmp"
        save_file({k: v.contiguous() for k, v in pending.items()}, str(tmp))
        os.replace(tmp, out / name)
        for m in meta:
            m["shard"] = name
        index["items"].extend(meta)
        _atomic_json(index_path, index)
        shard_no, pending, meta = shard_no + 1, {}, []

    for start in tqdm(range(0, len(todo), batch_size), desc="cache-latents", unit="batch"):
        chunk = todo[start : start + batch_size]
        items = [dataset[(i, v, i)] for i, v in chunk]
        hr = torch.stack([it["hr"] for it in items]).to(device)
        lr = torch.stack([it["lr"] for it in items]).to(device)
        z_hr, z_lr = encoder.encode(hr).cpu(), encoder.encode(lr).cpu()
        text = text_encoder([it["caption"] for it in items]).cpu() if text_encoder is not None else None
        for b, ((i, v), it) in enumerate(zip(chunk, items)):
            key = f"{i}_{v}"
            pending[f"{key}.z_hr"], pending[f"{key}.z_lr"] = z_hr[b].float(), z_lr[b].float()
            if text is not None:
                pending[f"{key}.text"] = text[b].float()
            src = dataset.entries[i][0] if hasattr(dataset, "entries") else str(i)
            meta.append({"key": key, "caption": it["caption"], "source": src, "variant": v})
        if len(meta) >= shard_size:
            flush()
    flush()
    index["shape"] = None
    index["temporal_factor"] = int(getattr(encoder, "temporal_factor", 1))
    if index["items"]:
        first = index["items"][0]
        with safe_open(str(out / first["shard"]), "pt") as fh:
            index["shape"] = list(fh.get_slice(f"{first['key']}.z_hr").get_shape())
    _atomic_json(index_path, index)
    return out


class CachedLatentDataset(torch.utils.data.Dataset):
    """Reads a cache written by :func:`cache_latents`.

    Args:
        path: the cache folder.
        latent_frames: crop to this many latent frames (``None``: all). Phases set it with
            :meth:`set_latent_frames`.
        crop: ``start`` (frames from 0; exact for causal video VAEs) or ``random`` (seeded).
        seed: seed of random crops.
    """

    def __init__(self, path: str | Path, latent_frames: int | None = None, crop: str = "start", seed: int = 0):
        self.path = Path(path)
        ip = self.path / "index.json"
        if not ip.is_file():
            raise FileNotFoundError(f"no index.json in latent cache {self.path}")
        index = json.loads(ip.read_text())
        self.items = index["items"]
        self.temporal_factor = int(index.get("temporal_factor") or 1)
        if not self.items:
            raise ValueError(f"latent cache {self.path} is empty")
        self.latent_frames, self.crop, self.seed = latent_frames, crop, seed
        self._handles: dict[str, object] = {}

    def set_latent_frames(self, n: int | None) -> None:
        self.latent_frames = n

    def set_num_frames(self, num_frames: int | None) -> None:
        """Crop to the latent frames of ``num_frames`` pixel frames (``1 + (n - 1) // temporal_factor``)."""
        self.latent_frames = None if num_frames is None else (num_frames - 1) // self.temporal_factor + 1

    def __len__(self) -> int:
        return len(self.items)

    def _get(self, shard: str, name: str) -> torch.Tensor | None:
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.path / shard), "pt")
        fh = self._handles[shard]
        return fh.get_tensor(name) if name in fh.keys() else None

    def __getstate__(self):  # file handles do not pickle into DataLoader workers
        return {**self.__dict__, "_handles": {}}

    def __getitem__(self, key) -> dict:
        index, epoch, sample_id = key if isinstance(key, tuple) else (key, 0, key)
        it = self.items[index]
        z_hr, z_lr = self._get(it["shard"], f"{it['key']}.z_hr"), self._get(it["shard"], f"{it['key']}.z_lr")
        out = {"z_hr": z_hr, "z_lr": z_lr, "caption": it["caption"], "sample_id": int(sample_id)}
        f = z_hr.shape[1]
        n = self.latent_frames
        if n is not None and n < f:
            s = 0
            if self.crop == "random":
                from surf_video.train.data import derive_seed

                s = int(np.random.default_rng(derive_seed(self.seed, epoch, index, 3)).integers(0, f - n + 1))
            out["z_hr"], out["z_lr"] = z_hr[:, s : s + n], z_lr[:, s : s + n]
        elif n is not None and n > f:
            raise ValueError(f"latent cache items have {f} frames, the phase asks for {n}")
        text = self._get(it["shard"], f"{it['key']}.text")
        if text is not None:
            out["text"] = text
        return out
