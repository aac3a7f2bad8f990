"""Train the SURF-Mini VAE (``AutoencoderKLWan``) on world clips.

Data: clips rendered at R (128 px) and random R-sized crops of clips rendered at 2.25R (288 px),
so the VAE sees the sharper, larger objects of the target sizes too. Loss: L1 reconstruction plus a
weak KL term. At the end the per-channel mean / std of the posterior means are written into the
config (``latents_mean`` / ``latents_std``), which is how ``WanPipeline`` de-normalises latents.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .build import build_vae
from .config import OPTIMAL_SIZE, TARGET_SIZES
from .data import EVAL_SEED_BASE, render_clips, render_clips_cached
from .recipe import VAERecipe, atomic_save_dir, wallclock_decay

__all__ = ["train_vae", "encode_latents", "latent_stats", "psnr", "recon_adherence"]


def _to_float(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] in [-1, 1]."""
    return x_u8.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two tensors in [-1, 1]."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float().clamp(-1, 1)).item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


@torch.no_grad()
def encode_latents(vae, videos_u8: torch.Tensor, batch: int = 32, normalize: bool = True) -> torch.Tensor:
    """Encode uint8 videos ``[N, T, H, W, 3]`` to posterior means ``[N, z, T', H/8, W/8]`` (float32, CPU).

    With ``normalize`` the result is ``(mu - latents_mean) / latents_std``, the space the transformer
    works in.
    """
    dev = next(vae.parameters()).device
    zs = []
    for i in range(0, len(videos_u8), batch):
        x = _to_float(videos_u8[i : i + batch].to(dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            mu = vae.encode(x).latent_dist.mean
        zs.append(mu.float().cpu())
    z = torch.cat(zs)
    if normalize:
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        z = (z - mean) / std
    return z


def latent_stats(z: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of latents ``[N, C, T, H, W]``."""
    flat = z.transpose(0, 1).reshape(z.shape[1], -1).double()
    return flat.mean(1).tolist(), flat.std(1).clamp_min(1e-3).tolist()


def _crop(data, idx, s, frames, gen):
    """Random ``s`` x ``s`` window of ``frames`` frames of clips ``data[idx]`` (uint8 [B, T, H, W, 3])."""
    size, t_all = data.shape[2], data.shape[1]
    oy, ox = torch.randint(0, size - s + 1, (2,), generator=gen).tolist()
    ot = int(torch.randint(0, t_all - frames + 1, (1,), generator=gen))
    return data[idx, ot : ot + frames, oy : oy + s, ox : ox + s]


def _batch(data_r, data_hr, bs, gen, dev, crop: int = 0, frames: int = 17):
    """Half R clips, half crops of 2.25R clips (crop x crop windows when crop > 0), random flips."""
    n_hr = bs // 2 if data_hr is not None else 0
    s = crop or data_r.shape[2]
    idx = torch.randint(0, len(data_r), (bs - n_hr,), generator=gen)
    parts = [_crop(data_r, idx, s, frames, gen)]
    if n_hr:
        j = torch.randint(0, len(data_hr), (n_hr,), generator=gen)
        parts.append(_crop(data_hr, j, s, frames, gen))
    x = _to_float(torch.cat(parts).to(dev, non_blocking=True))
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(-1)
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(-2)
    return x


def train_vae(recipe: VAERecipe, out_dir: str | Path, resume: str | Path | None = None, device: str = "cuda") -> dict:
    """Train (or continue training) the VAE; save it with diffusers' layout to ``out_dir``.

    Returns:
        metrics dict: steps, minutes, final losses, held-out PSNR at R and at 2.25R.
    """
    from diffusers import AutoencoderKLWan

    torch.manual_seed(recipe.seed)
    dev = torch.device(device)
    hr = TARGET_SIZES[-1]
    if recipe.device_threads:
        torch.set_num_threads(recipe.device_threads)
    if (recipe.frames - 1) % 4 or not 1 <= recipe.frames <= 17:
        raise ValueError(f"frames must be 1 + 4k in 1..17, got {recipe.frames}")
    if not 0.0 <= recipe.image_fraction <= 1.0:
        raise ValueError(f"image_fraction must be in [0, 1], got {recipe.image_fraction}")
    n_held = 64 if dev.type == "cuda" else 4
    rs, cache = recipe.data_size, recipe.data_cache or None
    _, r = render_clips_cached(range(recipe.num_clips + n_held), (rs,), cache)
    _, h = render_clips_cached(range(2_000_000, 2_000_000 + recipe.num_clips_hr + n_held // 4), (hr,), cache)
    data_r = torch.from_numpy(np.array(r[rs][:-n_held])).to(dev)
    held_r = torch.from_numpy(np.array(r[rs][-n_held:]))
    data_hr = torch.from_numpy(np.array(h[hr][: -(n_held // 4)])).to(dev)
    held_hr = torch.from_numpy(np.array(h[hr][-(n_held // 4) :]))
    vae = AutoencoderKLWan.from_pretrained(resume, torch_dtype=torch.float32) if resume else build_vae()
    vae.to(dev).train()
    if not recipe.train_encoder:
        if not resume:
            raise ValueError("train_encoder=False fine-tunes the decoder of a trained VAE: pass --resume")
        for module in (vae.encoder, vae.quant_conv):
            module.requires_grad_(False)
    params = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(recipe.seed)
    t0, step, hist, budget = time.time(), 0, [], recipe.max_minutes * 60
    img_bs = recipe.image_batch_size or 4 * recipe.batch_size
    while step < recipe.max_steps and (time.time() - t0) < budget:
        image = torch.rand(1, generator=gen).item() < recipe.image_fraction
        x = _batch(data_r, data_hr, img_bs if image else recipe.batch_size, gen, dev, recipe.crop, 1 if image else recipe.frames)
        warm = min(1.0, (step + 1) / max(recipe.warmup_steps, 1))
        lr = recipe.lr * warm * wallclock_decay(time.time() - t0, budget, recipe.lr_decay_frac)
        for g in opt.param_groups:
            g["lr"] = lr
        # A deterministic autoencoder with latent-noise augmentation: sampling the posterior at its
        # initial std (~1) drowns the small means and the decoder learns to ignore z (posterior
        # collapse, seen in the first GPU run). WanPipeline only ever decodes, and latents are
        # normalised with the measured per-channel mean / std, so the KL prior is not needed.
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            mu = vae.encode(x).latent_dist.mean
            z = mu + recipe.latent_noise * mu.detach().std() * torch.randn_like(mu)
            rec = vae.decode(z).sample
        rec_loss = F.l1_loss(rec.float(), x)
        kl = (mu.float() ** 2).mean()
        loss = rec_loss + recipe.mse_weight * F.mse_loss(rec.float(), x) + recipe.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        hist.append((rec_loss.item(), kl.item(), image))
        if step % recipe.log_every == 0:
            recent = hist[-recipe.log_every :]
            l1v = [h[0] for h in recent if not h[2]] or [float("nan")]
            l1i = [h[0] for h in recent if h[2]] or [float("nan")]
            kk = np.mean([h[1] for h in recent])
            print(f"vae step {step} l1 clips {np.mean(l1v):.4f} images {np.mean(l1i):.4f} kl {kk:.3f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
    vae.eval()
    if recipe.train_encoder:  # latent statistics (with the identity normalisation the model was built with)
        vae.register_to_config(latents_mean=[0.0] * vae.config.z_dim, latents_std=[1.0] * vae.config.z_dim)
        mu = encode_latents(vae, data_r[:512], normalize=False)
        mean, std = latent_stats(mu)
        vae.register_to_config(latents_mean=mean, latents_std=std)
    else:  # the encoder did not change: the latent space (and its normalisation) is the resumed one
        mean, std = list(vae.config.latents_mean), list(vae.config.latents_std)
    metrics = {
        "steps": step,
        "minutes": (time.time() - t0) / 60,
        "image_steps": sum(h[2] for h in hist),
        "final_l1": float(np.mean([h[0] for h in hist[-200:] if not h[2]] or [float("nan")])),  # clip steps only
        "final_kl": float(np.mean([h[1] for h in hist[-100:]])),
        "psnr_heldout_128": _heldout_psnr(vae, held_r, dev),
        "psnr_heldout_288": _heldout_psnr(vae, held_hr, dev),
        # the collapse check: a decoder that ignores z scores the same on zeros as on the real latents
        "psnr_heldout_128_decode_zeros": _heldout_psnr(vae, held_r, dev, zeros=True),
        # the world evaluator on VAE round trips of the base's evaluation scenes: a ceiling on the
        # prompt adherence any base trained in this latent space can reach
        "evaluator_on_reconstructions": recon_adherence(vae, 32 if dev.type == "cuda" else 4),
        "latents_mean": mean,
        "latents_std": std,
    }
    atomic_save_dir(out_dir, lambda d: vae.save_pretrained(d, safe_serialization=True))
    return metrics


@torch.no_grad()
def recon_adherence(vae, n: int = 32, size: int = OPTIMAL_SIZE) -> dict:
    """World-evaluator scores of VAE round trips (encode, decode the mean) of evaluation scenes.

    The scenes are the base's fixed evaluation prompts (``EVAL_SEED_BASE + i``) rendered at ``size``.
    A base can only be scored right where the decoder can draw the scene, so this bounds adherence.

    Returns:
        ``{"n", "all_correct", "color", "count", "shape", "motion"}`` as fractions of the ``n`` scenes.
    """
    from .train_base import adherence  # the base's own scoring (train_base imports this module)

    dev = next(vae.parameters()).device
    caps, r = render_clips(range(EVAL_SEED_BASE, EVAL_SEED_BASE + n), (size,), progress=False)
    vids = []
    for i in range(0, n, 8):
        x = _to_float(torch.from_numpy(r[size][i : i + 8]).to(dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        vids.append(((rec.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy())
    res = adherence(np.concatenate(vids), caps)
    return {k: res[k] for k in ("n", "all_correct", "color", "count", "shape", "motion")}


@torch.no_grad()
def _heldout_psnr(vae, videos_u8, dev, batch: int = 8, zeros: bool = False) -> float:
    vals = []
    for i in range(0, len(videos_u8), batch):
        x = _to_float(videos_u8[i : i + batch].to(dev))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            mu = vae.encode(x).latent_dist.mean
            rec = vae.decode(torch.zeros_like(mu) if zeros else mu).sample
        vals.append(psnr(rec, x))
    return float(np.mean(vals))
