"""Flow mapping for the SURF refine stage (paper section 3.3, NOTES.md section 2).

The Refiner learns the straight path between an upsampled preview latent ``z_lr`` (t = 1) and
the high-resolution latent ``z_hr`` (t = 0)::

    z_t = (1 - t) * z_hr + t * z_lr,        v = dz_t/dt = z_lr - z_hr

and sampling integrates ``dz/dt = v`` from t = 1 to t = 0 with a few Euler steps. Pure tensor
code: no diffusers import. Times are floats in ``[0, 1]``; a model that embeds timesteps on
Wan's 0..1000 scale should be wrapped as ``lambda z, t: model(z, t * 1000, ...)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "flow_map_timesteps",
    "flow_map_interpolate",
    "flow_map_velocity",
    "augment_lr_latent",
    "flow_map_sample",
    "upsample_latent",
]

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_MODES_2D = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")


def flow_map_timesteps(
    num_steps: int, shift: float = 1.0, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Times ``1 = t_0 > t_1 > ... > t_N = 0`` of the Euler integration.

    Args:
        num_steps: Euler steps ``N >= 1``.
        shift: SD3-style time shift ``t' = shift * t / (1 + (shift - 1) * t)``; 1.0 (default) is
            uniform spacing, > 1 spends more steps near t = 1.
        device: Device of the result.
        dtype: Dtype of the result.

    Returns:
        ``[N + 1]`` decreasing times, first 1.0, last 0.0.

    Raises:
        ValueError: If ``num_steps < 1`` or ``shift <= 0``.
    """
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    t = torch.linspace(1.0, 0.0, int(num_steps) + 1, dtype=torch.float64)
    t = shift * t / (1 + (shift - 1) * t)
    return t.to(device=device, dtype=dtype)


def flow_map_interpolate(z_hr: torch.Tensor, z_lr: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Point ``z_t = (1 - t) * z_hr + t * z_lr`` on the flow-mapping path (training input).

    Args:
        z_hr: ``[B, C, F, H, W]`` clean high-resolution latent.
        z_lr: ``[B, C, F, H, W]`` upsampled low-resolution latent (same shape).
        t: Scalar or ``[B]`` times in ``[0, 1]``.

    Returns:
        ``[B, C, F, H, W]``.
    """
    t = torch.as_tensor(t, dtype=z_hr.dtype, device=z_hr.device)
    if t.ndim == 1:
        t = t.view(-1, *([1] * (z_hr.ndim - 1)))
    return (1 - t) * z_hr + t * z_lr


def flow_map_velocity(z_hr: torch.Tensor, z_lr: torch.Tensor) -> torch.Tensor:
    """Training target ``v = z_lr - z_hr`` (constant along the path).

    Args:
        z_hr: ``[B, C, F, H, W]``.
        z_lr: ``[B, C, F, H, W]``.

    Returns:
        ``[B, C, F, H, W]``.
    """
    return z_lr - z_hr


def augment_lr_latent(
    z_lr: torch.Tensor, noise_aug: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise augmentation ``z_lr + noise_aug * eps`` (use the same value in training and sampling).

    Args:
        z_lr: ``[B, C, F, H, W]``.
        noise_aug: Noise standard deviation ``>= 0``; 0 returns ``z_lr`` unchanged.
        generator: Generator for ``eps`` (a CPU generator works for any device: the noise is
            drawn on the generator's device and moved).

    Returns:
        ``[B, C, F, H, W]``.

    Raises:
        ValueError: If ``noise_aug < 0``.
    """
    if noise_aug < 0:
        raise ValueError(f"noise_aug must be >= 0, got {noise_aug}")
    if noise_aug == 0:
        return z_lr
    gen_device = generator.device if generator is not None else z_lr.device
    eps = torch.randn(z_lr.shape, generator=generator, device=gen_device, dtype=torch.float32)
    return (z_lr.float() + noise_aug * eps.to(z_lr.device)).to(z_lr.dtype)


@torch.no_grad()
def flow_map_sample(
    model_fn: ModelFn,
    z_lr: torch.Tensor,
    num_steps: int = 10,
    noise_aug: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    progress: bool = False,
    shift: float = 1.0,
) -> torch.Tensor:
    """Map ``z_lr`` to ``z_hr`` by Euler integration of ``dz/dt = model_fn(z, t)`` from 1 to 0.

    Makes exactly ``num_steps`` calls of ``model_fn``. The state is kept in float32 and cast to
    ``z_lr.dtype`` for each model call.

    Args:
        model_fn: ``model_fn(z_t [B, C, F, H, W], t [B] float32 in [0, 1]) -> v [B, C, F, H, W]``
            predicting ``z_lr - z_hr``.
        z_lr: ``[B, C, F, H, W]`` preview latent already upsampled to the target size.
        num_steps: Euler steps (the paper uses 10).
        noise_aug: Noise added to ``z_lr`` first (see :func:`augment_lr_latent`); match training.
        generator: Generator for the augmentation noise.
        callback: Called as ``callback(step, t_next [B], z [B, C, F, H, W])`` after each step.
        progress: Show a tqdm progress bar.
        shift: Time shift of :func:`flow_map_timesteps` (1.0 = uniform).

    Returns:
        ``[B, C, F, H, W]`` refined latent ``z_hr`` in ``z_lr.dtype``.

    Raises:
        ValueError: On bad ``num_steps``, ``noise_aug`` or ``shift``, or a non-5D ``z_lr``.
    """
    if z_lr.ndim != 5:
        raise ValueError(f"z_lr must be [B, C, F, H, W], got shape {tuple(z_lr.shape)}")
    times = flow_map_timesteps(num_steps, shift=shift, device=z_lr.device)
    z = augment_lr_latent(z_lr, noise_aug, generator).float()
    batch = z.shape[0]
    steps = range(int(num_steps))
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="refine", total=int(num_steps))
    for i in steps:
        t, t_next = times[i], times[i + 1]
        v = model_fn(z.to(z_lr.dtype), t.expand(batch))
        if v.shape != z.shape:
            raise ValueError(f"model_fn returned shape {tuple(v.shape)}, expected {tuple(z.shape)}")
        z = z + (t_next - t) * v.float()
        if callback is not None:
            callback(i, t_next.expand(batch), z)
    return z.to(z_lr.dtype)


def upsample_latent(z: torch.Tensor, size: tuple[int, int], mode: str = "trilinear") -> torch.Tensor:
    """Resize a video latent spatially (frames unchanged), e.g. preview -> target latent size.

    Args:
        z: ``[B, C, F, H, W]`` latent.
        size: Target ``(H', W')`` in latent pixels.
        mode: ``"trilinear"`` (default; with frames unchanged it equals per-frame bilinear) or a 2D
            mode applied per frame: ``"bilinear"``, ``"bicubic"``, ``"nearest"``,
            ``"nearest-exact"``, ``"area"``.

    Returns:
        ``[B, C, F, H', W']`` in ``z.dtype`` (computed in float32).

    Raises:
        ValueError: On a non-5D ``z``, a bad ``size`` or an unknown ``mode``.
    """
    if z.ndim != 5:
        raise ValueError(f"z must be [B, C, F, H, W], got shape {tuple(z.shape)}")
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"size must be two positive integers (H, W), got {size}")
    size = (int(size[0]), int(size[1]))
    b, c, f, h, w = z.shape
    x = z.float()
    if mode == "trilinear":
        out = F.interpolate(x, size=(f, *size), mode="trilinear", align_corners=False)
    elif mode in _MODES_2D:
        x2 = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
        out = F.interpolate(x2, size=size, mode=mode, **kw)
        out = out.reshape(b, f, c, *size).permute(0, 2, 1, 3, 4)
    else:
        raise ValueError(f"mode must be 'trilinear' or one of {_MODES_2D}, got {mode!r}")
    return out.contiguous().to(z.dtype)
