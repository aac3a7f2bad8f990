"""Pixel-only evaluator of world videos against their captions.

Reads an RGB clip (no ground truth) and decides whether the colours, shapes, object count, motion
(and, reported apart, sizes) match the caption; it also returns the object masks and centroid
tracks it extracted. Pipeline:

1. Colour segmentation: each pixel goes to its nearest palette colour when it lies within
   ``COLOR_TOL`` of it (backgrounds are dark and muted, so they fall outside every palette ball).
2. Connected components per colour over all frames at once (numpy label propagation); components
   smaller than ``MIN_AREA`` of the frame are noise. A colour is an object when it shows in at least
   ``MIN_PRESENCE`` of the frames; the number of objects of a colour is its most common per-frame
   component count.
3. Shape per frame from rotation-invariant features of the mask: a hole at the centroid (ring),
   then the dominant angular harmonic (3 triangle, 4 square, 5 star) of the radial profile, too weak
   for a circle; the clip's shape is the area-weighted vote.
4. Motion from least-squares slopes over normalised time of the centroid (translation), the log
   area (growing), the unwrapped orientation of the dominant harmonic (spinning) and the vertical
   residual (bouncing).
"""

from __future__ import annotations

import numpy as np

from .captions import parse_caption
from .render import STAR_INNER
from .scene import COLORS, DIAG_TRAVEL, GROW_RANGE, SHAPE_SCALE, SIZE_RADIUS, TRAVEL

__all__ = ["evaluate_video", "segment_colors", "label_components", "classify_shape", "classify_motion", "degrade_video"]

COLOR_TOL = 95.0  # RGB distance (0-255 units) within which a pixel belongs to a palette colour
MIN_AREA = 0.0025  # smallest component kept, as a fraction of the frame
MIN_PRESENCE = 0.4  # an object must show in this fraction of the frames
HALO_FRACTION = 0.75  # a component with this fraction of its pixels next to another colour...
HALO_DISTANCE = 55.0  # ...and a mean distance to its colour above this is a halo
_SECTORS = 36
_PALETTE = np.asarray(list(COLORS.values()), dtype=np.float32)
_NAMES = list(COLORS)
# Normalised area (fraction of side^2) of each shape at scale 1, for the size decision.
_SHAPE_AREA = {
    "circle": np.pi,
    "ring": np.pi * (1 - 0.55**2),
    "square": 2.0,
    "triangle": 3 * np.sqrt(3) / 4,
    "star": 5 * STAR_INNER * np.sin(np.pi / 5),
}


def _palette_lut() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest palette colour and in-tolerance flag for every RGB colour quantised to 64 levels."""
    global _LUT
    if _LUT is None:
        levels = np.arange(2, 256, 4, dtype=np.float32)  # bin centres of 4-wide bins
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
        d2 = ((grid[:, None, :] - _PALETTE[None]) ** 2).sum(-1)
        label = d2.argmin(1)
        dist = np.sqrt(d2[np.arange(grid.shape[0]), label])
        _LUT = (label.astype(np.int8), dist < COLOR_TOL, np.minimum(dist, 255).astype(np.uint8))
    return _LUT


_LUT: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def segment_colors(video: np.ndarray, return_distance: bool = False) -> tuple[np.ndarray, ...]:
    """Nearest palette colour per pixel (a lookup table on colours quantised to 4-level bins).

    Args:
        video: uint8 or float (0-255) [T, H, W, 3].

    Returns:
        ``(label, ok)``: int8 [T, H, W] palette index and bool [T, H, W], true where the pixel is
        within ``COLOR_TOL`` of that colour; with ``return_distance`` also uint8 [T, H, W], the
        distance to that colour.
    """
    v = np.asarray(video)
    if v.dtype != np.uint8:
        v = np.clip(np.round(v), 0, 255).astype(np.uint8)
    q = v >> 2
    index = (q[..., 0].astype(np.int32) << 12) | (q[..., 1].astype(np.int32) << 6) | q[..., 2]
    lut_label, lut_ok, lut_dist = _palette_lut()
    if return_distance:
        return lut_label[index], lut_ok[index], lut_dist[index]
    return lut_label[index], lut_ok[index]


def label_components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of each frame of a bool [T, H, W] mask.

    Returns:
        int64 [T, H, W]: for mask pixels, the flat index of the smallest pixel of their component
        (so labels are unique across frames); ``mask.size`` elsewhere.
    """
    t, h, w = mask.shape
    none = mask.size
    lab = np.where(mask, np.arange(none).reshape(t, h, w), none)
    while True:
        new = lab.copy()
        np.minimum(new[:, 1:], lab[:, :-1], out=new[:, 1:])
        np.minimum(new[:, :-1], lab[:, 1:], out=new[:, :-1])
        np.minimum(new[:, :, 1:], lab[:, :, :-1], out=new[:, :, 1:])
        np.minimum(new[:, :, :-1], lab[:, :, 1:], out=new[:, :, :-1])
        new = np.where(mask, new, none)
        flat = np.append(new.ravel(), none)
        new = flat[new]  # pointer jumping: a label's own label is smaller and in the same component
        new = flat[new]
        if np.array_equal(new, lab):
            return lab
        lab = new


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation of a bool [..., H, W] mask (each frame on its own)."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    row = out.copy()
    out[..., :, 1:] |= row[..., :, :-1]
    out[..., :, :-1] |= row[..., :, 1:]
    return out


def _soft_weights(frame: np.ndarray, mask: np.ndarray, color: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel coverage of an object around its bool [H, W] mask.

    A pixel mixes the object colour ``c`` and the local background ``b``: p = a c + (1 - a) b, so
    ``a = 1 - |p - c| / |b - c|``, with ``b`` the median colour of a band just outside the object.
    Using coverage instead of a hard mask removes most pixel-grid noise from small shapes.

    Returns:
        ``(ys, xs, alpha)`` of the pixels near the object.
    """
    near = _dilate(mask)
    band = _dilate(_dilate(_dilate(near))) & ~_dilate(near)
    ys, xs = np.nonzero(near)
    if band.any():
        bg = np.median(frame[band], axis=0)
        span = max(float(np.linalg.norm(bg - color)), 40.0)
    else:
        span = 160.0
    dist = np.linalg.norm(frame[ys, xs] - color, axis=-1)
    alpha = np.clip(1.0 - dist / span, 0.0, 1.0)
    # Trust the core fully; fade only the boundary pixels (guards against a badly estimated span).
    alpha = np.where(mask[ys, xs], np.maximum(alpha, 0.5), np.minimum(alpha, 0.5))
    return ys, xs, alpha


def _features(mask: np.ndarray, frame: np.ndarray | None = None, color: np.ndarray | None = None) -> dict | None:
    """Rotation-invariant shape features of one frame's bool [H, W] object mask.

    With ``frame`` (float [H, W, 3]) and ``color`` given, pixels are weighted by their coverage.
    """
    if mask.sum() < 6:
        return None
    if frame is not None:
        ys, xs, wts = _soft_weights(frame, mask, color)
    else:
        ys, xs = np.nonzero(mask)
        wts = np.ones(xs.size)
    area = float(wts.sum())
    cx, cy = float(np.sum(wts * xs) / area), float(np.sum(wts * ys) / area)
    dx, dy = xs - cx, ys - cy
    rho = np.hypot(dx, dy)
    r_out = float(np.percentile(rho[mask[ys, xs]], 95)) + 0.5
    # Hole: how filled a small disc around the centroid is.
    disc = 0.35 * r_out
    h, w = mask.shape
    i0, i1 = max(int(cy - disc) - 1, 0), min(int(cy + disc) + 2, h)
    j0, j1 = max(int(cx - disc) - 1, 0), min(int(cx + disc) + 2, w)
    gy, gx = np.mgrid[i0:i1, j0:j1]
    inside = np.hypot(gx - cx, gy - cy) <= max(disc, 0.75)
    fill = float(mask[i0:i1, j0:j1][inside].mean()) if inside.any() else 1.0
    # Radial profile r(theta): coverage integrated along rays from the centroid (bilinear
    # sampling), far less tied to the pixel grid than counting pixels per angular sector.
    amap = np.zeros((h, w), dtype=np.float64)
    amap[ys, xs] = wts
    centres = -np.pi + (np.arange(_SECTORS) + 0.5) * 2 * np.pi / _SECTORS
    step = 0.25
    s = np.arange(0.0, 1.6 * r_out + 1.0, step)
    px = np.clip(cx + np.cos(centres)[:, None] * s[None], 0, w - 1.001)
    py = np.clip(cy + np.sin(centres)[:, None] * s[None], 0, h - 1.001)
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    val = (amap[y0, x0] * (1 - fx) * (1 - fy) + amap[y0, x0 + 1] * fx * (1 - fy)
           + amap[y0 + 1, x0] * (1 - fx) * fy + amap[y0 + 1, x0 + 1] * fx * fy)
    r = val.sum(axis=1) * step
    spec = {m: np.sum(r * np.exp(-1j * m * centres)) / max(r.sum(), 1e-9) for m in (2, 3, 4, 5, 6)}
    return {"area": area, "cx": cx, "cy": cy, "fill": fill, "spec": spec, "r_out": r_out}


def classify_shape(feat: dict) -> str:
    """Shape from ``_features``: ring if hollow, else the dominant harmonic among 3, 4, 5, or circle."""
    if feat["fill"] < 0.5:
        return "ring"
    amps = {m: abs(feat["spec"][m]) for m in (3, 4, 5)}
    best = max(amps, key=amps.get)
    if amps[best] < 0.025:
        return "circle"
    return {3: "triangle", 4: "square", 5: "star"}[best]


def _slope(tau: np.ndarray, values: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares slope of values over tau, and the residuals."""
    a = np.stack([tau, np.ones_like(tau)], axis=1)
    coef, *_ = np.linalg.lstsq(a, values, rcond=None)
    return float(coef[0]), values - a @ coef


def classify_motion(tau: np.ndarray, xy: np.ndarray, area: np.ndarray, angle: np.ndarray | None) -> tuple[str, dict]:
    """Motion class from tracks over the frames where the object was seen.

    Args:
        tau: float [K] normalised times.
        xy: float [K, 2] centroids in units of the shorter side.
        area: float [K] areas (any unit).
        angle: float [K] unwrapped orientation in radians, or ``None`` for discs.

    Returns:
        ``(motion, measures)``.
    """
    if tau.size < 3:
        return "still", {}
    vx, _ = _slope(tau, xy[:, 0])
    vy, ry = _slope(tau, xy[:, 1])
    growth, _ = _slope(tau, np.log(np.maximum(area, 1.0)))
    spin = _slope(tau, angle)[0] if angle is not None else 0.0
    bounce = float(ry.max() - ry.min())
    speed = float(np.hypot(vx, vy))
    measures = {"vx": vx, "vy": vy, "growth": growth, "spin": spin, "bounce": bounce}
    if growth > np.log(GROW_RANGE[1] / GROW_RANGE[0]):  # area grows 6.25x; call it growing above 2.5x
        return "growing", measures
    if speed > 0.4 * min(TRAVEL, DIAG_TRAVEL * np.sqrt(2)):
        ang = np.degrees(np.arctan2(-vy, vx)) % 360.0
        names = ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"]
        return names[int(((ang + 22.5) % 360.0) // 45.0)], measures
    if bounce > 0.1:
        return "bouncing", measures
    if abs(spin) > np.radians(40):
        return "spinning", measures
    return "still", measures


def _orientation(spec: dict, shape: str) -> float | None:
    k = {"triangle": 3, "square": 4, "star": 5}.get(shape)
    return None if k is None else float(np.angle(spec[k]) / k)


def _unwrap_orientation(angles: list[float], k: int) -> np.ndarray:
    """Unwrap orientations that are only defined modulo 2*pi/k."""
    a = np.asarray(angles) * k
    return np.unwrap(a) / k


def _color_tracks(label: np.ndarray, ok: np.ndarray, dist: np.ndarray, cidx: int, min_area: float) -> tuple[int, list[list[np.ndarray | None]]]:
    """Objects of one colour: (count, tracks), each track a per-frame list of bool masks or None."""
    t_count = label.shape[0]
    mask = ok & (label == cidx)
    frames_any = mask.reshape(t_count, -1).sum(1) >= min_area
    if frames_any.sum() < max(1, MIN_PRESENCE * t_count):
        return 0, []
    # Crop to the colour's bounding box over the clip: components only live there.
    rows = np.nonzero(mask.any(axis=(0, 2)))[0]
    cols = np.nonzero(mask.any(axis=(0, 1)))[0]
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = mask[:, r0:r1, c0:c1]
    # Components of the dilated mask: a thin shape broken by blur or chroma subsampling (a ring
    # with a gap of 1-2 px) stays one object. Objects of one colour are never that close in the world.
    lab = np.where(sub, label_components(_dilate(sub)), sub.size)
    roots, inverse, sizes = np.unique(lab[sub], return_inverse=True, return_counts=True)
    # Halos: the blurred or chroma-subsampled edge of an object can fall within tolerance of
    # another palette colour (yellow's edge looks orange). Such a component hugs an object of
    # another colour, so most of its pixels lie within 2 px of that colour: drop it.
    other = _dilate(_dilate((ok & (label != cidx))[:, r0:r1, c0:c1]))
    # A real object's own pixels come close to its colour somewhere; a halo's are all mixtures.
    near = np.bincount(inverse.ravel(), weights=other[sub].astype(np.float64), minlength=roots.size)
    purity = np.bincount(inverse.ravel(), weights=dist[:, r0:r1, c0:c1][sub].astype(np.float64), minlength=roots.size) / sizes
    keep = (sizes >= min_area) & ((near < HALO_FRACTION * sizes) | (purity < HALO_DISTANCE))
    roots, sizes = roots[keep], sizes[keep]
    plane = sub.shape[1] * sub.shape[2]
    frame_of = roots // plane
    per_frame = np.bincount(frame_of, minlength=t_count)
    present = per_frame > 0
    if present.sum() < max(1, MIN_PRESENCE * t_count):
        return 0, []
    count = int(np.bincount(per_frame[present]).argmax())
    tracks: list[list[np.ndarray | None]] = [[None] * t_count for _ in range(count)]
    last: list[tuple[float, float] | None] = [None] * count
    for t in range(t_count):
        sel = np.nonzero(frame_of == t)[0]
        sel = sel[np.argsort(-sizes[sel])][:count]
        comps = []
        for s in sel:
            m = np.zeros(mask.shape[1:], dtype=bool)
            m[r0:r1, c0:c1] = lab[t] == roots[s]
            ys, xs = np.nonzero(m)
            comps.append((m, (xs.mean(), ys.mean())))
        # Greedy nearest-centroid assignment to tracks (the largest component first).
        free = list(range(count))
        for m, c in comps:
            dist = [np.hypot(c[0] - last[k][0], c[1] - last[k][1]) if last[k] is not None else 1e9 + k for k in free]
            k = free.pop(int(np.argmin(dist)))
            tracks[k][t] = m
            last[k] = c
    return count, tracks


def _describe(track: list[np.ndarray | None], side: int, video: np.ndarray, color: tuple[int, int, int]) -> dict:
    """Shape, motion, size, masks and centroids of one tracked object."""
    t_count = len(track)
    tau = np.linspace(0.0, 1.0, t_count) if t_count > 1 else np.zeros(1)
    c = np.asarray(color, dtype=np.float32)
    feats = [(_features(m, video[t].astype(np.float32), c) if m is not None else None) for t, m in enumerate(track)]
    seen = [t for t, f in enumerate(feats) if f is not None]
    votes: dict[str, float] = {}
    for t in seen:
        s = classify_shape(feats[t])
        votes[s] = votes.get(s, 0.0) + feats[t]["area"]
    shape = max(votes, key=votes.get) if votes else "circle"
    centroids = np.full((t_count, 2), np.nan)
    for t in seen:
        centroids[t] = (feats[t]["cx"], feats[t]["cy"])
    k = {"triangle": 3, "square": 4, "star": 5}.get(shape)
    angle = _unwrap_orientation([_orientation(feats[t]["spec"], shape) for t in seen], k) if k and seen else None
    area = np.array([feats[t]["area"] for t in seen], dtype=np.float64)
    motion, measures = classify_motion(tau[seen], centroids[seen] / side, area, angle)
    # Size: compare the median area with each size's expected area (scaled when growing).
    scale = GROW_RANGE[0] + (GROW_RANGE[1] - GROW_RANGE[0]) * tau[seen] if motion == "growing" else np.ones(len(seen))
    size = None
    if seen:
        expect = {s: _SHAPE_AREA[shape] * (SIZE_RADIUS[s] * SHAPE_SCALE[shape] * side) ** 2 for s in SIZE_RADIUS}
        err = {s: abs(np.median(np.log(area / (e * scale**2)))) for s, e in expect.items()}
        size = min(err, key=err.get)
    return {"shape": shape, "motion": motion, "size": size, "centroids": centroids, "frames_seen": len(seen), "measures": measures, "shape_votes": votes}


def evaluate_video(video: np.ndarray, caption: str) -> dict:
    """Check a world video against its caption from pixels only.

    Args:
        video: uint8 [T, H, W, 3]; float frames are read as [0, 1] when none exceeds 1, else 0-255.
        caption: a caption in the world's grammar (see ``parse_caption``; background optional).

    Returns:
        dict with booleans ``"color"`` (every caption colour found, no other palette colour present),
        ``"count"`` (number of detected objects equals the caption's), ``"shape"`` and ``"motion"``
        (right for every caption object, matched by colour), ``"size"`` (same, reported apart; true
        where the caption gives no size), ``"all_correct"`` (colour, shape, count and motion);
        ``"objects"``: per caption object its expected and detected attributes; ``"detected"``: every
        detected object; ``"masks"`` bool [T, N, H, W] and ``"centroids"`` float [T, N, 2] (x, y in
        pixel index units, NaN where unseen) for the N caption objects.
    """
    parsed = parse_caption(caption)
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be [T, H, W, 3], got shape {video.shape}")
    if video.dtype != np.uint8:
        video = video.astype(np.float32)
        if video.size and video.max() <= 1.0:  # float frames in [0, 1], as diffusers returns them
            video = video * 255.0
        video = np.clip(np.round(video), 0, 255).astype(np.uint8)
    t_count, h, w, _ = video.shape
    side = min(h, w)
    min_area = MIN_AREA * h * w
    label, ok, dist = segment_colors(video, return_distance=True)
    detected = []
    for cidx, name in enumerate(_NAMES):
        count, tracks = _color_tracks(label, ok, dist, cidx, min_area)
        for track in tracks:
            det = _describe(track, side, video, COLORS[name])
            det.update(color=name, masks=np.stack([m if m is not None else np.zeros((h, w), bool) for m in track]))
            detected.append(det)
    wanted = parsed["objects"]
    n = len(wanted)
    masks = np.zeros((t_count, n, h, w), dtype=bool)
    centroids = np.full((t_count, n, 2), np.nan)
    objects, used = [], set()
    for i, obj in enumerate(wanted):
        cands = [j for j, d in enumerate(detected) if d["color"] == obj["color"] and j not in used]
        # Among same-coloured detections prefer the one with the right shape, then the most seen.
        cands.sort(key=lambda j: (detected[j]["shape"] != obj["shape"], -detected[j]["frames_seen"]))
        det = detected[cands[0]] if cands else None
        if det is not None:
            used.add(cands[0])
            masks[:, i] = det["masks"]
            centroids[:, i] = det["centroids"]
        objects.append(
            {
                **{f"expected_{k}": v for k, v in obj.items()},
                "found": det is not None,
                "shape": det["shape"] if det else None,
                "motion": det["motion"] if det else None,
                "size": det["size"] if det else None,
            }
        )
    wanted_colors = {o["color"] for o in wanted}
    result = {
        "color": all(o["found"] for o in objects) and all(d["color"] in wanted_colors for d in detected),
        "count": len(detected) == n,
        "shape": all(o["shape"] == o["expected_shape"] for o in objects),
        "motion": all(o["motion"] == o["expected_motion"] for o in objects),
        "size": all(o["expected_size"] is None or o["size"] == o["expected_size"] for o in objects),
    }
    result["all_correct"] = result["color"] and result["count"] and result["shape"] and result["motion"]
    result["objects"] = objects
    result["detected"] = [{k: d[k] for k in ("color", "shape", "motion", "size", "frames_seen", "measures")} for d in detected]
    result["masks"] = masks
    result["centroids"] = centroids
    return result


def degrade_video(video: np.ndarray, rng: int | np.random.Generator | None = 0, blur: float = 1.0, noise: float = 6.0) -> np.ndarray:
    """Mimic a generative model's output: Gaussian blur (sigma in pixels) and Gaussian noise (0-255).

    Args:
        video: uint8 [T, H, W, 3].
        rng: seed or generator of the noise.
        blur: blur sigma in pixels (0 disables).
        noise: noise standard deviation in 0-255 units (0 disables).

    Returns:
        uint8 [T, H, W, 3].
    """
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    v = np.asarray(video, dtype=np.float32)
    if blur > 0:
        rad = max(1, int(np.ceil(3 * blur)))
        k = np.exp(-0.5 * (np.arange(-rad, rad + 1) / blur) ** 2)
        k /= k.sum()
        for axis in (1, 2):
            pad = [(0, 0)] * 4
            pad[axis] = (rad, rad)
            p = np.pad(v, pad, mode="edge")
            n = v.shape[axis]
            v = sum(wt * np.take(p, np.arange(i, i + n), axis=axis) for i, wt in enumerate(k))
    if noise > 0:
        v = v + g.normal(0.0, noise, v.shape).astype(np.float32)
    return np.clip(v + 0.5, 0, 255).astype(np.uint8)
