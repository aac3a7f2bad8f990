"""``surf world``: sample the procedural video world, check a video against a caption, validate the evaluator.

Examples::

    surf world sample --n 8 --size 128 --frames 17 --out world_samples
    surf world eval world_samples/000000.mp4 "a big red circle moving left on a plain gray background"
    surf world validate --scenes 500 --out benchmarks/results/world_evaluator.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
from pathlib import Path

__all__ = ["register"]


def _sizes(text: str) -> int | tuple[int, int]:
    parts = text.lower().split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}")


def _sample(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from surf_video.io.video import write_video
    from surf_video.world import render_scene, sample_scene

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in tqdm(range(args.n), desc="world sample", disable=args.n < 4):
        seed = args.seed + i
        scene = sample_scene(seed, max_objects=args.max_objects, num_frames=args.frames)
        video, _ = render_scene(scene, args.size, args.frames, with_truth=False)
        name = f"{seed:06d}.mp4"
        write_video(out / name, video, fps=args.fps, crf=args.crf)
        lines.append({"file": name, "seed": seed, "caption": scene.caption})
    with open(out / "captions.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    (out / "captions.txt").write_text("".join(f"{d['file']}\t{d['caption']}\n" for d in lines))
    print(f"wrote {len(lines)} clips and captions.jsonl to {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from surf_video.io.video import read_video
    from surf_video.world import evaluate_video

    video = read_video(args.video)
    rep = evaluate_video(video, args.caption)
    keys = ("color", "shape", "count", "motion", "size", "all_correct")
    summary = {k: rep[k] for k in keys}
    summary["objects"] = rep["objects"]
    summary["detected"] = rep["detected"]
    print(json.dumps(summary, indent=2, default=float))
    return 0 if rep["all_correct"] else 1


def _validate(args: argparse.Namespace) -> int:
    from surf_video.world.validate import render_speed, validate_evaluator

    report = validate_evaluator(args.scenes, tuple(args.sizes), tuple(args.conditions), seed=args.seed, num_frames=args.frames)
    report["render_ms_per_clip"] = render_speed(num_frames=args.frames)
    report["command"] = (
        f"surf world validate --scenes {args.scenes} --sizes {' '.join(map(str, args.sizes))} "
        f"--conditions {' '.join(args.conditions)} --seed {args.seed} --frames {args.frames}"
        + (f" --out {shlex.quote(args.out)}" if args.out else "")
    )
    from surf_video.world import evaluate as ev

    report["evaluator_settings"] = {k: getattr(ev, k) for k in ("COLOR_TOL", "MIN_AREA", "MIN_PRESENCE", "HALO_FRACTION", "HALO_DISTANCE")}
    try:
        import subprocess

        report["code_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        report["code_commit"] = None
    report["machine"] = f"{platform.processor() or platform.machine()}, single process, numpy only (shared 2-core CPU: timings are indicative)"
    for key, res in report["results"].items():
        acc = res["accuracy"]
        rej = res["rejection_of_wrong_caption"]
        print(f"{key:>12}: " + " ".join(f"{a}={acc[a]:.3f}" for a in acc) + " | wrong caption rejected: " + " ".join(f"{a}={v:.3f}" for a, v in rej.items()))
    print("render ms/clip:", json.dumps(report["render_ms_per_clip"]))
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("world", help="the procedural video world: sample clips, evaluate a video, validate the evaluator")
    sub = p.add_subparsers(dest="world_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("sample", help="render random scenes to mp4 with their captions")
    s.add_argument("--n", type=int, default=8, help="number of clips")
    s.add_argument("--size", type=_sizes, default=128, help="N or HxW pixels")
    s.add_argument("--frames", type=int, default=17)
    s.add_argument("--seed", type=int, default=0, help="seed of the first scene (one seed per clip)")
    s.add_argument("--max-objects", type=int, default=3)
    s.add_argument("--fps", type=float, default=16)
    s.add_argument("--crf", type=int, default=None, help="H.264 quality (lower is better)")
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_sample)

    e = sub.add_parser("eval", help="check a video against a caption (exit 1 when an attribute is wrong)")
    e.add_argument("video")
    e.add_argument("caption")
    e.set_defaults(func=_eval)

    v = sub.add_parser("validate", help="accuracy of the evaluator on held-out ground-truth renders")
    v.add_argument("--scenes", type=int, default=500)
    v.add_argument("--sizes", type=int, nargs="+", default=[128, 64])
    v.add_argument("--conditions", nargs="+", default=["clean", "mild", "mp4", "strong"])
    v.add_argument("--seed", type=int, default=1_000_000)
    v.add_argument("--frames", type=int, default=17)
    v.add_argument("--out", default=None, help="write the JSON report here")
    v.set_defaults(func=_validate)
