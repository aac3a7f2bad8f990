"""Back-projection: make a super-resolved video agree with the low-resolution frames it came from.

When the low-resolution pixels exist (``surf upscale`` of an existing video), a refined and decoded
video ``x`` can be pulled towards them: iterative back-projection (Irani & Peleg, 1991) repeats
``x <- x + up(lr - down(x))``, which fixes what the VAE got wrong at the scales the LR frames hold
(colours, positions, mid frequencies) and keeps the refiner's finer detail. ``down`` is an area
average (what an anti-aliased renderer or a box-filtered camera makes), ``up`` is bicubic.

SURF previews exist only as latents: their decoded pixels are worse than the refiner's output, so
back-projection is for real low-resolution inputs, not for previews.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["back_project"]


def back_project(x: torch.Tensor, lr: torch.Tensor, iterations: int = 3,
                 clamp: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:  # fmt: skip
    """Iterative back-projection of high-resolution frames onto their low-resolution source.

    Args:
        x: the estimate, ``[..., H, W]`` (any leading dims: frames, channels, batch).
        lr: the low-resolution frames it must agree with, floats on the scale of ``x``, ``[..., h, w]``
            with the same leading dims and ``h <= H``, ``w <= W`` (any ratio; at a fractional one the
            area average is adaptive pooling, whose windows overlap slightly: an approximation).
        iterations: number of corrections; 0 returns ``x`` unchanged.
        clamp: value range to clip the result to (``None``: no clipping).

    Returns:
        The corrected frames, shaped like ``x``, in float32.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be an int >= 0, got {iterations!r}")
    if not lr.is_floating_point():  # uint8 frames would be read on a 0-255 scale against x's 0-1
        raise ValueError(f"lr must be floating point on the scale of x (e.g. uint8 / 255), got {lr.dtype}")
    if x.shape[:-2] != lr.shape[:-2]:
        raise ValueError(f"x and lr must share their leading dims, got {tuple(x.shape)} and {tuple(lr.shape)}")
    (hh, ww), (h, w) = x.shape[-2:], lr.shape[-2:]
    if h > hh or w > ww:
        raise ValueError(f"lr ({h}x{w}) must not be larger than x ({hh}x{ww})")
    out = x.float().reshape(-1, 1, hh, ww)  # every leading dim becomes batch: both resizes act per plane
    low = lr.to(out.device).float().reshape(-1, 1, h, w)
    for _ in range(iterations):
        err = low - F.interpolate(out, size=(h, w), mode="area")
        out = out + F.interpolate(err, size=(hh, ww), mode="bicubic", align_corners=False)
    if clamp is not None:
        out = out.clamp(*clamp)
    return out.reshape(x.shape)
