"""Signature metrics: how much of a reference video's layout, semantics and motion another video keeps.

Everything here is numpy (SSIM uses torch's conv2d) and works on uint8 RGB clips ``[T, H, W, 3]`` and on
what :func:`surf_video.world.evaluate_video` extracts from them (per-caption-object masks ``[T, N, H, W]``
and centroid tracks ``[T, N, 2]``). Videos of different sizes are compared after resizing both to a
common size (:func:`resize_video`, :func:`resize_masks`, :func:`scale_tracks`).

Conventions: a quantity that is undefined for a sample (no object seen in either video, no track point
seen in both) is ``nan`` and left out of means; callers report how many samples were defined.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "resize_video",
    "resize_masks",
    "scale_tracks",
    "mask_iou",
    "foreground_iou",
    "ssim",
    "track_error",
    "track_velocity",
    "direction_agreement",
    "attribute_agreement",
    "prompt_adherence",
    "ATTRIBUTES",
]

#: attributes of a caption object that the world evaluator detects (``found`` stands for colour)
ATTRIBUTES = ("found", "shape", "motion", "size")


def _check_video(video: np.ndarray, name: str = "video") -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise ValueError(f"{name} must be [T, H, W, 3], got shape {v.shape}")
    return v


def resize_video(video: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes a clip spatially (area average when shrinking, antialiased bilinear otherwise).

    Args:
        video: uint8 (or float 0-255) ``[T, H, W, 3]``.
        size: target ``(height, width)`` or one int for a square.

    Returns:
        uint8 ``[T, height, width, 3]``.
    """
    v = _check_video(video)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if v.shape[1:3] == size and v.dtype == np.uint8:
        return v
    x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).permute(0, 3, 1, 2)
    if size[0] <= v.shape[1] and size[1] <= v.shape[2]:
        y = F.interpolate(x, size=size, mode="area")
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_masks(masks: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes bool masks ``[..., H, W]`` by area coverage, keeping pixels at least half covered.

    Returns:
        bool ``[..., height, width]``.
    """
    m = np.asarray(masks, dtype=bool)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if m.shape[-2:] == size:
        return m
    lead = m.shape[:-2]
    x = torch.from_numpy(m.reshape(-1, 1, *m.shape[-2:]).astype(np.float32))
    if size[0] <= m.shape[-2] and size[1] <= m.shape[-1]:
        y = F.interpolate(x, size=size, mode="area")
    else:
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return (y >= 0.5).numpy().reshape(*lead, *size)


def scale_tracks(tracks: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescales centroid tracks ``[..., 2]`` (x, y in pixel-index units) from one frame size to another.

    Pixel centres are mapped, not corners: ``x' = (x + 0.5) * W' / W - 0.5``.
    """
    t = np.asarray(tracks, dtype=np.float64)
    sx = to_size[1] / from_size[1]
    sy = to_size[0] / from_size[0]
    out = t.copy()
    out[..., 0] = (t[..., 0] + 0.5) * sx - 0.5
    out[..., 1] = (t[..., 1] + 0.5) * sy - 0.5
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Object-mask IoU per frame: per caption object, averaged over the objects seen in either video.

    Args:
        a, b: bool ``[T, N, H, W]`` masks of the same N caption objects, same size.

    Returns:
        float ``[T]``: per frame, the mean over objects whose union is non-empty of ``|a & b| / |a | b|``;
        ``nan`` for a frame where no object shows in either video.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"masks must both be [T, N, H, W] of one shape, got {a.shape} and {b.shape}")
    inter = (a & b).sum(axis=(2, 3)).astype(np.float64)
    union = (a | b).sum(axis=(2, 3)).astype(np.float64)
    iou = np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)
    valid = (union > 0).sum(axis=1)
    per_frame = np.where(valid > 0, iou.sum(axis=1) / np.maximum(valid, 1), np.nan)
    return per_frame


def foreground_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU per frame of two bool foreground masks ``[T, H, W]`` (``nan`` where both are empty)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"foreground masks must both be [T, H, W] of one shape, got {a.shape} and {b.shape}")
    inter = (a & b).sum(axis=(1, 2)).astype(np.float64)
    union = (a | b).sum(axis=(1, 2)).astype(np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window, K1 0.01, K2 0.03, range 255) over frames and channels.

    The window shrinks to the frame size for tiny frames; borders are excluded ('valid' convolution).
    The 2-D Gaussian is separable, so the five local moments are filtered as one batch by a row and
    a column pass (22 multiply-adds a pixel instead of 121; same result to float64 rounding).

    Args:
        a, b: uint8 (or float 0-255) ``[T, H, W, 3]`` of one shape.
    """
    a = _check_video(a, "a")
    b = _check_video(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"ssim: videos must have one shape, got {a.shape} and {b.shape}")
    window = min(window, a.shape[1], a.shape[2])
    g = _gaussian_1d(window, sigma)
    x = torch.from_numpy(np.asarray(a, dtype=np.float64)).permute(0, 3, 1, 2).reshape(-1, 1, *a.shape[1:3])
    y = torch.from_numpy(np.asarray(b, dtype=np.float64)).permute(0, 3, 1, 2).reshape(-1, 1, *b.shape[1:3])
    stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [N, 5, H, W]
    stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(5, 1, -1, 1), groups=5)  # columns
    mx, my, exx, eyy, exy = F.conv2d(stats, g.view(1, 1, 1, -1).expand(5, 1, 1, -1), groups=5).unbind(1)  # rows
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def track_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance in pixels between two centroid tracks ``[T, N, 2]`` of the same size.

    Only (frame, object) pairs seen in both videos count; ``nan`` when there is none.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 2:
        raise ValueError(f"tracks must both be [T, N, 2] of one shape, got {a.shape} and {b.shape}")
    d = np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1])
    d = d[np.isfinite(d)]
    return float(d.mean()) if d.size else float("nan")


def track_velocity(track: np.ndarray) -> np.ndarray | None:
    """Least-squares velocity (pixels per clip) of one object's track ``[T, 2]`` over its seen frames.

    Returns ``None`` when fewer than 3 frames were seen.
    """
    t = np.asarray(track, dtype=np.float64)
    seen = np.isfinite(t).all(axis=1)
    if seen.sum() < 3:
        return None
    tau = np.linspace(0.0, 1.0, t.shape[0])[seen]
    design = np.stack([tau, np.ones_like(tau)], axis=1)
    coef, *_ = np.linalg.lstsq(design, t[seen], rcond=None)
    return coef[0]


def direction_agreement(a: np.ndarray, b: np.ndarray, still_px: float = 3.0, max_angle: float = 45.0) -> float:
    """Fraction of caption objects whose motion direction agrees between two tracks ``[T, N, 2]``.

    An object's motion is the least-squares displacement over the clip (:func:`track_velocity`). Two
    objects agree when both are still (displacement below ``still_px`` pixels), or both move and the
    angle between the displacements is at most ``max_angle`` degrees. Objects not tracked in both
    videos (fewer than 3 frames) are left out; ``nan`` when none is left.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"tracks must both be [T, N, 2] of one shape, got {a.shape} and {b.shape}")
    votes = []
    for i in range(a.shape[1]):
        va, vb = track_velocity(a[:, i]), track_velocity(b[:, i])
        if va is None or vb is None:
            continue
        na, nb = float(np.hypot(*va)), float(np.hypot(*vb))
        if na < still_px or nb < still_px:
            votes.append(na < still_px and nb < still_px)
            continue
        cos = float(np.dot(va, vb) / (na * nb))
        votes.append(cos >= math.cos(math.radians(max_angle)))
    return float(np.mean(votes)) if votes else float("nan")


def attribute_agreement(report_a: dict, report_b: dict) -> float:
    """Fraction of (caption object, attribute) pairs on which two evaluator reports agree.

    Attributes: whether the object was found (its colour), its detected shape, motion class and size
    (:data:`ATTRIBUTES`); the reports must come from the same caption. Absent objects agree on nothing
    but ``found``.
    """
    oa, ob = report_a["objects"], report_b["objects"]
    if len(oa) != len(ob):
        raise ValueError(f"reports have {len(oa)} and {len(ob)} caption objects: evaluate the same caption")
    same = [x[k] == y[k] for x, y in zip(oa, ob) for k in ATTRIBUTES]
    return float(np.mean(same))


def prompt_adherence(report: dict) -> dict[str, float]:
    """The evaluator's verdicts on one video as 0/1 floats: colour, count, shape, motion, size, all_correct."""
    return {k: float(bool(report[k])) for k in ("color", "count", "shape", "motion", "size", "all_correct")}
