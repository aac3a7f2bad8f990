"""CPU timing of the SURF-Mini stages (2 threads by default).

``python -m surf_video.mini.cpu_time --out benchmarks/results/mini_cpu_time.json``

Times, for one 17-frame clip with CFG 5: loading; the base's 10 steps at 128 px and 30 steps at
64 px (SURF's 10-30 split, latents only); the VAE decode at 192 / 288 px; 10 refiner steps at 192 /
288 px (with random weights of the shipped refiner config when no refiner is shipped, which is
timing only); and the base run directly at 128 / 192 / 288 px with 40 steps and decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

__all__ = ["measure", "main"]

PROMPT = "a big red circle moving right on a plain gray background"


def measure(threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    t0 = time.time()
    from .build import build_refiner
    from .config import GUIDANCE_SCALE, MAX_SEQUENCE_LENGTH, MiniConfig
    from .loading import has_surf_mini_refiner, load_surf_mini, load_surf_mini_refiner
    from .train_refiner import decode_latents

    pipe = load_surf_mini()
    res: dict = {"threads": threads, "load_s": time.time() - t0, "loadavg_start": list(os.getloadavg())}

    def gen(size, steps, out="latent"):
        t = time.time()
        pipe(PROMPT, height=size, width=size, num_frames=17, num_inference_steps=steps, guidance_scale=GUIDANCE_SCALE,
             generator=torch.Generator().manual_seed(0), output_type=out,
             max_sequence_length=MAX_SEQUENCE_LENGTH)  # fmt: skip
        return time.time() - t

    res["base_128_10steps_cfg_latent_s"] = gen(128, 10)
    res["base_64_30steps_cfg_latent_s"] = gen(64, 30)
    for s in (192, 288):
        t = time.time()
        decode_latents(pipe.vae, torch.randn(1, 16, 5, s // 8, s // 8))
        res[f"vae_decode_{s}_s"] = time.time() - t
    shipped = has_surf_mini_refiner()
    ref = load_surf_mini_refiner() if shipped else build_refiner(MiniConfig().refiner).eval()
    res["refiner_weights"] = "shipped" if shipped else "random (timing only)"
    emb = torch.zeros(1, MAX_SEQUENCE_LENGTH, pipe.text_encoder.config.d_model)
    for s in (192, 288):
        z = torch.randn(1, 16, 5, s // 8, s // 8)
        with torch.no_grad():
            t = time.time()
            for _ in range(10):
                ref(hidden_states=z, timestep=torch.tensor([500.0]), encoder_hidden_states=emb)
        res[f"refiner_10steps_{s}_s"] = time.time() - t
    for s in (128, 192, 288):
        res[f"base_direct_{s}_40steps_cfg_with_decode_s"] = gen(s, 40, "np")
    for s in (192, 288):
        res[f"surf_estimate_{s}_s"] = (res["load_s"] + res["base_128_10steps_cfg_latent_s"] + res["base_64_30steps_cfg_latent_s"]
                                       + res[f"refiner_10steps_{s}_s"] + res[f"vae_decode_{s}_s"])  # fmt: skip
    res["loadavg_end"] = list(os.getloadavg())
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    res = measure(a.threads)
    res["command"] = "python -m surf_video.mini.cpu_time" + (f" --threads {a.threads}" if a.threads != 2 else "") + (f" --out {a.out}" if a.out else "")
    if a.out:
        from .recipe import write_json

        write_json(a.out, res)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
