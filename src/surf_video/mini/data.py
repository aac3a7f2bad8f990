"""World clips for SURF-Mini training: parallel rendering of (caption, video) pairs.

Every clip is identified by an integer seed: ``sample_scene(np.random.default_rng(seed))`` gives the
scene, so the same seed renders the same scene at every size (exact LR/HR pairs). Training seeds
start at 0; the fixed evaluation prompts use seeds from :data:`EVAL_SEED_BASE` on, which training
never reaches.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np

from .config import NUM_FRAMES

__all__ = ["EVAL_SEED_BASE", "render_clip", "render_clips", "render_clips_cached", "eval_captions", "video_to_tensor"]

EVAL_SEED_BASE = 10_000_000


def render_clip(seed: int, sizes: tuple[int, ...], max_objects: int = 3) -> tuple[str, list[np.ndarray]]:
    """Render the scene of ``seed`` at each size.

    Returns:
        ``(caption, [video uint8 [T, S, S, 3] for S in sizes])``.
    """
    from surf_video.world import render_scene, sample_scene

    scene = sample_scene(np.random.default_rng(seed), max_objects=max_objects, num_frames=NUM_FRAMES)
    videos = [np.asarray(render_scene(scene, size=s, num_frames=NUM_FRAMES)[0], dtype=np.uint8) for s in sizes]
    return scene.caption, videos


def _work(args):
    seed, sizes, max_objects = args
    return render_clip(seed, sizes, max_objects)


def render_clips(
    seeds, sizes: tuple[int, ...], workers: int | None = None, max_objects: int = 3, progress: bool = True
) -> tuple[list[str], dict[int, np.ndarray]]:
    """Render many clips in parallel (numpy renderer, one process a core).

    Args:
        seeds: iterable of scene seeds.
        sizes: square sizes to render each scene at.
        workers: processes (default: all cores).

    Returns:
        ``(captions, {size: uint8 array [N, T, S, S, 3]})`` in the order of ``seeds``.
    """
    seeds = [int(s) for s in seeds]
    if not sizes:
        raise ValueError("sizes must name at least one size")
    workers = workers or os.cpu_count() or 1
    out = {s: np.empty((len(seeds), NUM_FRAMES, s, s, 3), np.uint8) for s in sizes}
    captions: list[str] = []
    jobs = [(s, tuple(sizes), max_objects) for s in seeds]
    if workers <= 1:
        it = map(_work, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(workers)
        it = pool.imap(_work, jobs, chunksize=8)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(jobs), desc=f"render {sizes}", mininterval=5)
    try:
        for i, (cap, vids) in enumerate(it):
            captions.append(cap)
            for s, v in zip(sizes, vids):
                out[s][i] = v
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return captions, out


def render_clips_cached(
    seeds: range, sizes: tuple[int, ...], cache_dir: str | os.PathLike | None = None, **kwargs
) -> tuple[list[str], dict[int, np.ndarray]]:
    """:func:`render_clips` for a ``range`` of seeds, kept as ``.npy`` files in ``cache_dir`` when given.

    Several training processes on one machine then render a data set once: the first writes it
    (atomically: a temporary name, then a rename), the others load it memory-mapped.
    """
    if not cache_dir:
        return render_clips(seeds, sizes, **kwargs)
    import json

    key = f"clips_{seeds.start}_{seeds.stop}_{seeds.step}_{'x'.join(map(str, sizes))}_{kwargs.get('max_objects', 3)}"
    base = os.path.join(cache_dir, key)
    names = [f"{base}_{s}.npy" for s in sizes]
    if os.path.exists(base + ".json") and all(os.path.exists(n) for n in names):
        with open(base + ".json") as f:
            captions = json.load(f)
        return captions, {s: np.load(n, mmap_mode="r") for s, n in zip(sizes, names)}
    captions, out = render_clips(seeds, sizes, **kwargs)
    os.makedirs(cache_dir, exist_ok=True)
    for s, n in zip(sizes, names):
        tmp = f"{n}.{os.getpid()}.tmp.npy"
        np.save(tmp, out[s])
        os.replace(tmp, n)
    tmp = f"{base}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(captions, f)
    os.replace(tmp, base + ".json")  # written last: its presence means the arrays are complete
    return captions, out


def eval_captions(n: int = 100, max_objects: int = 3, offset: int = 0) -> list[str]:
    """The fixed evaluation prompt set: captions of scenes ``EVAL_SEED_BASE + offset + i``.

    ``offset`` 0 is the test set every adherence figure is reported on; a large offset (e.g. 1000)
    gives a disjoint development set on which sampling settings can be chosen without tuning on the test set.
    """
    from surf_video.world import sample_scene

    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return [
        sample_scene(np.random.default_rng(EVAL_SEED_BASE + offset + i), max_objects=max_objects, num_frames=NUM_FRAMES).caption
        for i in range(n)
    ]


def video_to_tensor(video: np.ndarray):
    """uint8 ``[N, T, H, W, 3]`` (or ``[T, H, W, 3]``) to float ``[N, 3, T, H, W]`` in [-1, 1]."""
    import torch

    v = torch.as_tensor(video)
    if v.ndim == 4:
        v = v[None]
    return v.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
