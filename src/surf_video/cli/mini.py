"""``surf mini``: train the SURF-Mini parts and evaluate the shipped model.

Examples::

    surf mini train vae --config configs/mini/vae.yaml --out runs/mini/vae
    surf mini train base --vae runs/mini/vae --out runs/mini/pipe
    surf mini train refiner --pipe runs/mini/pipe --out runs/mini/refiner
    surf mini eval --prompts 100 --size 128
"""

from __future__ import annotations

import argparse
import json

from surf_video.mini.config import GUIDANCE_SCALE

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser("mini", help="train / evaluate SURF-Mini, the embedded miniature text-to-video model")
    sub = p.add_subparsers(dest="mini_command", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="train one part: vae, base or refiner")
    t.add_argument("part", choices=["vae", "base", "refiner"])
    t.add_argument("--config", default=None, help="YAML recipe (configs/mini/<part>.yaml); defaults built in")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of the training loop")
    t.add_argument("--resume", default=None, help="folder of a saved model (or pipeline, for base) to continue")
    t.add_argument("--out", required=True, help="output folder (diffusers layout)")
    t.add_argument("--vae", default=None, help="base: folder of the trained VAE")
    t.add_argument("--pipe", default=None, help="refiner: folder of the trained pipeline (vae, text encoder)")
    t.add_argument("--metrics", default=None, help="write metrics JSON here")
    t.add_argument("--final-eval", type=int, default=None, help="base/refiner: prompts / clips of the final evaluation")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one recipe field (repeatable; VALUE read as YAML), e.g. --set lr=2e-4")
    t.add_argument("--device", default="cuda")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="prompt adherence of a SURF-Mini base with the world evaluator")
    e.add_argument("--model", default=None, help="pipeline folder (default: the shipped SURF-Mini)")
    e.add_argument("--prompts", type=int, default=100)
    e.add_argument("--size", type=int, default=128)
    e.add_argument("--steps", type=int, default=40)
    e.add_argument("--guidance", type=float, default=GUIDANCE_SCALE, help=f"CFG scale (default {GUIDANCE_SCALE})")
    e.add_argument("--flow-shift", type=float, default=None, help="override the scheduler's flow_shift (shipped: 3.0)")
    e.add_argument("--prompt-offset", type=int, default=0,
                   help="0: the fixed test prompts; K > 0: the prompts of scenes K.. on (a development set for tuning)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", default=None, help="write the result JSON here")
    e.add_argument("--vsr", type=int, default=0, metavar="N",
                   help="instead: the refiner as video super-resolution on N held-out clips (PSNR/SSIM vs bicubic)")
    e.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from surf_video.mini.recipe import load_recipe, write_json

    recipe = load_recipe(args.part, args.config, max_steps=args.max_steps, max_minutes=args.max_minutes,
                         **_parse_sets(args.set))
    extra = {} if args.final_eval is None else ({"final_eval": args.final_eval} if args.part == "base" else {"eval_clips": args.final_eval})
    if args.part == "vae":
        from surf_video.mini.train_vae import train_vae

        metrics = train_vae(recipe, args.out, resume=args.resume, device=args.device)
    elif args.part == "base":
        if not args.vae:
            raise ValueError("--vae is required for `surf mini train base` (folder of the trained VAE)")
        from surf_video.mini.train_base import train_base

        metrics = train_base(recipe, args.vae, args.out, resume=args.resume, device=args.device, **extra)
    else:
        if not args.pipe:
            raise ValueError("--pipe is required for `surf mini train refiner` (folder of the trained pipeline)")
        from surf_video.mini.train_refiner import train_refiner

        metrics = train_refiner(recipe, args.pipe, args.out, resume=args.resume, device=args.device, **extra)
    metrics["recipe"] = vars(recipe)
    if args.metrics:
        write_json(args.metrics, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "recipe"}, indent=1, default=str))
    return 0


def _parse_sets(items: list[str]) -> dict:
    """``["lr=2e-4", "frames=9"]`` -> ``{"lr": 0.0002, "frames": 9}`` (values read as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE (a recipe field), got {item!r}")
        v = yaml.safe_load(value)
        if isinstance(v, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                pass
        out[key.strip()] = v
    return out


def _eval(args: argparse.Namespace) -> int:
    import torch

    from surf_video.mini.data import EVAL_SEED_BASE, eval_captions
    from surf_video.mini.loading import load_surf_mini
    from surf_video.mini.recipe import write_json
    from surf_video.mini.train_base import adherence, generate_eval

    if args.prompts < 1:
        raise ValueError(f"--prompts must be >= 1, got {args.prompts}")
    if args.vsr < 0:
        raise ValueError(f"--vsr must be >= 0 (number of held-out clips), got {args.vsr}")
    if args.prompt_offset < 0:
        raise ValueError(f"--prompt-offset must be >= 0, got {args.prompt_offset}")
    if args.flow_shift is not None and args.flow_shift <= 0:
        raise ValueError(f"--flow-shift must be > 0, got {args.flow_shift}")
    pipe = load_surf_mini(args.model, device=args.device, dtype=torch.float32)
    if args.flow_shift is not None:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=args.flow_shift)
    if args.vsr:
        res = _eval_vsr(args, pipe)
    else:
        caps = eval_captions(args.prompts, offset=args.prompt_offset)
        first = EVAL_SEED_BASE + args.prompt_offset
        vids = generate_eval(pipe, caps, args.size, [first + i for i in range(len(caps))], steps=args.steps,
                             guidance=args.guidance, batch=10 if args.device == "cpu" else 50)  # fmt: skip
        res = {"image_size": args.size, "steps": args.steps, "guidance": args.guidance,
               "flow_shift": pipe.scheduler.config.flow_shift, "prompts": len(caps), "first_seed": first,
               "adherence": adherence(vids, caps)}  # fmt: skip
    if args.out:
        write_json(args.out, res)
    print(json.dumps(res, indent=1))
    return 0


def _eval_vsr(args, pipe) -> dict:
    from surf_video.mini.loading import load_surf_mini_refiner
    from surf_video.mini.train_refiner import VSR_SEED_BASE, vsr_eval

    refiner = load_surf_mini_refiner(args.model, device=args.device)
    return vsr_eval(refiner, pipe.vae, pipe.text_encoder, pipe.tokenizer, range(VSR_SEED_BASE, VSR_SEED_BASE + args.vsr),
                    steps=10)  # fmt: skip
