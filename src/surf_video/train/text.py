"""Caption -> text embeddings ``[B, L, D]`` for refiner training.

``hash``: a fixed, seeded table over UTF-8 bytes plus sinusoidal positions (no download, for tests
and smoke runs); ``t5``: a transformers T5/UMT5 encoder folder (Wan uses UMT5-XXL, padded to 512
tokens with zeros past the prompt, as diffusers' WanPipeline does); ``none``: one zero token.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from surf_video.train.config import TextConfig

__all__ = ["HashTextEncoder", "ZeroTextEncoder", "T5TextEncoder", "build_text_encoder"]


class HashTextEncoder:
    """Deterministic byte-level embeddings: ``[B, max_length, dim]``."""

    def __init__(self, dim: int, max_length: int = 16, seed: int = 1234):
        if dim < 1 or max_length < 1:
            raise ValueError(f"dim and max_length must be >= 1, got {dim}, {max_length}")
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(257, dim, generator=g)
        pos = torch.arange(max_length)[:, None].float()
        freq = torch.exp(-math.log(1e4) * torch.arange(0, dim, 2).float() / dim)
        pe = torch.zeros(max_length, dim)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
        self.pos = pe * 0.5
        self.dim, self.max_length = dim, max_length

    @torch.no_grad()
    def __call__(self, captions: Sequence[str], device=None) -> torch.Tensor:
        out = torch.zeros(len(captions), self.max_length, self.dim)
        for i, c in enumerate(captions):
            ids = list(c.encode("utf-8"))[: self.max_length] or [256]
            out[i, : len(ids)] = self.table[torch.tensor(ids)] + self.pos[: len(ids)]
        return out.to(device) if device is not None else out


class ZeroTextEncoder:
    def __init__(self, dim: int, length: int = 1):
        self.dim, self.length = dim, length

    def __call__(self, captions: Sequence[str], device=None) -> torch.Tensor:
        return torch.zeros(len(captions), self.length, self.dim, device=device)


class T5TextEncoder:
    """A transformers (UM)T5 encoder; zero-padded past each prompt like WanPipeline."""

    def __init__(self, path: str, max_length: int = 512, dtype=torch.float32, device="cpu"):
        from transformers import AutoTokenizer, UMT5EncoderModel

        sub = {"subfolder": "tokenizer"} if (_has(path, "tokenizer")) else {}
        self.tokenizer = AutoTokenizer.from_pretrained(path, **sub)
        sub = {"subfolder": "text_encoder"} if (_has(path, "text_encoder")) else {}
        self.model = UMT5EncoderModel.from_pretrained(path, torch_dtype=dtype, **sub).to(device).eval()
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, captions: Sequence[str], device=None) -> torch.Tensor:
        tok = self.tokenizer(list(captions), padding="max_length", max_length=self.max_length, truncation=True,
                             add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        dev = self.model.device
        mask = tok.attention_mask.to(dev)
        emb = self.model(tok.input_ids.to(dev), mask).last_hidden_state
        emb = emb * mask[..., None].to(emb.dtype)
        return emb.float().to(device) if device is not None else emb.float()


def _has(path: str, sub: str) -> bool:
    from pathlib import Path

    p = Path(path)
    return (p / sub).is_dir() or not p.is_dir()  # a hub id is assumed to use the diffusers layout


def build_text_encoder(cfg: TextConfig, text_dim: int | None = None):
    """The callable ``captions -> [B, L, D]`` for ``cfg`` (``None`` for ``cached``)."""
    dim = text_dim or cfg.dim
    if cfg.type == "hash":
        return HashTextEncoder(dim, cfg.max_length)
    if cfg.type == "none":
        return ZeroTextEncoder(dim)
    if cfg.type == "t5":
        return T5TextEncoder(cfg.path, cfg.max_length)
    if cfg.type == "callable":
        from surf_video.train.data import load_callable

        return load_callable(cfg.path)()
    return None
