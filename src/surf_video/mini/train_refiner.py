"""Train the SURF-Mini Refiner (``RefinerTransformer3DModel``) by flow mapping on world pairs.

Pairs come from the same scene rendered at the preview size (R/2 = 64 px) and at a target size
(1.5R = 192 px or 2.25R = 288 px), both through the SURF-Mini VAE, in the base transformer's
normalised latent space. The LR latent is, at random, the encoding of the 64 px render (what a
preview looks like) or an area-downscale of the HR latent to the preview's latent size; it is then
upsampled to the target latent size (trilinear, frames unchanged) and degraded with latent noise
of a random strength. Flow mapping: ``z_t = (1 - t) z_hr + t z_lr``, target ``v = z_lr - z_hr``,
timestep ``t * 1000`` (:mod:`surf_video.core.flow_map`). Text conditioning is the frozen SURF-Mini
text encoder's caption embedding (dropped to the empty caption 10% of the time).
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from surf_video.core.backproject import back_project
from surf_video.core.flow_map import upsample_latent
from surf_video.train.parts import refine

from .build import build_refiner
from .config import MAX_SEQUENCE_LENGTH, PREVIEW_SIZE, TARGET_SIZES, MiniConfig
from .data import render_clips
from .recipe import RefinerRecipe, atomic_save_dir, wallclock_decay
from .train_base import text_embeddings
from .train_vae import encode_latents

__all__ = ["train_refiner", "refine_latents", "ssim", "vsr_eval", "decode_latents", "VSR_SEED_BASE"]

VSR_SEED_BASE = 6_000_000  # world seeds of the held-out super-resolution clips (training uses 0..num_clips)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (11x11 Gaussian window, sigma 1.5) of images in [0, 1], ``[N, C, H, W]``."""
    k = torch.arange(11, dtype=torch.float32, device=a.device) - 5
    g = torch.exp(-(k**2) / (2 * 1.5**2))
    g = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    c = a.shape[1]
    w = g.expand(c, 1, 11, 11)

    def filt(x):
        return F.conv2d(x, w, groups=c)

    a, b = a.float(), b.float()
    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def _psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.float(), b.float()).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def decode_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[B, C, F, h, w]`` -> video in [0, 1], ``[B, 3, T, H, W]`` (float32)."""
    mean = torch.tensor(vae.config.latents_mean, device=z.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=z.device).view(1, -1, 1, 1, 1)
    x = vae.decode((z.float() * std + mean).to(vae.dtype)).sample
    return x.float().clamp(-1, 1).add(1).div(2)


@torch.no_grad()
def refine_latents(refiner, z_lr_small: torch.Tensor, size: tuple[int, int], text_emb: torch.Tensor, steps: int = 10):
    """Upsample preview latents to ``size`` (latent pixels) and flow-map them with the refiner."""
    return refine(refiner, upsample_latent(z_lr_small.float(), size), text_emb, num_steps=steps)


def _to01(v_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, T, H, W, 3] -> float [N*T, 3, H, W] in [0, 1]."""
    return v_u8.permute(0, 1, 4, 2, 3).flatten(0, 1).float() / 255


@torch.no_grad()
def vsr_eval(refiner, vae, text_encoder, tokenizer, seeds, steps: int = 10) -> dict:
    """Refiner as video super-resolution on held-out clips, against bicubic upsampling of the LR render.

    LR = the 64 px render, encoded by the VAE; the refiner output is decoded and compared with the HR
    render (PSNR in dB, SSIM), as is the bicubic upsampling of the 64 px render. Two more rows say
    where the refiner stands in latent space: ``latent_upsample`` decodes its input (the upsampled LR
    latent, what it starts from) and ``vae_roundtrip`` decodes the encoded HR render itself, the
    ceiling of any method that ends in this VAE's decoder. ``decoded_bicubic`` decodes the 64 px latent
    at 64 px and upsamples the pixels bicubically: the alternative to the refiner for a SURF preview,
    which exists only as a latent. ``refiner_backproj`` and ``bicubic_backproj`` pull the refiner's and
    bicubic's frames towards the 64 px render (:func:`surf_video.core.back_project`, 3 iterations): what
    ``surf upscale --back-projection 3`` does when the low-resolution pixels exist;
    ``vae_roundtrip_backproj`` is the ceiling of that (the HR render's round trip, back-projected).
    """
    dev = next(refiner.parameters()).device
    seeds = list(seeds)
    caps, vids = render_clips(seeds, (PREVIEW_SIZE,) + tuple(TARGET_SIZES), progress=False)
    lr_u8 = torch.from_numpy(vids[PREVIEW_SIZE])
    z_small = encode_latents(vae, lr_u8.to(dev)).to(dev)
    tok = tokenizer(caps, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True, return_tensors="pt")
    emb = text_embeddings(text_encoder, tok.input_ids.to(dev), tok.attention_mask.to(dev), MAX_SEQUENCE_LENGTH)
    res = {"n_clips": len(seeds), "steps": steps}
    lr_dec = torch.cat([decode_latents(vae, z_small[i : i + 8]) for i in range(0, len(seeds), 8)])
    lr_dec = lr_dec.permute(0, 2, 1, 3, 4).flatten(0, 1)  # [N*T, 3, 64, 64] in [0, 1]
    lr = _to01(lr_u8).to(dev)  # the 64 px render, the same for both target sizes
    for size in TARGET_SIZES:
        hr = _to01(torch.from_numpy(vids[size])).to(dev)
        bic = F.interpolate(lr, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        dec_bic = F.interpolate(lr_dec, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        z_hr = encode_latents(vae, torch.from_numpy(vids[size]).to(dev)).to(dev)
        lat = (size // 8, size // 8)

        def frames(z):  # decoded latents as [N*T, 3, H, W] in [0, 1], like _to01
            return decode_latents(vae, z).permute(0, 2, 1, 3, 4).flatten(0, 1)

        out, up, rt = [], [], []
        for i in range(0, len(seeds), 8):
            out.append(frames(refine_latents(refiner, z_small[i : i + 8], lat, emb[i : i + 8], steps)))
            up.append(frames(upsample_latent(z_small[i : i + 8].float(), lat)))
            rt.append(frames(z_hr[i : i + 8]))
        row, out, rt = {}, torch.cat(out), torch.cat(rt)
        for name, v in (("refiner", out), ("bicubic", bic), ("latent_upsample", torch.cat(up)),
                        ("vae_roundtrip", rt), ("decoded_bicubic", dec_bic),
                        ("refiner_backproj", back_project(out, lr)), ("bicubic_backproj", back_project(bic, lr)),
                        ("vae_roundtrip_backproj", back_project(rt, lr))):  # fmt: skip
            row[f"{name}_psnr"], row[f"{name}_ssim"] = _psnr01(v, hr), ssim(v, hr)
        res[str(size)] = row
    return res


def train_refiner(recipe: RefinerRecipe, pipe_dir: str | Path, out_dir: str | Path, resume: str | Path | None = None,
                  device: str = "cuda", eval_clips: int = 32) -> dict:  # fmt: skip
    """Train the refiner against the SURF-Mini VAE/text encoder in ``pipe_dir``; save to ``out_dir``."""
    from diffusers import AutoencoderKLWan
    from transformers import PreTrainedTokenizerFast, UMT5EncoderModel

    from surf_video.models.refiner import RefinerTransformer3DModel

    torch.manual_seed(recipe.seed)
    dev = torch.device(device)
    pipe_dir = Path(pipe_dir)
    vae = AutoencoderKLWan.from_pretrained(pipe_dir / "vae", torch_dtype=torch.float32).to(dev).eval().requires_grad_(False)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(pipe_dir / "tokenizer")
    te = UMT5EncoderModel.from_pretrained(pipe_dir / "text_encoder", dtype=torch.float32).to(dev).eval().requires_grad_(False)
    cfg = MiniConfig()
    if resume:
        refiner = RefinerTransformer3DModel.from_pretrained(resume, torch_dtype=torch.float32)
    else:
        refiner = build_refiner(cfg.refiner, z_dim=vae.config.z_dim, text_dim=te.config.d_model)
    refiner.to(dev).train()
    ema = copy.deepcopy(refiner).eval().requires_grad_(False)

    t_start = time.time()
    seeds = range(5_000_000, 5_000_000 + recipe.num_clips)
    caps, vids = render_clips(seeds, (PREVIEW_SIZE,) + tuple(TARGET_SIZES))
    lat = {s: encode_latents(vae, torch.from_numpy(v).to(dev), batch=32).to(dev) for s, v in vids.items()}
    del vids
    tok = tokenizer(caps, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True, return_tensors="pt")
    with torch.no_grad():
        emb_all = text_embeddings(te, tok.input_ids.to(dev), tok.attention_mask.to(dev), MAX_SEQUENCE_LENGTH)
        e = tokenizer([""], padding="max_length", max_length=MAX_SEQUENCE_LENGTH, return_tensors="pt")
        emb_empty = text_embeddings(te, e.input_ids.to(dev), e.attention_mask.to(dev), MAX_SEQUENCE_LENGTH)
    print(f"refiner data ready: {len(caps)} clips, {time.time() - t_start:.0f}s", flush=True)

    opt = torch.optim.AdamW(refiner.parameters(), lr=recipe.lr, weight_decay=0.01, betas=(0.9, 0.99))
    gen = torch.Generator(device=dev).manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    small = lat[PREVIEW_SIZE].shape[-2:]
    hist, step, t0 = [], 0, time.time()
    while step < recipe.max_steps and (time.time() - t0) < recipe.max_minutes * 60:
        size = int(rng.choice(TARGET_SIZES))
        bs = recipe.batch_size if size == TARGET_SIZES[0] else recipe.batch_size // 2
        idx = torch.randint(0, recipe.num_clips, (bs,), device=dev, generator=gen)
        z_hr = lat[size][idx].float()
        z_pre = lat[PREVIEW_SIZE][idx].float()
        pooled = F.adaptive_avg_pool3d(z_hr, (z_hr.shape[2], *small))
        pick = (torch.rand(bs, device=dev, generator=gen) < 0.6).view(-1, 1, 1, 1, 1)
        z_lr = upsample_latent(torch.where(pick, z_pre, pooled), tuple(z_hr.shape[-2:]))
        sn = torch.rand(bs, device=dev, generator=gen).view(-1, 1, 1, 1, 1) * recipe.latent_noise
        z_lr = z_lr + sn * torch.randn(z_lr.shape, device=dev, generator=gen)
        t = torch.rand(bs, device=dev, generator=gen)
        zt = (1 - t.view(-1, 1, 1, 1, 1)) * z_hr + t.view(-1, 1, 1, 1, 1) * z_lr
        drop = (torch.rand(bs, device=dev, generator=gen) < 0.1).view(-1, 1, 1)
        emb = torch.where(drop, emb_empty, emb_all[idx])
        for g in opt.param_groups:
            g["lr"] = recipe.lr * min(1.0, (step + 1) / 100) * wallclock_decay(
                time.time() - t0, recipe.max_minutes * 60, recipe.lr_decay_frac)  # fmt: skip
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            pred = refiner(hidden_states=zt, timestep=t * 1000, encoder_hidden_states=emb, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), z_lr - z_hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            d = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), refiner.parameters()):
                pe.lerp_(pm.detach(), 1 - d)
        hist.append(loss.item() if step % 10 == 0 else None)
        if step % recipe.log_every == 0:
            recent = [h for h in hist[-recipe.log_every :] if h is not None]
            print(f"refiner step {step} loss {np.mean(recent):.4f} {time.time() - t0:.0f}s", flush=True)
    metrics = {
        "steps": step,
        "train_minutes": (time.time() - t0) / 60,
        "final_loss": float(np.mean([h for h in hist[-500:] if h is not None])),
    }
    atomic_save_dir(out_dir, lambda d: ema.save_pretrained(d, safe_serialization=True))
    if eval_clips:
        metrics["vsr"] = vsr_eval(ema, vae, te, tokenizer, range(VSR_SEED_BASE, VSR_SEED_BASE + eval_clips))
        print("vsr", metrics["vsr"], flush=True)
    return metrics
