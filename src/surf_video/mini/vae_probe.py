"""Probe whether a freshly built SURF-Mini VAE learns to use its latent (CPU, small crops).

``python -m surf_video.mini.vae_probe {old,new,pure} STEPS [LR]`` trains a new VAE on 16 px x 5-frame
windows of world clips for STEPS Adam steps, then reports the PSNR of decoding the latent means,
shuffled means and zeros. If the three are equal, the decoder ignores z (the collapse seen in the
v0 GPU run). Objectives: ``old`` = posterior sample + 1e-4 KL (v0), ``new`` = ``train_vae``'s
deterministic AE with latent noise, ``pure`` = decode(mu) with L1 only, ``zero-mid`` = ``pure`` with the
last conv of the decoder mid block's residual branches zero-initialised, ``frozen-encoder`` = ``pure``
training only the decoder on the outputs of the frozen random encoder. ``--crop N`` sets the window size
(default 16); ``--warmup N`` ramps the learning rate linearly over the first N steps (default 0).
``python -m surf_video.mini.vae_probe per-frame VAE_DIR`` prints a saved VAE's PSNR per frame on 8 held-out
17-frame clips at 128 px.
``python -m surf_video.mini.vae_probe overfit STEPS LR [LR ...]`` trains a fresh VAE on just two 64 px world
frames per learning rate and prints the PSNR of their reconstruction and of decoding zeros: a VAE that cannot
memorise two images is collapsed (found 2026-11-25: with L1 + 0.05 MSE, lr 1.5e-4 and above draw backgrounds only;
``--mse-weight 1`` (L1 + MSE, the recipe since) memorises both frames at 3e-4).
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

from .build import build_vae
from .data import render_clips
from .train_vae import _batch, psnr

__all__ = ["probe", "per_frame_psnr", "overfit", "main"]


MODES = ("old", "new", "pure", "zero-mid", "frozen-encoder")


def probe(mode: str, steps: int, lr: float = 1e-3, threads: int = 1, crop: int = 16, warmup: int = 0) -> dict:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    _, r = render_clips(range(64), (64,), workers=1, progress=False)
    _, h = render_clips(range(100, 116), (144,), workers=1, progress=False)
    data_r, data_hr = torch.from_numpy(r[64]), torch.from_numpy(h[144])
    vae = build_vae().train()
    if mode == "zero-mid":
        mid = vae.decoder.mid_block
        for conv in (mid.attentions[0].proj, mid.resnets[0].conv2, mid.resnets[1].conv2):
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    if mode == "frozen-encoder":
        for p in [*vae.encoder.parameters(), *vae.quant_conv.parameters()]:
            p.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:  # linear warm-up (train_vae's recipe uses one)
            g["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
        x = _batch(data_r, data_hr, 4, gen, cpu, crop=crop, frames=5)
        post = vae.encode(x).latent_dist
        if mode == "old":
            kl = 0.5 * (post.mean**2 + post.var - 1.0 - post.logvar).mean()
            loss = F.l1_loss(vae.decode(post.sample()).sample, x) + 1e-4 * kl
        elif mode in ("pure", "zero-mid", "frozen-encoder"):
            loss = F.l1_loss(vae.decode(post.mean).sample, x)
        else:
            mu = post.mean
            rec = vae.decode(mu + 0.1 * mu.detach().std() * torch.randn_like(mu)).sample
            loss = F.l1_loss(rec, x) + 0.05 * F.mse_loss(rec, x) + 1e-4 * (mu**2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
    vae.eval()
    gen = torch.Generator().manual_seed(123)
    x = _batch(data_r, data_hr, 8, gen, cpu, crop=32, frames=5)
    with torch.no_grad():
        post = vae.encode(x).latent_dist
        mu = post.mean
        return {
            "mode": mode, "steps": steps, "lr": lr, "warmup": warmup, "crop": crop, "minutes": (time.time() - t0) / 60,
            "psnr_decode_mu": psnr(vae.decode(mu).sample, x),
            "psnr_decode_shuffled_mu": psnr(vae.decode(mu[torch.randperm(len(mu), generator=gen)]).sample, x),
            "psnr_decode_zeros": psnr(vae.decode(torch.zeros_like(mu)).sample, x),
            "mu_std": mu.std().item(), "posterior_std_mean": post.std.mean().item(),
        }  # fmt: skip


def overfit(steps: int, lr: float, size: int = 64, threads: int = 2, warmup: int = 100, mse_weight: float = 0.05) -> dict:
    """Memorise two world frames (scenes 7 and 8 at ``size`` px) with a fresh VAE; PSNR of mu and of zeros."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    _, r = render_clips(range(7, 9), (size,), workers=1, progress=False)
    x = torch.from_numpy(r[size][:, :1]).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)  # [2, 3, 1, S, S]
    vae = build_vae().train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    t0, log = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup)
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        loss = F.l1_loss(rec, x) + mse_weight * F.mse_loss(rec, x)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        log.append(loss.item())
    vae.eval()
    with torch.no_grad():
        mu = vae.encode(x).latent_dist.mean
        return {"steps": steps, "lr": lr, "mse_weight": mse_weight, "warmup": warmup, "size": size, "final_loss": log[-1],
                "psnr_decode_mu": psnr(vae.decode(mu).sample, x),
                "psnr_decode_zeros": psnr(vae.decode(torch.zeros_like(mu)).sample, x),
                "minutes": (time.time() - t0) / 60}  # fmt: skip


@torch.no_grad()
def per_frame_psnr(vae_dir: str, clips: int = 8, size: int = 128) -> list[float]:
    """PSNR (dB) per frame of a saved VAE's reconstructions of held-out 17-frame world clips."""
    import math

    from diffusers import AutoencoderKLWan

    from .train_vae import _to_float

    _, r = render_clips(range(5_000_000, 5_000_000 + clips), (size,), workers=1, progress=False)
    x = _to_float(torch.from_numpy(r[size]))
    vae = AutoencoderKLWan.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    mse = ((rec - x) ** 2).mean(dim=(0, 1, 3, 4))
    return [10 * math.log10(4.0 / max(m.item(), 1e-12)) for m in mse]


def _pop_option(argv: list[str], name: str, cast, default):
    """Remove ``--name VALUE`` from ``argv`` and return ``cast(VALUE)`` (``default`` when absent)."""
    if f"--{name}" not in argv:
        return default
    i = argv.index(f"--{name}")
    value = cast(argv[i + 1])
    del argv[i : i + 2]
    return value


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["overfit"]:  # python -m surf_video.mini.vae_probe overfit STEPS LR [LR ...] [--mse-weight W]
        w = _pop_option(argv, "mse-weight", float, 0.05)
        for lr in argv[2:]:
            print(json.dumps(overfit(int(argv[1]), float(lr), mse_weight=w)), flush=True)
        return 0
    if argv[:1] == ["per-frame"]:  # python -m surf_video.mini.vae_probe per-frame VAE_DIR
        print(json.dumps({"vae": argv[1], "psnr_per_frame": [round(v, 2) for v in per_frame_psnr(argv[1])]}))
        return 0
    opts = {name: _pop_option(argv, name, int, default) for name, default in (("crop", 16), ("warmup", 0))}
    if len(argv) < 2:
        raise SystemExit(f"usage: python -m surf_video.mini.vae_probe {{{','.join(MODES)}}} STEPS [LR] [--crop N] [--warmup N]")
    print(json.dumps(probe(argv[0], int(argv[1]), float(argv[2]) if len(argv) > 2 else 1e-3, **opts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
