"""``surf generate | preview | refine | upscale``: thin wrappers over :mod:`surf_video.api`."""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="surf-mini",
                   help="surf-mini (default, shipped), tiny-wan, tiny-hunyuan, or a diffusers Wan 2.1 / "
                        "HunyuanVideo folder or hub id")
    p.add_argument("--refiner", default="auto",
                   help="refiner folder (safetensors); 'auto' = SURF-Mini's own for surf-mini; 'none' to skip")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: as stored)")
    p.add_argument("--attention-backend", default=None, help="diffusers attention backend for base and refiner")
    p.add_argument("--compile", action="store_true", help="regional torch.compile of the repeated blocks")
    p.add_argument("--quantize", default=None, choices=["fp8"], help="torchao fp8 linears (GPU, surf-video[fast])")
    p.add_argument("--cache", default=None,
                   help="base transformer cache, as in `surf bench`: fbcache[:THRESHOLD] (FirstBlockCache; alias fbc), "
                        "taylorseer[:INTERVAL[:WARMUP]] or fora[:INTERVAL[:WARMUP]] (TaylorSeer of order 0 on whole "
                        "blocks: fits Wan 14B on one 80 GB GPU)")


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=None, help="number of frames (4n+1); default: the model's")
    p.add_argument("--steps", type=int, default=None, help="denoising steps; default: the model's")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale; default: the model's")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--switch-step", default="10", help="base-resolution steps before the switch, or 'auto'")
    p.add_argument("--base-height", type=int, default=None)
    p.add_argument("--base-width", type=int, default=None)
    p.add_argument("--preview-height", type=int, default=None)
    p.add_argument("--preview-width", type=int, default=None)
    p.add_argument("--renoise", default="flow", choices=["flow", "paper", "snr"])
    p.add_argument("--resize-mode", default="area", choices=["area", "bilinear", "bicubic"])
    p.add_argument("--stage-shift", action="store_true", help="resolution-aware shift of the preview sigmas")
    p.add_argument("--fps", type=int, default=16)


def _call_kwargs(args) -> dict:
    from ..api import defaults_for

    kw = defaults_for(args.base)
    kw.pop("target_size", None)
    kw.pop("target_sizes", None)
    for key, val in (("num_frames", args.frames), ("num_inference_steps", args.steps), ("guidance_scale", args.guidance)):
        if val is not None:
            kw[key] = val
    sw = args.switch_step
    kw.update(
        switch_step=sw if sw == "auto" else [int(x) for x in sw.split(",")] if "," in sw else int(sw),
        base_height=args.base_height, base_width=args.base_width, preview_height=args.preview_height,
        preview_width=args.preview_width, renoise=args.renoise, resize_mode=args.resize_mode,
        stage_shift=args.stage_shift, negative_prompt=args.negative_prompt,
    )
    return kw


def parse_cache(spec: str | None):
    """``--cache`` to a diffusers cache config, in the benchmarks' syntax and defaults
    (:func:`surf_video.bench.signature_accel.parse_accelerations`): ``fbcache[:THRESHOLD]`` (alias ``fbc``),
    ``taylorseer[:INTERVAL[:WARMUP]]`` or ``fora[:INTERVAL[:WARMUP]]``. TaylorSeer and FORA cache the blocks of
    every supported base (Wan's and HunyuanVideo's patterns), as the base is not known here.
    """
    if spec is None:
        return None
    from ..bench.signature_accel import parse_accelerations
    from ..pipelines.accel import BLOCK_IDENTIFIERS, TAYLORSEER_IDENTIFIERS

    name, sep, rest = spec.strip().partition(":")
    spec = ("fbcache" if name == "fbc" else name) + sep + rest
    try:
        specs = parse_accelerations(spec) if "," not in spec else []
    except ValueError as err:
        raise ValueError(str(err).replace("--accelerations:", "--cache:", 1)) from None
    if len(specs) != 1 or not specs[0].is_cache:
        raise ValueError("--cache must be fbcache[:THRESHOLD] (alias fbc), taylorseer[:INTERVAL[:WARMUP]] or "
                         f"fora[:INTERVAL[:WARMUP]], got {spec!r}")
    s = specs[0]
    if s.name in ("taylorseer", "fora"):
        s.params["cache_identifiers"] = list(TAYLORSEER_IDENTIFIERS if s.name == "taylorseer" else BLOCK_IDENTIFIERS)
    return s.kwargs()["cache"]


def _parallel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parallel", default=None, choices=["ulysses", "ring"],
                   help="context parallelism over the processes of a torchrun job: "
                        "torchrun --nproc_per_node N -m surf_video.cli.main generate ... --parallel ulysses")
    p.add_argument("--parallel-degree", type=int, default=None, help="default: the number of processes")


def _load(args):
    import os

    from ..api import load_pipeline

    parallel, device = getattr(args, "parallel", None), args.device
    if parallel:
        if "WORLD_SIZE" not in os.environ:
            raise ValueError("--parallel: launch under torchrun (torchrun --nproc_per_node N ...)")
        from ..pipelines.parallel import init_distributed

        info = init_distributed(args.device)
        device = str(info.device)
    pipe = load_pipeline(args.base, None if args.refiner == "none" else args.refiner, device, args.dtype)
    if args.attention_backend or args.compile or args.quantize or args.cache:
        pipe.enable_accelerations(cache=parse_cache(args.cache), attention_backend=args.attention_backend,
                                  compile=args.compile, quantize=args.quantize)
    if parallel:
        from ..pipelines.parallel import enable_context_parallel

        enable_context_parallel(pipe, **{f"{parallel}_degree": args.parallel_degree or info.world_size})
    return pipe


def _generate(args) -> int:
    from ..api import generate

    pipe = _load(args)
    kw = _call_kwargs(args)
    if args.height is None and pipe.refiner is not None:
        from ..api import defaults_for

        args.height, args.width = defaults_for(args.base).get("target_size", (None, None))
    summary = generate(pipe, args.prompt, args.out, seed=args.seed, fps=args.fps, height=args.height,
                       width=args.width, refine_steps=args.refine_steps, **kw)
    from ..pipelines.parallel import is_main_process

    if is_main_process():  # under torchrun every rank holds the same result; rank 0 wrote the video
        print(json.dumps(summary))
    return 0


def _preview(args) -> int:
    from ..api import make_previews

    pipe = _load(args)
    kw = _call_kwargs(args)
    paths = make_previews(pipe, args.prompt, args.out_dir, num_previews=args.num_previews, seed=args.seed,
                          fps=args.fps, **kw)
    print(json.dumps({"previews": [str(p) for p in paths]}))
    return 0


def _max_seq(base: str) -> int:
    from ..api import defaults_for

    return int(defaults_for(base).get("max_sequence_length", 512))


def _refine(args) -> int:
    from ..api import refine_preview

    summary = refine_preview(_load(args), args.preview, args.out, height=args.height, width=args.width,
                             prompt=args.prompt, refine_steps=args.refine_steps, seed=args.seed, fps=args.fps,
                             vae_tiling=args.vae_tiling, max_sequence_length=_max_seq(args.base))
    print(json.dumps(summary))
    return 0


def _upscale(args) -> int:
    from ..api import upscale_video

    summary = upscale_video(_load(args), args.input, args.out, height=args.height, width=args.width,
                            prompt=args.prompt, refine_steps=args.refine_steps, seed=args.seed, fps=args.fps,
                            vae_tiling=args.vae_tiling, max_sequence_length=_max_seq(args.base),
                            back_projection=args.back_projection)
    print(json.dumps(summary))
    return 0


def _non_negative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (iterations; 0 = off), got {text!r}")
    return n


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate a video with SURF (preview, then refine when a refiner is loaded)")
    p.add_argument("prompt")
    p.add_argument("--out", required=True, help="output video (.mp4, .webm, .gif)")
    p.add_argument("--height", type=int, default=None, help="refined output height (default: the model's target)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--refine-steps", type=int, default=10)
    _model_args(p)
    _sample_args(p)
    _parallel_args(p)
    p.set_defaults(func=_generate)

    p = sub.add_parser("preview", help="make previews (videos + latents) to refine later with `surf refine`")
    p.add_argument("prompt")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num-previews", type=int, default=1)
    _model_args(p)
    _sample_args(p)
    p.set_defaults(func=_preview, refiner="none")

    for name, helptext, func in (("refine", "refine a saved preview (.safetensors from `surf preview`)", _refine),
                                 ("upscale", "refine an existing low-resolution video to a higher resolution", _upscale)):
        p = sub.add_parser(name, help=helptext)
        if name == "refine":
            p.add_argument("--preview", required=True)
            p.add_argument("--prompt", default=None, help="default: the prompt stored in the preview")
        else:
            p.add_argument("input")
            p.add_argument("--prompt", default="")
            p.add_argument("--back-projection", type=_non_negative, default=0, metavar="N",
                           help="pull the result towards the input's pixels with N back-projection iterations "
                                "(3 is plenty; 0 = off, the refiner alone)")
        p.add_argument("--out", required=True)
        p.add_argument("--height", type=int, required=True)
        p.add_argument("--width", type=int, required=True)
        p.add_argument("--refine-steps", type=int, default=10)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--fps", type=int, default=16)
        p.add_argument("--vae-tiling", action="store_true")
        _model_args(p)
        p.set_defaults(func=func)
