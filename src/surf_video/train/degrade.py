"""Seeded degradations that turn a clean clip into a refiner input.

Pixel level (Real-ESRGAN style, second order): blur (isotropic / anisotropic Gaussian,
generalised Gaussian) -> random resize (several interpolations) -> Gaussian / Poisson noise ->
JPEG, twice, then down to ``1 / scale`` of the target size, an optional H.264 round trip through
PyAV at a random CRF, and back up to the target size. Parameters are drawn once per clip (every
frame gets the same degradation) unless ``per_frame`` is set.

Latent level: flow-form noise at a random level and a latent down/up-scale, so the task is not
plain super-resolution. Preview-like: the clean latent downscaled by the preview factor and
linearly upsampled (what the refiner sees at inference), mixed in at ``preview.prob``.

Everything is a pure function of the seed / generator passed in.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "StageConfig",
    "PixelDegradeConfig",
    "LatentDegradeConfig",
    "PreviewConfig",
    "DegradeConfig",
    "blur_kernel",
    "degrade_video",
    "degrade_latents",
    "preview_like",
]

_MODES = ("area", "bilinear", "bicubic", "nearest")


def _check_range(name: str, r, lo: float = -math.inf, hi: float = math.inf) -> None:
    if len(r) != 2 or not lo <= r[0] <= r[1] <= hi:
        raise ValueError(f"{name} must be [low, high] with {lo} <= low <= high <= {hi}, got {r}")


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


@dataclass
class StageConfig:
    """One order of the Real-ESRGAN chain. Sigmas/kernel sizes in pixels, noise sigma in 0..255."""

    blur_prob: float = 1.0
    kernel_size: list[int] = field(default_factory=lambda: [7, 21])
    sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    anisotropic_prob: float = 0.5
    generalized_prob: float = 0.15
    beta: list[float] = field(default_factory=lambda: [0.5, 4.0])
    resize_prob: float = 1.0
    resize_scale: list[float] = field(default_factory=lambda: [0.15, 1.5])
    resize_modes: list[str] = field(default_factory=lambda: ["area", "bilinear", "bicubic"])
    gaussian_noise_prob: float = 0.5
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 30.0])
    gray_noise_prob: float = 0.4
    poisson_noise_prob: float = 0.5
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 3.0])
    jpeg_prob: float = 1.0
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])

    def validate(self) -> None:
        for name in ("blur_prob", "anisotropic_prob", "generalized_prob", "resize_prob", "gaussian_noise_prob",
                     "gray_noise_prob", "poisson_noise_prob", "jpeg_prob"):
            _check_prob(name, getattr(self, name))
        _check_range("kernel_size", self.kernel_size, 1)
        _check_range("sigma", self.sigma, 1e-3)
        _check_range("beta", self.beta, 1e-3)
        _check_range("resize_scale", self.resize_scale, 1e-2)
        _check_range("noise_sigma", self.noise_sigma, 0)
        _check_range("poisson_scale", self.poisson_scale, 0)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        bad = [m for m in self.resize_modes if m not in _MODES]
        if bad or not self.resize_modes:
            raise ValueError(f"resize_modes must be a non-empty subset of {_MODES}, got {self.resize_modes}")


@dataclass
class PixelDegradeConfig:
    enabled: bool = True
    per_frame: bool = False
    scale: float = 2.0
    first: StageConfig = field(default_factory=StageConfig)
    second_order_prob: float = 0.8
    second: StageConfig = field(default_factory=lambda: StageConfig(
        blur_prob=0.8, sigma=[0.2, 1.5], resize_scale=[0.3, 1.2], noise_sigma=[1.0, 25.0],
        poisson_scale=[0.05, 2.5]))
    final_modes: list[str] = field(default_factory=lambda: ["area", "bilinear", "bicubic"])
    codec_prob: float = 0.3
    codec_crf: list[int] = field(default_factory=lambda: [18, 35])
    upscale_mode: str = "bilinear"

    _nested: ClassVar[dict] = {"first": StageConfig, "second": StageConfig}

    def validate(self) -> None:
        if self.scale < 1:
            raise ValueError(f"degrade.pixel.scale must be >= 1, got {self.scale}")
        _check_prob("second_order_prob", self.second_order_prob)
        _check_prob("codec_prob", self.codec_prob)
        _check_range("codec_crf", self.codec_crf, 0, 51)
        if self.upscale_mode not in _MODES or any(m not in _MODES for m in self.final_modes):
            raise ValueError(f"upscale_mode / final_modes must be in {_MODES}")


@dataclass
class LatentDegradeConfig:
    noise_prob: float = 0.5
    noise_level: list[float] = field(default_factory=lambda: [0.0, 0.3])
    rescale_prob: float = 0.3
    rescale_factor: list[float] = field(default_factory=lambda: [1.0, 2.0])

    def validate(self) -> None:
        _check_prob("noise_prob", self.noise_prob)
        _check_prob("rescale_prob", self.rescale_prob)
        _check_range("noise_level", self.noise_level, 0, 1)
        _check_range("rescale_factor", self.rescale_factor, 1)


@dataclass
class PreviewConfig:
    prob: float = 0.3
    factor: int = 2
    mode: str = "bilinear"

    def validate(self) -> None:
        _check_prob("preview.prob", self.prob)
        if self.factor < 1:
            raise ValueError(f"preview.factor must be >= 1, got {self.factor}")
        if self.mode not in ("bilinear", "area", "bicubic", "nearest"):
            raise ValueError(f"preview.mode must be bilinear, area, bicubic or nearest, got {self.mode!r}")


@dataclass
class DegradeConfig:
    pixel: PixelDegradeConfig = field(default_factory=PixelDegradeConfig)
    latent: LatentDegradeConfig = field(default_factory=LatentDegradeConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)

    _nested: ClassVar[dict] = {"pixel": PixelDegradeConfig, "latent": LatentDegradeConfig, "preview": PreviewConfig}


# ----------------------------------------------------------------------------- kernels


def blur_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float = 1.0) -> np.ndarray:
    """A normalised (generalised) Gaussian kernel ``[size, size]``.

    ``exp(-0.5 * (d^T S^-1 d) ** beta)`` with covariance ``S`` from the two sigmas rotated by
    ``theta``; ``beta = 1`` is the ordinary Gaussian.
    """
    if size % 2 == 0:
        size += 1
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    d = np.stack([xx, yy], -1).astype(np.float64)
    q = np.einsum("...i,ij,...j->...", d, inv, d)
    k = np.exp(-0.5 * np.power(q, beta))
    return (k / k.sum()).astype(np.float32)


def _sample_kernel(rng: np.random.Generator, cfg: StageConfig) -> np.ndarray:
    lo, hi = cfg.kernel_size
    size = int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1
    sx = float(rng.uniform(*cfg.sigma))
    if rng.random() < cfg.anisotropic_prob:
        sy, theta = float(rng.uniform(*cfg.sigma)), float(rng.uniform(-math.pi, math.pi))
    else:
        sy, theta = sx, 0.0
    beta = float(rng.uniform(*cfg.beta)) if rng.random() < cfg.generalized_prob else 1.0
    return blur_kernel(size, sx, sy, theta, beta)


# ----------------------------------------------------------------------------- pixel ops


def _blur(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    k = torch.from_numpy(kernel).to(x)
    pad = k.shape[-1] // 2
    # reflect padding needs pad < size; fall back to replicate for tiny frames
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    c = x.shape[1]
    return F.conv2d(xp, k.expand(c, 1, *k.shape), groups=c)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    size = (max(int(size[0]), 1), max(int(size[1]), 1))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "area" and (size[0] > x.shape[-2] or size[1] > x.shape[-1]):
        mode = "bilinear"  # area only makes sense for shrinking
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    if mode in ("bilinear", "bicubic"):
        kw["antialias"] = True
    if mode == "nearest":
        mode = "nearest-exact"
    return F.interpolate(x, size=size, mode=mode, **kw).clamp(0, 1)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    from PIL import Image

    frames = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def _codec(x: torch.Tensor, crf: int) -> torch.Tensor:
    from surf_video.io.video import decode_video_bytes, encode_video_bytes

    t, _, h, w = x.shape
    frames = (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = decode_video_bytes(encode_video_bytes(frames, crf=int(crf)))[:t, :h, :w]
    return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).float() / 255


def _stage(x: torch.Tensor, rng: np.random.Generator, cfg: StageConfig, ref_hw: tuple[int, int]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if rng.random() < cfg.blur_prob:
        x = _blur(x, _sample_kernel(rng, cfg))
    if rng.random() < cfg.resize_prob:
        s = float(rng.uniform(*cfg.resize_scale))
        mode = cfg.resize_modes[int(rng.integers(len(cfg.resize_modes)))]
        x = _resize(x, (round(ref_hw[0] * s), round(ref_hw[1] * s)), mode)
    if rng.random() < cfg.gaussian_noise_prob:
        sigma = float(rng.uniform(*cfg.noise_sigma)) / 255
        shape = (x.shape[0], 1, *x.shape[2:]) if rng.random() < cfg.gray_noise_prob else x.shape
        x = (x + torch.randn(shape, generator=gen) * sigma).clamp(0, 1)
    if rng.random() < cfg.poisson_noise_prob:
        scale = float(rng.uniform(*cfg.poisson_scale))
        vals = 255.0
        noisy = torch.poisson(x * vals, generator=gen) / vals
        x = (x + (noisy - x) * scale).clamp(0, 1)
    if rng.random() < cfg.jpeg_prob:
        x = _jpeg(x, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return x


def _degrade_clip(x: torch.Tensor, rng: np.random.Generator, cfg: PixelDegradeConfig) -> torch.Tensor:
    h, w = x.shape[-2:]
    lh, lw = max(round(h / cfg.scale), 1), max(round(w / cfg.scale), 1)
    x = _stage(x, rng, cfg.first, (h, w))
    if rng.random() < cfg.second_order_prob:
        # the second order resizes relative to the current (already resized) frame, as Real-ESRGAN does
        x = _stage(x, rng, cfg.second, tuple(x.shape[-2:]))
    x = _resize(x, (lh, lw), cfg.final_modes[int(rng.integers(len(cfg.final_modes)))])
    if rng.random() < cfg.codec_prob:
        x = _codec(x, int(rng.integers(cfg.codec_crf[0], cfg.codec_crf[1] + 1)))
    return _resize(x, (h, w), cfg.upscale_mode)


def degrade_video(frames: np.ndarray, cfg: PixelDegradeConfig | None = None, seed: int = 0) -> np.ndarray:
    """Degrade a clip at pixel level, seeded.

    Args:
        frames: ``np.uint8 [T, H, W, 3]``.
        cfg: parameters (default :class:`PixelDegradeConfig`).
        seed: all random choices derive from it; equal seeds give equal outputs.

    Returns:
        ``np.uint8 [T, H, W, 3]``, same size as the input (down-scaled by ``cfg.scale`` inside
        the chain and brought back up).
    """
    cfg = cfg or PixelDegradeConfig()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if not cfg.enabled:
        return frames.copy()
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255
    rng = np.random.default_rng(seed)
    if cfg.per_frame:
        # frames get independent parameters; the codec still sees the whole clip
        single = PixelDegradeConfig(**{**cfg.__dict__, "codec_prob": 0.0})
        x = torch.cat([_degrade_clip(x[i : i + 1], np.random.default_rng(rng.integers(2**62)), single)
                       for i in range(x.shape[0])])
        if rng.random() < cfg.codec_prob:
            x = _codec(x, int(rng.integers(cfg.codec_crf[0], cfg.codec_crf[1] + 1)))
    else:
        x = _degrade_clip(x, rng, cfg)
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------- latent ops


def _spatial_resize(z: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize ``[C, F, H, W]`` or ``[B, C, F, H, W]`` latents spatially (frames unchanged)."""
    squeeze = z.ndim == 4
    if squeeze:
        z = z[None]
    b, c, f, h, w = z.shape
    x = z.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    x = F.interpolate(x.float(), size=size, mode="nearest-exact" if mode == "nearest" else mode, **kw).to(z.dtype)
    x = x.reshape(b, f, c, *size).permute(0, 2, 1, 3, 4)
    return x[0] if squeeze else x


def preview_like(z_hr: torch.Tensor, factor: int = 2, mode: str = "bilinear") -> torch.Tensor:
    """The clean latent downscaled by ``factor`` (area) and linearly upsampled back.

    Args:
        z_hr: ``[C, F, H, W]`` or ``[B, C, F, H, W]``.
    """
    h, w = z_hr.shape[-2:]
    low = _spatial_resize(z_hr, (max(h // factor, 1), max(w // factor, 1)), "area")
    return _spatial_resize(low, (h, w), mode)


def degrade_latents(z_lr: torch.Tensor, z_hr: torch.Tensor, cfg: DegradeConfig, generator: torch.Generator) -> torch.Tensor:
    """Latent-level degradation of one sample (or preview-like replacement), seeded.

    Args:
        z_lr: ``[C, F, H, W]``, latent of the pixel-degraded clip.
        z_hr: ``[C, F, H, W]``, clean latent (used by the preview-like branch).
        cfg: the degradation recipe (``latent`` and ``preview`` sections are used).
        generator: a CPU ``torch.Generator``; every random choice is drawn from it.

    Returns:
        ``[C, F, H, W]`` degraded latent, same dtype.
    """
    u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    if u[0] < cfg.preview.prob:
        return preview_like(z_hr, cfg.preview.factor, cfg.preview.mode)
    lc = cfg.latent
    z = z_lr
    if u[1] < lc.rescale_prob:
        f = lc.rescale_factor[0] + (lc.rescale_factor[1] - lc.rescale_factor[0]) * u[3]
        h, w = z.shape[-2:]
        z = _spatial_resize(_spatial_resize(z, (max(round(h / f), 1), max(round(w / f), 1)), "area"), (h, w), "bilinear")
    if u[2] < lc.noise_prob:
        s = float(lc.noise_level[0] + (lc.noise_level[1] - lc.noise_level[0]) * torch.rand(1, generator=generator).item())
        eps = torch.randn(z.shape, generator=generator).to(z)
        z = (1 - s) * z + s * eps
    return z
