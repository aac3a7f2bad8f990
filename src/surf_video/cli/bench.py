"""``surf bench``: benchmarks. ``surf bench speed`` times SURF against its base model on the GPU;
``surf bench speed-report`` rebuilds the README section and charts from the saved JSON results.

Other benchmarks (``surf bench signature``) add their own sub-subcommand here.
"""

from __future__ import annotations

import argparse
import gc
import shlex
import sys
import traceback
from pathlib import Path

__all__ = ["register", "MODEL_CHOICES"]

MODEL_CHOICES = ("wan14b", "wan1.3b", "hunyuan13b", "refiner-1b", "refiner-paper-1b", "wan-tiny", "hunyuan-tiny",
                 "refiner-tiny", "all")
_ALL = ("wan14b", "hunyuan13b", "refiner-1b", "wan1.3b")


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 480x832, got {text!r}") from None
    return h, w


def _windows(text: str) -> tuple:
    out = []
    for v in text.split(","):
        v = v.strip().lower()
        out.append(None if v in ("full", "none") else int(v))
    return tuple(out)


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmarks (speed on the GPU; signature later)")
    sub = p.add_subparsers(dest="bench_command", metavar="BENCH")
    sub.required = True
    s = sub.add_parser("speed", help="SURF vs the base model at full size, random bf16 weights, one GPU")
    s.add_argument("--model", default="wan14b", choices=MODEL_CHOICES)
    s.add_argument("--target", default="720p", help="720p, 1080p (1088x1920), comma list or 'all'")
    s.add_argument("--steps", type=int, default=50, help="baseline steps (default 50)")
    s.add_argument("--surf-steps", type=int, default=40, help="SURF preview steps in all (default 40 = 10 + 30)")
    s.add_argument("--switch-step", type=int, default=10, help="SURF steps at the base size (default 10)")
    s.add_argument("--refine-steps", type=int, default=10)
    s.add_argument("--timed-steps", type=int, default=None,
                   help="run at most N steps per stage and extrapolate (default: run every step)")
    s.add_argument("--num-frames", type=int, default=None, help="default: 81 (Wan), 129 (HunyuanVideo)")
    s.add_argument("--base-size", type=_size, default=None)
    s.add_argument("--preview-size", type=_size, default=None)
    s.add_argument("--target-size", type=_size, default=None, help="override the target's size (tests)")
    s.add_argument("--windows", type=_windows, default=(7, 3, None),
                   help="refiner-only runs: temporal windows to time, e.g. '7,3,full'")
    s.add_argument("--compile", action="store_true", help="torch.compile the repeated blocks")
    s.add_argument("--batch-cfg", action="store_true", help="Wan: both CFG passes in one batch of 2")
    s.add_argument("--attention-backend", default=None, help="diffusers attention backend (e.g. _native_cudnn)")
    s.add_argument("--quantize", default=None, choices=["fp8"],
                   help="torchao float8 weights and activations for base and refiner (CUDA, compute capability >= 8.9)")
    s.add_argument("--cache", default=None, metavar="SPEC",
                   help="a diffusers cache on SURF's base stages: taylorseer|fora[:INTERVAL[:WARMUP]] or "
                        "fbcache[:THRESHOLD] (the signature benchmark's defaults; TaylorSeer's factors in --dtype); "
                        "SURF then runs every step after a warm-up call, the baseline is timed without the cache")
    s.add_argument("--eager-baseline", action="store_true",
                   help="also time the baseline before any acceleration is applied (same process and GPU): "
                        "gives 'SURF vs eager baseline' side by side")
    s.add_argument("--no-accel-baseline", action="store_true",
                   help="with --eager-baseline: skip timing the accelerated baseline (saves a long compile and run at "
                        "1080p); SURF is then compared with the eager baseline only")
    s.add_argument("--no-vae-decode", action="store_true", help="skip the separate full-size VAE decode timing")
    s.add_argument("--profile", action="store_true", help="profile one forward of each stage under 60%% of peak")
    s.add_argument("--device", default="cuda")
    s.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    s.add_argument("--parallel", default=None, choices=("ulysses", "ring"),
                   help="context parallelism over a torchrun job's GPUs (torchrun --nproc_per_node N -m "
                        "surf_video.cli.main bench speed ... --parallel ulysses); rank 0 writes the JSON")
    s.add_argument("--parallel-degree", type=int, default=None, help="default: the number of processes")
    s.add_argument("--out", default="benchmarks/results",
                   help="a .json file (one model) or a folder (speed_<model>[_variant].json in it)")
    s.set_defaults(func=_speed)
    r = sub.add_parser("speed-report", help="rebuild benchmarks/README.md's Speed section and the charts")
    r.add_argument("--results", default="benchmarks/results")
    r.add_argument("--readme", default="benchmarks/README.md")
    r.add_argument("--charts", default="benchmarks", help="folder for speed_<model>.png")
    r.add_argument("--intro", default="benchmarks/results/speed_notes.md",
                   help="a markdown file whose text opens the section (skipped when missing)")
    r.set_defaults(func=_report)


def _out_path(args, model: str, many: bool) -> Path:
    out = Path(args.out)
    if out.suffix == ".json" and not many:
        return out
    variant = "".join(["_compile" if args.compile else "", "_batchcfg" if args.batch_cfg else "",
                       f"_{args.attention_backend.strip('_')}" if args.attention_backend else "",
                       f"_{args.quantize}" if args.quantize else "",
                       f"_{args.cache.split(':')[0]}" if args.cache else "",
                       f"_{args.parallel}{args.parallel_degree or ''}" if args.parallel else ""])
    return out / f"speed_{model}{variant}.json"


def _speed(args) -> int:
    from ..bench.speed import TARGETS, SpeedConfig, run_speed
    from ..bench.speed_report import write_json

    targets = [t.strip() for t in args.target.split(",")] if args.target != "all" else ["720p", "1080p"]
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"--target: {t!r} is not one of {sorted(TARGETS)} or 'all'")
    if not 0 <= args.switch_step <= args.surf_steps:
        raise ValueError(f"--switch-step must be in [0, --surf-steps={args.surf_steps}], got {args.switch_step}")
    if args.timed_steps is not None and args.timed_steps < 1:
        raise ValueError(f"--timed-steps must be >= 1, got {args.timed_steps}")
    if args.cache:
        from ..bench.speed import _cache_config

        _cache_config(args.cache)  # a bad spec fails here, before any model is built
    models = list(_ALL) if args.model == "all" else [args.model]
    command = "surf " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "surf bench speed"
    main = True
    if args.parallel:
        import os

        from ..pipelines.parallel import init_distributed

        if "WORLD_SIZE" not in os.environ:
            raise ValueError("--parallel: launch under torchrun (torchrun --nproc_per_node N ...)")
        main = init_distributed(args.device).rank == 0
        command = f"torchrun --nproc_per_node {os.environ['WORLD_SIZE']} -m surf_video.cli.main " + command[5:]
    failed = 0
    for model in models:
        cfg = SpeedConfig(
            model=model, targets=tuple(targets), steps=args.steps, surf_steps=args.surf_steps,
            switch_step=args.switch_step, refine_steps=args.refine_steps, timed_steps=args.timed_steps,
            num_frames=args.num_frames, base_size=args.base_size, preview_size=args.preview_size,
            target_size=args.target_size, windows=args.windows, compile=args.compile, batch_cfg=args.batch_cfg,
            attention_backend=args.attention_backend, quantize=args.quantize, cache=args.cache,
            eager_baseline=args.eager_baseline, accel_baseline=not args.no_accel_baseline, vae_decode=not args.no_vae_decode, profile=args.profile,
            device=args.device, dtype=args.dtype, command=command, parallel=args.parallel,
            parallel_degree=args.parallel_degree,
        )
        try:
            result = run_speed(cfg, log=lambda m: print(m, flush=True) if main else None)
        except Exception:  # one model failing (e.g. out of memory) must not lose the others' results
            if len(models) == 1:
                raise
            traceback.print_exc()
            failed += 1
            continue
        finally:
            gc.collect()
            _empty_cache()
        if main:  # under torchrun every rank has the result; rank 0 writes it
            path = write_json(result, _out_path(args, model, len(models) > 1))
            print(f"wrote {path}", flush=True)
    return 1 if failed else 0


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _report(args) -> int:
    from ..bench.speed_report import load_results, plot_result, update_readme

    intro = Path(args.intro).read_text() if args.intro and Path(args.intro).exists() else ""
    for path, res in load_results(args.results):
        png = plot_result(res, Path(args.charts) / f"{path.stem}.png")
        if png:
            print(f"wrote {png}")
    print(f"wrote {update_readme(args.readme, args.results, intro)}")
    return 0
