"""Where the SURF-Mini VAE loses: round-trip PSNR by background pattern, next to bicubic upsampling.

Renders held-out world clips (seeds 6,000,000+, the refiner's VSR clips) at ``--size`` and at 64 px, and reports,
per background (plain, gradient, stripes, checker, noise), the PSNR of the shipped VAE's round trip of the
``--size`` render and of bicubic upsampling of the 64 px render (the VSR baseline)::

    PYTHONPATH=src python benchmarks/mini_vae_by_background.py --clips 20 --out benchmarks/results/mini_v4/vae_by_background.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def main(argv=None) -> dict:
    from surf_video.mini.config import NUM_FRAMES
    from surf_video.mini.data import video_to_tensor
    from surf_video.mini.loading import load_surf_mini
    from surf_video.mini.train_refiner import VSR_SEED_BASE
    from surf_video.mini.train_vae import psnr
    from surf_video.world import render_scene, sample_scene

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.clips < 1 or args.size % 8:
        raise ValueError(f"--clips must be >= 1 and --size a multiple of 8, got {args.clips}, {args.size}")
    vae = load_surf_mini(device="cpu").vae
    rows = defaultdict(lambda: {"vae_roundtrip": [], "bicubic": []})
    for i in range(args.clips):
        scene = sample_scene(np.random.default_rng(VSR_SEED_BASE + i), max_objects=3, num_frames=NUM_FRAMES)
        hr, lr = (video_to_tensor(np.asarray(render_scene(scene, size=s, num_frames=NUM_FRAMES)[0], np.uint8))
                  for s in (args.size, 64))  # fmt: skip  [1, 3, T, S, S] in [-1, 1]
        rec = vae.decode(vae.encode(hr).latent_dist.mean).sample
        bic = F.interpolate(lr[0].transpose(0, 1), size=hr.shape[-2:], mode="bicubic", align_corners=False)
        rows[scene.background]["vae_roundtrip"].append(psnr(rec, hr))
        rows[scene.background]["bicubic"].append(psnr(bic, hr[0].transpose(0, 1)))  # psnr clamps to [-1, 1]
        print(f"clip {i} {scene.background}: VAE {rows[scene.background]['vae_roundtrip'][-1]:.1f} dB, "
              f"bicubic {rows[scene.background]['bicubic'][-1]:.1f} dB", flush=True)
    res = {"size": args.size, "clips": args.clips, "first_seed": VSR_SEED_BASE,
           "by_background": {bg: {"n": len(r["bicubic"]), **{k: float(np.mean(v)) for k, v in r.items()}}
                             for bg, r in sorted(rows.items())}}  # fmt: skip
    if args.out:
        from surf_video.mini.recipe import write_json

        write_json(args.out, res)
    print(json.dumps(res["by_background"], indent=1))
    return res


if __name__ == "__main__":
    main()
