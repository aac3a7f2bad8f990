"""``surf train CONFIG.yaml [--max-steps N] [--resume]``: train a refiner (use ``accelerate launch`` for DDP/FSDP)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from surf_video.train.config import load_config
    from surf_video.train.trainer import Trainer

    overrides = {"output_dir": args.output_dir} if args.output_dir else None
    cfg = load_config(args.config, overrides)
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {args.max_steps}")
    trainer = Trainer(cfg)
    result = trainer.train(max_steps=args.max_steps, resume=args.resume)
    if result.step >= cfg.total_steps:
        path = trainer.export()
        if trainer.acc.is_main_process:
            print(f"exported {path}")
    if trainer.acc.is_main_process:
        print(f"step {result.step}/{cfg.total_steps}, last loss {result.last_loss:.5g}, "
              f"{result.steps_per_s:.3f} steps/s, checkpoint {result.checkpoint}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a refiner from a YAML recipe",
                       description="Train a SURF refiner. Multi-GPU / FSDP: "
                                   "accelerate launch -m surf_video.cli.main train CONFIG.yaml")
    p.add_argument("config", help="YAML recipe (see configs/refiner/)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this global step (checkpointed)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--output-dir", default=None, help="override output_dir of the recipe")
    p.set_defaults(func=_run)
