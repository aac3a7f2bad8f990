"""Noise reshifting: the switch from one latent resolution to a smaller one mid-trajectory.

All functions act on video latents shaped ``[B, C, F, H, W]`` (batch, channels, latent frames, height,
width) in the space the transformer sees (after the VAE's latent normalisation), and never touch frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "RENOISE_MODES",
    "RESIZE_MODES",
    "estimate_x0",
    "resize_latent",
    "resize_noise_gain",
    "renoise",
    "snr_resume",
    "relative_change",
]

RENOISE_MODES = ("flow", "paper", "snr")
RESIZE_MODES = ("bilinear", "area", "bicubic", "nearest-exact")


def estimate_x0(z: torch.Tensor, sigma: float | torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Clean-latent estimate from a velocity prediction (paper section 3.2): ``x0 = z - sigma * v``.

    Args:
        z: noisy latent at ``sigma``, ``[B, C, F, H, W]``.
        sigma: its noise level (scalar, or ``[B]``).
        v: the model's velocity ``eps - x0`` at ``(z, sigma)``, same shape as ``z``.
    """
    sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    if sigma.ndim == 1:
        sigma = sigma.view(-1, *([1] * (z.ndim - 1)))
    return z - sigma * v


def resize_latent(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Spatial resize of a video latent; frames untouched (the paper's "simple linear downscale").

    Args:
        x: ``[B, C, F, H, W]``.
        size: target latent ``(height, width)``.
        mode: ``'bilinear'`` or ``'bicubic'`` (antialiased when downscaling), ``'area'`` (box average),
            or ``'nearest-exact'``.

    Returns:
        ``[B, C, F, height, width]``, same dtype.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {mode!r}")
    if x.ndim != 5:
        raise ValueError(f"expected a video latent [B, C, F, H, W], got shape {tuple(x.shape)}")
    b, c, f, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    dtype = flat.dtype
    if dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()  # interpolation kernels in low precision lose the noise statistics
    kwargs = {}
    if mode in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": size[0] < h or size[1] < w}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kwargs).to(dtype)
    return out.reshape(b, f, c, *size).permute(0, 2, 1, 3, 4)


def _axis_operator(n_in: int, n_out: int, mode: str, other: tuple[int, int]) -> torch.Tensor:
    """The ``[n_out, n_in]`` matrix of the resize along one axis, read off exactly by resizing basis images.

    Basis image ``i`` is 1 on row ``i`` and constant along the other axis (``other = (in, out)`` sizes of
    that axis, resized as in the real call), so its output column is ``A[:, i]`` times the other axis's row
    sum, which is 1 for every interpolation mode here.
    """
    basis = torch.zeros(n_in, 1, 1, n_in, other[0], dtype=torch.float64)
    basis[torch.arange(n_in), 0, 0, torch.arange(n_in), :] = 1.0
    out = resize_latent(basis, (n_out, other[1]), mode)  # [n_in, 1, 1, n_out, other_out]
    return out[:, 0, 0, :, other[1] // 2].T


def resize_noise_gain(in_size: tuple[int, int], out_size: tuple[int, int], mode: str = "bilinear") -> float:
    """Factor ``g`` by which a resize divides the standard deviation of white noise.

    Every mode here is separable and linear, ``y = (A_h (x) A_w) x``, so the variance of output pixel
    ``(i, j)`` for unit white noise is ``||A_h[i]||^2 * ||A_w[j]||^2``. The operators' rows are read off
    exactly by resizing basis images (no sampling), and ``g = 1 / sqrt(mean output variance)`` (the RMS
    over output pixels, which matters for non-integer factors where rows differ). For ``p x p`` area
    pooling ``g = p`` exactly.

    Args:
        in_size: latent ``(height, width)`` before the resize.
        out_size: after.
        mode: one of ``RESIZE_MODES``.
    """
    a_h = _axis_operator(in_size[0], out_size[0], mode, (in_size[1], out_size[1]))
    a_w = _axis_operator(in_size[1], out_size[1], mode, (in_size[0], out_size[0]))
    var = (a_h.pow(2).sum(1).mean() * a_w.pow(2).sum(1).mean()).item()
    return 1.0 / math.sqrt(var)


def renoise(
    x0: torch.Tensor,
    sigma: float,
    noise: torch.Tensor,
    form: str = "flow",
) -> torch.Tensor:
    """Re-noises a (resized) clean latent at ``sigma`` (paper eq. 2).

    Args:
        x0: clean latent ``[B, C, F, H, W]``.
        sigma: the noise level to resume at.
        noise: standard normal noise, same shape as ``x0``.
        form: ``'flow'``: ``(1 - sigma) * x0 + sigma * noise``, consistent with the flow-matching
            interpolation the model was trained on (default); ``'paper'``: the paper's literal eq. 2,
            ``x0 + sigma * noise``.
    """
    if form == "flow":
        return (1.0 - sigma) * x0 + sigma * noise
    if form == "paper":
        return x0 + sigma * noise
    raise ValueError(f"renoise must be one of ('flow', 'paper') here (got {form!r}); 'snr' uses snr_resume")


def snr_resume(z_small: torch.Tensor, sigma: float, gain: float) -> tuple[torch.Tensor, float]:
    """Resumes a resized noisy latent at the noise level of equal signal-to-noise ratio.

    Resizing is linear: ``A z = (1 - s) A x0 + s A eps`` and ``A eps`` has standard deviation ``1 / g``,
    so ``A z / c`` with ``c = (1 - s) + s / g`` is a flow-matching state ``(1 - s') x + s' eps'`` at
    ``s' = (s / g) / c <= s``: the noise realisation that fixed the layout is kept, not replaced.

    Args:
        z_small: the resized noisy latent ``A z``, ``[B, C, F, h, w]``.
        sigma: the noise level ``s`` of ``z`` before resizing.
        gain: the resize's noise gain ``g`` (see :func:`resize_noise_gain`); 1 leaves ``z`` unchanged.

    Returns:
        ``(z', s')``: the rescaled latent and the sigma to resume at.
    """
    c = (1.0 - sigma) + sigma / gain
    return z_small / c, (sigma / gain) / c


def relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    """``||new - old|| / ||new||`` over the whole batch (used by ``switch_step='auto'``)."""
    num = (new.float() - old.float()).norm()
    den = new.float().norm().clamp_min(1e-12)
    return float(num / den)
