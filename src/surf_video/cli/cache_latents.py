"""``surf cache-latents DATA --vae PATH --out DIR``: pre-encode HR/LR latent pairs (resumable)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from surf_video.cli.degrade import load_degrade_config
    from surf_video.train.config import EncoderConfig, TextConfig
    from surf_video.train.data import VideoClipDataset, scan_videos
    from surf_video.train.latents import build_encoder, cache_latents
    from surf_video.train.text import build_text_encoder

    if args.frames < 1 or args.variants < 1 or args.shard_size < 1:
        raise ValueError("--frames, --variants and --shard-size must be >= 1")
    degrade = load_degrade_config(args.config)
    ds = VideoClipDataset(scan_videos(args.data, args.video_column, args.caption_column), args.frames, args.size,
                          args.frame_stride, degrade.pixel, args.seed)
    enc = build_encoder(EncoderConfig(type="identity") if args.vae == "identity"
                        else EncoderConfig(type="wan", path=args.vae), device=args.device)
    text = None
    if args.text_encoder:
        text = build_text_encoder(TextConfig(type="t5", path=args.text_encoder, max_length=args.max_text_length))
    out = cache_latents(ds, enc, args.out, text_encoder=text, shard_size=args.shard_size,
                        batch_size=args.batch_size, variants=args.variants, device=args.device)
    print(f"cached {len(ds)} videos x {args.variants} variants in {out} ({len(ds.skipped)} skipped)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("cache-latents", help="pre-encode HR/LR latent pairs for refiner training",
                       description="Encode clean and degraded clips to latents (safetensors shards + index.json). "
                                   "Rerun the same command to continue an interrupted run.")
    p.add_argument("data", help="folder of videos (sidecar .txt captions) or a CSV/JSONL manifest")
    p.add_argument("--vae", required=True, help="diffusers AutoencoderKLWan folder (or a model folder with vae/), "
                                                "or 'identity' for pixel-space latents")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--config", default=None, help="degradation YAML or training recipe")
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=[480, 832])
    p.add_argument("--frame-stride", type=int, default=1)
    p.add_argument("--variants", type=int, default=1, help="degraded versions per video")
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--text-encoder", default=None, help="(UM)T5 folder: also cache caption embeddings")
    p.add_argument("--max-text-length", type=int, default=512)
    p.add_argument("--video-column", default="video")
    p.add_argument("--caption-column", default="caption")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run)
