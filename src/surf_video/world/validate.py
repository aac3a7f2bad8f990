"""Validation of the world evaluator on held-out ground-truth renders.

Two questions, per resolution and per degradation:

* accuracy: on the true caption, how often each attribute is judged correct;
* rejection: on a caption with one attribute changed (a wrong colour, shape, motion, or one object
  more or fewer), how often the evaluator marks that attribute wrong, so an evaluator that always
  says "correct" scores zero here.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from .captions import caption_of
from .evaluate import degrade_video, evaluate_video
from .render import render_scene
from .scene import COLORS, MOTIONS, SHAPES, SPIN_SHAPES, Scene, WorldObject, sample_scene

__all__ = ["CONDITIONS", "perturb_caption", "validate_evaluator", "render_speed"]

# name -> (blur sigma in pixels at 128 px, scaled with the size; noise std in 0-255 units; mp4 round trip)
CONDITIONS: dict[str, tuple[float, float, bool]] = {
    "clean": (0.0, 0.0, False),
    "mild": (1.0, 6.0, False),
    "mp4": (0.0, 0.0, True),
    "strong": (2.0, 10.0, False),
}
ATTRIBUTES = ("color", "shape", "count", "motion", "size", "all_correct")


def perturb_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """A caption of the scene with one attribute made wrong.

    Returns:
        ``(caption, attribute)`` with attribute in color, shape, motion, count.
    """
    objs = list(scene.objects)
    kind = str(rng.choice(["color", "shape", "motion", "count"]))
    k = int(rng.integers(len(objs)))
    o = objs[k]
    if kind == "color":
        unused = [c for c in COLORS if c not in {p.color for p in objs}]
        objs[k] = replace(o, color=str(rng.choice(unused)))
    elif kind == "shape":
        objs[k] = replace(o, shape=str(rng.choice([s for s in SHAPES if s != o.shape])))
    elif kind == "motion":
        allowed = [m for m in MOTIONS if m != o.motion and (m != "spinning" or o.shape in SPIN_SHAPES)]
        objs[k] = replace(o, motion=str(rng.choice(allowed)))
    elif len(objs) == 3 or (len(objs) > 1 and rng.random() < 0.5):  # scenes hold 1-3 objects
        objs.pop(k)
    else:
        unused = [c for c in COLORS if c not in {p.color for p in objs}]
        objs.append(WorldObject(str(rng.choice(unused)), str(rng.choice(SHAPES)), "small", "still", 0.5, 0.5))
    return caption_of(replace(scene, objects=tuple(objs))), kind


def _condition(video: np.ndarray, name: str, size: int, seed: int) -> np.ndarray:
    blur, noise, mp4 = CONDITIONS[name]
    if blur or noise:
        video = degrade_video(video, seed, blur=blur * size / 128.0, noise=noise)
    if mp4:
        from surf_video.io.video import decode_video_bytes, encode_video_bytes

        video = decode_video_bytes(encode_video_bytes(video, crf=23))[: len(video)]
    return video


def validate_evaluator(
    num_scenes: int = 500,
    sizes: tuple[int, ...] = (128, 64),
    conditions: tuple[str, ...] = ("clean", "mild", "mp4", "strong"),
    seed: int = 1_000_000,
    num_frames: int = 17,
    progress: bool = True,
) -> dict:
    """Accuracy and rejection rates of ``evaluate_video`` on renders of held-out scenes.

    Scenes use seeds ``seed .. seed + num_scenes - 1`` (the evaluator was tuned on seeds below 1000).

    Returns:
        ``{"results": {"SIZE/CONDITION": {...}}, ...}`` with per-attribute accuracy, per-class
        accuracy of shape and motion, rejection rates, a few failures and the time per video.
    """
    for c in conditions:
        if c not in CONDITIONS:
            raise ValueError(f"conditions must be among {sorted(CONDITIONS)}, got {c!r}")
    results = {}
    bar = tqdm(total=num_scenes * len(sizes) * len(conditions), disable=not progress, desc="evaluator validation")
    for size in sizes:
        for cond in conditions:
            acc, rej, rej_n = Counter(), Counter(), Counter()
            per_shape, per_motion = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
            failures, seconds = [], 0.0
            for i in range(num_scenes):
                scene = sample_scene(seed + i, num_frames=num_frames)
                video, _ = render_scene(scene, size)
                video = _condition(video, cond, size, seed + i)
                t0 = time.perf_counter()
                rep = evaluate_video(video, scene.caption)
                seconds += time.perf_counter() - t0
                for a in ATTRIBUTES:
                    acc[a] += bool(rep[a])
                for o in rep["objects"]:
                    per_shape[o["expected_shape"]][0] += o["shape"] == o["expected_shape"]
                    per_shape[o["expected_shape"]][1] += 1
                    per_motion[o["expected_motion"]][0] += o["motion"] == o["expected_motion"]
                    per_motion[o["expected_motion"]][1] += 1
                if not rep["all_correct"] and len(failures) < 5:
                    failures.append({"seed": seed + i, "caption": scene.caption, "detected": [{k: d[k] for k in ("color", "shape", "motion")} for d in rep["detected"]]})
                wrong, attr = perturb_caption(scene, np.random.default_rng(seed + i))
                bad = evaluate_video(video, wrong)
                rej_n[attr] += 1
                rej[attr] += not bad[attr]
                rej["all_correct"] += not bad["all_correct"]
                bar.update(1)
            results[f"{size}/{cond}"] = {
                "size": size,
                "condition": cond,
                "degradation": dict(zip(("blur_sigma_px", "noise_std", "mp4_crf23"), (CONDITIONS[cond][0] * size / 128.0, CONDITIONS[cond][1], CONDITIONS[cond][2]))),
                "num_scenes": num_scenes,
                "accuracy": {a: acc[a] / num_scenes for a in ATTRIBUTES},
                "accuracy_per_shape": {k: round(v[0] / v[1], 4) for k, v in sorted(per_shape.items())},
                "accuracy_per_motion": {k: round(v[0] / v[1], 4) for k, v in sorted(per_motion.items())},
                "rejection_of_wrong_caption": {a: rej[a] / rej_n[a] for a in sorted(rej_n)},
                "rejection_counts": dict(sorted(rej_n.items())),
                "rejection_all_correct_false": rej["all_correct"] / num_scenes,
                "failures": failures,
                "evaluate_ms_per_video": 1000.0 * seconds / (2 * num_scenes),
            }
    bar.close()
    return {"seed_start": seed, "num_frames": num_frames, "results": results}


def render_speed(sizes: tuple[int, ...] = (64, 128, 192, 288), num_scenes: int = 50, num_frames: int = 17) -> dict:
    """Milliseconds per clip of ``render_scene`` in one process: CPU time (what one core spends,
    robust to a busy machine) and wall time, without and with the ground truth."""
    scenes = [sample_scene(i, num_frames=num_frames) for i in range(num_scenes)]
    out = {}
    for size in sizes:
        row = {}
        for truth in (False, True):
            render_scene(scenes[0], size, with_truth=truth)  # warm up
            c0, t0 = time.process_time(), time.perf_counter()
            for s in scenes:
                render_scene(s, size, with_truth=truth)
            key = "with_truth" if truth else "video_only"
            row[f"{key}_cpu_ms"] = 1000.0 * (time.process_time() - c0) / num_scenes
            row[f"{key}_wall_ms"] = 1000.0 * (time.perf_counter() - t0) / num_scenes
        out[str(size)] = row
    return out
