"""Training data for the refiner: video files, cached latents and procedural sources.

Every dataset is indexed by a key ``(index, epoch, sample_id)`` produced by
:class:`StepBatchSampler`; all randomness of an item (clip start, crop, degradation) derives from
``(seed, epoch, index)``, so the data of step ``s`` is a pure function of ``s``. That is what makes
``--resume`` and multi-process training reproduce a single-process run exactly.

Pixel items are ``{"hr": [3, T, H, W], "lr": [3, T, H, W]`` (float in [-1, 1]), ``"caption"``,
``"sample_id"}``; latent items are ``{"z_hr": [C, F, h, w], "z_lr": ..., "text": [L, D]`` (optional),
``"caption", "sample_id"}``.
"""

from __future__ import annotations

import csv
import inspect
import importlib
import json
import logging
import math
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from surf_video.io.formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from surf_video.train.degrade import PixelDegradeConfig, degrade_video

__all__ = [
    "derive_seed",
    "resize_crop",
    "to_tensor",
    "scan_videos",
    "VideoClipDataset",
    "ProceduralDataset",
    "synthetic_sample",
    "world_pair_sample",
    "load_callable",
    "StepBatchSampler",
    "collate",
]

# PyAV (surf_video.io.video) is imported on first use: latent-cache and procedural training need no
# video decoding, and GPU hosts without PyAV can train from cached latents.


def probe_num_frames(path):
    from surf_video.io.video import probe_num_frames as probe

    return probe(path)


def read_video(path, **kwargs):
    from surf_video.io.video import read_video as read

    return read(path, **kwargs)


logger = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (stable across processes and Python versions)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def resize_crop(frames: np.ndarray, size: Sequence[int], rng: np.random.Generator | None) -> np.ndarray:
    """Resize so the clip covers ``size`` = (H, W) (aspect kept), then crop (random if ``rng``).

    Args:
        frames: ``np.uint8 [T, H0, W0, 3]``.
    Returns:
        ``np.uint8 [T, H, W, 3]``.
    """
    th, tw = int(size[0]), int(size[1])
    t, h, w, _ = frames.shape
    if (h, w) != (th, tw):
        s = max(th / h, tw / w)
        nh, nw = max(th, math.ceil(h * s - 1e-6)), max(tw, math.ceil(w * s - 1e-6))
        if (nh, nw) != (h, w):
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            frames = x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
        h, w = nh, nw
    y0 = int(rng.integers(0, h - th + 1)) if rng is not None else (h - th) // 2
    x0 = int(rng.integers(0, w - tw + 1)) if rng is not None else (w - tw) // 2
    return np.ascontiguousarray(frames[:, y0 : y0 + th, x0 : x0 + tw])


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``uint8 [T, H, W, 3]`` -> float ``[3, T, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def _is_video(p: Path) -> bool:
    if p.is_dir():
        return any(c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir())
    return p.suffix.lower() in VIDEO_EXTENSIONS


def _caption_for(p: Path) -> str:
    side = p.with_suffix(".txt") if p.is_file() else p.parent / f"{p.name}.txt"
    return side.read_text().strip() if side.is_file() else ""


def scan_videos(path: str | Path, video_column: str = "video", caption_column: str = "caption") -> list[tuple[str, str]]:
    """List ``(video path, caption)`` from a folder, a CSV or a JSONL manifest.

    A folder yields its video files and frame folders (sorted, recursive), each captioned by a
    sidecar ``NAME.txt``. Manifest paths are relative to the manifest's folder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data path not found: {path}")
    if path.is_dir():
        out = []
        for p in sorted(path.rglob("*")):
            if _is_video(p):
                out.append((str(p), _caption_for(p)))
        return out
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif suffix in (".jsonl", ".json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        raise ValueError(f"data.path must be a folder, .csv or .jsonl manifest, got {path.name!r}")
    out = []
    for i, row in enumerate(rows):
        if video_column not in row:
            raise ValueError(f"manifest row {i} has no column {video_column!r} (data.video_column)")
        vp = Path(row[video_column])
        vp = vp if vp.is_absolute() else path.parent / vp
        out.append((str(vp), str(row.get(caption_column, "") or "")))
    return out


class _ClipMixin:
    """Clip configuration shared by the pixel datasets (changed per training phase)."""

    num_frames: int
    size: tuple[int, int]

    def set_clip(self, num_frames: int, size: Sequence[int]) -> None:
        if num_frames < 1 or len(size) != 2 or min(size) < 1:
            raise ValueError(f"num_frames must be >= 1 and size [H, W] > 0, got {num_frames}, {size}")
        self.num_frames, self.size = int(num_frames), (int(size[0]), int(size[1]))

    def _pair(self, hr: np.ndarray, lr: np.ndarray | None, caption: str, key) -> dict:
        index, epoch, sample_id = key
        if lr is None:
            lr = degrade_video(hr, self.degrade, seed=derive_seed(self.seed, epoch, index, 1))
        return {"hr": to_tensor(hr), "lr": to_tensor(lr), "caption": caption, "sample_id": int(sample_id)}


class VideoClipDataset(_ClipMixin, torch.utils.data.Dataset):
    """Random clips of ``num_frames`` x ``size`` from videos, degraded on the fly.

    Args:
        entries: ``(path, caption)`` pairs (see :func:`scan_videos`).
        num_frames, size: clip length and ``(H, W)``.
        frame_stride: take every ``frame_stride``-th frame.
        degrade: pixel degradation recipe (LR = degraded HR).
        seed: base seed of clip sampling and degradations.
        probe: check every video up front (header read); unreadable or too-short ones are dropped
            with one warning each and counted in :attr:`skipped`.
    """

    def __init__(self, entries: Sequence[tuple[str, str]], num_frames: int, size: Sequence[int], frame_stride: int = 1,
                 degrade: PixelDegradeConfig | None = None, seed: int = 0, probe: bool = True):
        self.degrade = degrade or PixelDegradeConfig()
        self.seed, self.frame_stride = seed, frame_stride
        self.set_clip(num_frames, size)
        self.skipped: dict[str, str] = {}
        self.entries = [e for e in entries if not probe or self._probe(e[0])]
        if not self.entries:
            raise ValueError(f"no usable videos ({len(self.skipped)} skipped)")

    def _need(self) -> int:
        return (self.num_frames - 1) * self.frame_stride + 1

    def _skip(self, path: str, why: str) -> None:
        if path not in self.skipped:
            self.skipped[path] = why
            logger.warning("skipping video %s: %s", path, why)

    def _probe(self, path: str) -> bool:
        try:
            n = probe_num_frames(path)
        except (ValueError, FileNotFoundError, OSError) as err:
            self._skip(path, f"unreadable ({err})")
            return False
        if n < self._need():
            self._skip(path, f"too short ({n} frames < {self._need()})")
            return False
        return True

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, index: int, epoch: int) -> tuple[np.ndarray, str]:
        path, caption = self.entries[index]
        rng = np.random.default_rng(derive_seed(self.seed, epoch, index, 0))
        n = probe_num_frames(path)
        need = self._need()
        if n < need:
            raise ValueError(f"too short ({n} frames < {need})")
        start = int(rng.integers(0, n - need + 1))
        frames = read_video(path, max_frames=need, start=start)[:: self.frame_stride]
        if len(frames) < self.num_frames:
            raise ValueError(f"too short (decoded {len(frames)} of {self.num_frames} frames)")
        return resize_crop(frames[: self.num_frames], self.size, rng), caption

    def __getitem__(self, key) -> dict:
        index, epoch, sample_id = key if isinstance(key, tuple) else (key, 0, key)
        # A video that fails at decode time is replaced by the next one (deterministically).
        for k in range(len(self.entries)):
            i = (index + k) % len(self.entries)
            try:
                hr, caption = self._load(i, epoch)
            except (ValueError, OSError) as err:
                self._skip(self.entries[i][0], str(err))
                continue
            return self._pair(hr, None, caption, (i, epoch, sample_id))
        raise RuntimeError("every video failed to decode")


def load_callable(spec: str | Callable) -> Callable:
    """``"package.module:name"`` -> the object."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"expected 'module:callable', got {spec!r}")
    mod, name = spec.split(":", 1)
    obj = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class ProceduralDataset(_ClipMixin, torch.utils.data.Dataset):
    """Pairs from a callable ``sample(index, rng) -> (hr, lr | None, caption)``.

    ``hr`` / ``lr`` are ``np.uint8 [T, H, W, 3]``. If the callable accepts ``num_frames`` and
    ``size`` keywords they are passed (a renderer can then draw exact LR/HR pairs at any size);
    otherwise its output is cropped/resized to the clip. ``lr = None`` means: degrade ``hr``.
    """

    def __init__(self, sample: Callable, num_samples: int, num_frames: int, size: Sequence[int],
                 degrade: PixelDegradeConfig | None = None, seed: int = 0):
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.sample, self.num_samples, self.seed = sample, num_samples, seed
        self.degrade = degrade or PixelDegradeConfig()
        self.set_clip(num_frames, size)
        params = inspect.signature(sample).parameters
        self._kw = "num_frames" in params and "size" in params

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, key) -> dict:
        index, epoch, sample_id = key if isinstance(key, tuple) else (key, 0, key)
        rng = np.random.default_rng(derive_seed(self.seed, epoch, index, 2))
        kw = {"num_frames": self.num_frames, "size": self.size} if self._kw else {}
        hr, lr, caption = self.sample(index, rng, **kw)
        hr = resize_crop(np.asarray(hr)[: self.num_frames], self.size, None)
        if lr is not None:
            lr = resize_crop(np.asarray(lr)[: self.num_frames], self.size, None)
        if len(hr) < self.num_frames:
            raise ValueError(f"procedural sample {index} has {len(hr)} frames < {self.num_frames}")
        return self._pair(hr, lr, caption, (index, epoch, sample_id))


_COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 80, 230), "yellow": (230, 210, 40)}
_DIRS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def synthetic_sample(index: int, rng: np.random.Generator, num_frames: int = 9, size: Sequence[int] = (32, 32)):
    """A coloured square moving over a textured background: ``(hr, None, caption)``.

    Content depends only on ``index`` (so a small set can be overfitted); ``rng`` is unused
    because every epoch should show the same clip.
    """
    del rng
    r = np.random.default_rng(index)
    h, w = int(size[0]), int(size[1])
    color = list(_COLORS)[index % 4]
    direction = list(_DIRS)[(index // 4) % 4]
    yy, xx = np.mgrid[0:h, 0:w]
    f1, f2 = r.uniform(0.1, 0.4, 2)
    bg = (np.stack([np.sin(xx * f1) * 40 + 90, np.cos(yy * f2) * 40 + 90, np.sin((xx + yy) * 0.2) * 30 + 80], -1))
    side = max(h // 4, 2)
    y0, x0 = r.integers(side, max(h - 2 * side, side + 1)), r.integers(side, max(w - 2 * side, side + 1))
    dy, dx = _DIRS[direction]
    frames = []
    for t in range(num_frames):
        fr = bg.copy()
        y, x = int(y0 + dy * t) % (h - side), int(x0 + dx * t) % (w - side)
        fr[y : y + side, x : x + side] = _COLORS[color]
        frames.append(fr)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8), None, f"a {color} square moving {direction}"


def world_pair_sample(index: int, rng: np.random.Generator, num_frames: int = 17, size: Sequence[int] = (64, 64),
                      lr_scale: int = 2):
    """The procedural world (``surf_video.world``) as an exact LR/HR source.

    Scene ``index`` is rendered at ``size`` (HR) and at ``size / lr_scale``, the latter linearly
    upsampled back to ``size`` (LR): the same scene, no synthetic degradation needed.
    Use as ``data: {type: procedural, source: "surf_video.train.data:world_pair_sample"}``.
    """
    del rng  # a scene is fixed by its index
    from surf_video.world.captions import caption_of
    from surf_video.world.render import render_scene
    from surf_video.world.scene import sample_scene

    h, w = int(size[0]), int(size[1])
    scene = sample_scene(int(index), num_frames=num_frames)
    hr, _ = render_scene(scene, (h, w), num_frames=num_frames, with_truth=False)
    low, _ = render_scene(scene, (max(h // lr_scale, 1), max(w // lr_scale, 1)), num_frames=num_frames,
                          with_truth=False)
    x = torch.from_numpy(np.ascontiguousarray(low)).permute(0, 3, 1, 2).float()
    lr = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    lr = lr.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return hr, lr, caption_of(scene)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for each micro-step, this process's share of the global batch as item keys.

    Global sample ``p = step * global_batch + j`` reads index ``perm_e[p mod N]`` of epoch
    ``e = p // N`` (a fresh seeded permutation per epoch). Process ``rank`` takes
    ``j in [rank * local_batch, (rank + 1) * local_batch)``.
    """

    def __init__(self, num_items: int, local_batch: int, rank: int, world_size: int, seed: int,
                 start_step: int, num_steps: int, shuffle: bool = True):
        if num_items < 1:
            raise ValueError("the dataset is empty")
        self.n, self.b, self.rank, self.world = num_items, local_batch, rank, world_size
        self.seed, self.start, self.num_steps, self.shuffle = seed, start_step, num_steps, shuffle
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            rng = np.random.default_rng(derive_seed(self.seed, epoch, 7))
            self._perm_cache[epoch] = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        return self._perm_cache[epoch]

    def keys_for_step(self, step: int) -> list[tuple[int, int, int]]:
        g = self.b * self.world
        out = []
        for j in range(self.rank * self.b, (self.rank + 1) * self.b):
            p = step * g + j
            epoch = p // self.n
            out.append((int(self._perm(epoch)[p % self.n]), int(epoch), int(p)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for s in range(self.start, self.start + self.num_steps):
            yield self.keys_for_step(s)

    def __len__(self) -> int:
        return self.num_steps


def collate(items: list[dict]) -> dict:
    """Stack tensors, keep captions as a list."""
    out: dict = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif k == "sample_id":
            out[k] = torch.tensor(vals, dtype=torch.long)
        else:
            out[k] = vals
    return out
