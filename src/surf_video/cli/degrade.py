"""``surf degrade IN.mp4 --out OUT.mp4 --seed N``: show what the refiner is trained on."""

from __future__ import annotations

import argparse

__all__ = ["register", "load_degrade_config"]


def load_degrade_config(path: str | None):
    """A :class:`DegradeConfig` from a degradation YAML or a training recipe (its ``degrade`` section)."""
    import yaml
    from pathlib import Path

    from surf_video.train.config import from_dict, load_config
    from surf_video.train.degrade import DegradeConfig

    if path is None:
        return DegradeConfig()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if "degrade" in data or "model" in data:
        return load_config(p).degrade
    return from_dict(DegradeConfig, data, "degrade")


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from surf_video.io.video import read_video, write_video
    from surf_video.train.data import resize_crop
    from surf_video.train.degrade import degrade_latents, degrade_video

    cfg = load_degrade_config(args.config)
    frames = read_video(args.input, max_frames=args.frames)
    if args.size:
        frames = resize_crop(frames, args.size, None)
    out = degrade_video(frames, cfg.pixel, seed=args.seed)
    if args.vae:
        # latent-level degradation too: encode, degrade, decode (what the refiner's input looks like)
        from surf_video.train.config import EncoderConfig
        from surf_video.train.data import to_tensor
        from surf_video.train.latents import build_encoder

        enc = build_encoder(EncoderConfig(type="identity" if args.vae == "identity" else "wan",
                                          path=None if args.vae == "identity" else args.vae))
        z_hr, z_lr = enc.encode(to_tensor(frames)[None]), enc.encode(to_tensor(out)[None])
        z = degrade_latents(z_lr[0].float(), z_hr[0].float(), cfg, torch.Generator().manual_seed(args.seed))
        x = enc.decode(z[None])[0]
        out = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy()[: len(frames)]
    if args.side_by_side:
        out = np.concatenate([frames[: len(out)], out], axis=2)
    write_video(args.out, out, fps=args.fps)
    print(f"wrote {args.out} ({out.shape[0]} frames, {out.shape[2]}x{out.shape[1]}, seed {args.seed})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("degrade", help="apply the training degradations to a video (what the refiner sees)",
                       description="Apply the seeded refiner-training degradations to a video.")
    p.add_argument("input", help="input video (mp4/webm/mov/gif) or a folder of frames")
    p.add_argument("--out", required=True, help="output video (.mp4/.webm/.gif)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=None, help="degradation YAML or a training recipe with a 'degrade' section")
    p.add_argument("--frames", type=int, default=None, help="use the first N frames")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None, help="resize + center-crop first")
    p.add_argument("--vae", default=None, help="also apply latent-level degradation through this VAE ('identity' for pixels)")
    p.add_argument("--side-by-side", action="store_true", help="write input | degraded")
    p.add_argument("--fps", type=float, default=16)
    p.set_defaults(func=_run)
