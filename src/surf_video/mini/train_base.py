"""Train the SURF-Mini base (``WanTransformer3DModel`` + its ``UMT5EncoderModel``) with flow matching.

Recipe (Wan 2.1 style): ``z_t = (1 - s) x0 + s eps``, target ``v = eps - x0``, sigmas drawn uniformly
and shifted (``s = shift u / (1 + (shift - 1) u)``), timestep ``s * 1000``. Captions are dropped to
the empty prompt with probability ``caption_dropout`` (what ``WanPipeline`` feeds the unconditional
branch of classifier-free guidance). The text encoder is trained jointly; its outputs are zeroed
past the caption and zero-padded exactly as ``WanPipeline._get_t5_prompt_embeds`` does, at a pad
length drawn from ``pad_lengths`` (so any ``max_sequence_length`` in that set works at inference).
Most steps run at R = 128 px, a share ``hr_fraction`` at 1.5R = 192 px. An EMA of both trained
modules is what gets saved.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .build import build_scheduler, build_text_encoder, build_tokenizer, build_transformer, deepen_transformer
from .config import GUIDANCE_SCALE, MAX_SEQUENCE_LENGTH, NUM_FRAMES, OPTIMAL_SIZE, TARGET_SIZES, MiniConfig
from .data import EVAL_SEED_BASE, eval_captions, render_clips
from .recipe import BaseRecipe, atomic_save_dir, wallclock_decay
from .train_vae import encode_latents

__all__ = ["train_base", "text_embeddings", "render_and_encode", "generate_eval", "adherence"]


def text_embeddings(text_encoder, ids: torch.Tensor, mask: torch.Tensor, pad_len: int) -> torch.Tensor:
    """UMT5 states zeroed past each caption and zero-padded to ``pad_len`` (``[B, pad_len, D]``)."""
    h = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    h = h * mask[..., None].to(h.dtype)
    if pad_len > h.shape[1]:
        h = F.pad(h, (0, 0, 0, pad_len - h.shape[1]))
    return h


def render_and_encode(vae, seeds, size: int, chunk: int = 4096) -> tuple[list[str], torch.Tensor]:
    """Render clips of ``seeds`` at ``size`` in chunks and keep only normalised latents (CPU, fp16)."""
    seeds = list(seeds)
    caps, lats = [], []
    dev = next(vae.parameters()).device
    for i in range(0, len(seeds), chunk):
        c, v = render_clips(seeds[i : i + chunk], (size,))
        caps += c
        lats.append(encode_latents(vae, torch.from_numpy(v[size]).to(dev), batch=128).half())
    return caps, torch.cat(lats)


@torch.no_grad()
def generate_eval(pipe, captions, size: int, seeds, steps: int = 40, guidance: float = GUIDANCE_SCALE,
                  batch: int = 50):
    """Generate one clip per caption with ``WanPipeline`` (seed i for caption i); uint8 ``[N, T, S, S, 3]``."""
    out = []
    for i in range(0, len(captions), batch):
        # CPU generators: the same seed gives the same initial noise on any device.
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i : i + batch]]
        frames = pipe(
            prompt=list(captions[i : i + batch]),
            height=size,
            width=size,
            num_frames=NUM_FRAMES,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gens,
            output_type="np",
            max_sequence_length=MAX_SEQUENCE_LENGTH,
        ).frames
        out.append((np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8))
    return np.concatenate(out)


def adherence(videos: np.ndarray, captions) -> dict:
    """World-evaluator prompt adherence: share of clips with all attributes right, and per attribute."""
    import multiprocessing as mp
    import os

    jobs = list(zip(videos, captions))
    workers = min(len(jobs), os.cpu_count() or 1, 16)
    if workers > 2:  # the evaluator is numpy, ~0.1-0.5 s a clip: spread it over the cores
        with mp.get_context("fork").Pool(workers) as pool:
            reports = pool.map(_evaluate_one, jobs, chunksize=2)
    else:
        reports = [_evaluate_one(j) for j in jobs]
    res = {"n": len(reports), "all_correct": float(np.mean([bool(r["all_correct"]) for r in reports]))}
    keys = [k for k, v in reports[0].items() if k != "all_correct" and isinstance(v, (bool, np.bool_))]
    for k in keys:
        res[k] = float(np.mean([bool(r[k]) for r in reports]))
    return res


def _evaluate_one(job) -> dict:
    from surf_video.world import evaluate_video

    r = evaluate_video(*job)
    return {k: bool(v) for k, v in r.items() if isinstance(v, (bool, np.bool_))}


def _ema_update(ema, model, decay):
    # one fused kernel per dtype group instead of one per parameter: the small model's steps are launch-bound
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)


def _make_pipe(tokenizer, text_encoder, vae, transformer):
    from diffusers import WanPipeline

    return WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=build_scheduler()
    )


def train_base(recipe: BaseRecipe, vae_dir: str | Path, out_dir: str | Path, resume: str | Path | None = None,
               device: str = "cuda", final_eval: int = 100) -> dict:  # fmt: skip
    """Train the base; save the whole ``WanPipeline`` (EMA weights) to ``out_dir``; return metrics."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import PreTrainedTokenizerFast, UMT5EncoderModel

    torch.manual_seed(recipe.seed)
    dev = torch.device(device)
    t_start = time.time()
    vae = AutoencoderKLWan.from_pretrained(vae_dir, torch_dtype=torch.float32).to(dev).eval().requires_grad_(False)
    cfg = MiniConfig()
    if resume:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(Path(resume) / "tokenizer")
        text_encoder = UMT5EncoderModel.from_pretrained(Path(resume) / "text_encoder", dtype=torch.float32)
        transformer = WanTransformer3DModel.from_pretrained(Path(resume) / "transformer", torch_dtype=torch.float32)
    else:
        tokenizer = build_tokenizer()
        text_encoder = build_text_encoder(len(tokenizer), cfg.text_encoder)
        transformer = build_transformer(cfg.transformer, z_dim=vae.config.z_dim, text_dim=cfg.text_encoder.d_model)
    if recipe.grow_layers and recipe.grow_layers < transformer.config.num_layers:
        raise ValueError(f"grow_layers must be >= the transformer's {transformer.config.num_layers} blocks (or 0: "
                         f"keep them), got {recipe.grow_layers}")  # fmt: skip
    if recipe.grow_layers and recipe.grow_layers != transformer.config.num_layers:
        print(f"deepening the transformer: {transformer.config.num_layers} -> {recipe.grow_layers} blocks", flush=True)
        transformer = deepen_transformer(transformer, recipe.grow_layers)
    # text_lr 0 freezes the text encoder: a refiner trained beside this run against the same encoder stays valid
    text_encoder.to(dev).train().requires_grad_(recipe.text_lr > 0)
    transformer.to(dev).train()
    ema_te = copy.deepcopy(text_encoder).eval().requires_grad_(False)
    ema_tr = copy.deepcopy(transformer).eval().requires_grad_(False)

    r, hr = OPTIMAL_SIZE, TARGET_SIZES[0]
    caps_r, lat_r = render_and_encode(vae, range(recipe.num_clips), r)
    caps_h, lat_h = render_and_encode(vae, range(3_000_000, 3_000_000 + recipe.num_clips_hr), hr)
    print(f"data ready: {len(caps_r)} clips at {r}, {len(caps_h)} at {hr}, {time.time() - t_start:.0f}s", flush=True)
    sets = []
    for caps, lat in ((caps_r, lat_r), (caps_h, lat_h)):
        tok = tokenizer(caps, padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True, return_tensors="pt")
        sets.append((lat.to(dev), tok.input_ids.to(dev), tok.attention_mask.to(dev)))
    empty = tokenizer([""], padding="max_length", max_length=MAX_SEQUENCE_LENGTH, return_tensors="pt")
    empty_ids, empty_mask = empty.input_ids.to(dev), empty.attention_mask.to(dev)

    params = [
        {"params": list(transformer.parameters()), "lr": recipe.lr},
        {"params": list(text_encoder.parameters()), "lr": recipe.text_lr},
    ]
    opt = torch.optim.AdamW(params, weight_decay=recipe.weight_decay, betas=(0.9, 0.99), fused=dev.type == "cuda")
    gen = torch.Generator(device=dev).manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    eval_caps = eval_captions(recipe.eval_prompts)
    evals, hist, step, t0 = [], [], 0, time.time()
    while step < recipe.max_steps and (time.time() - t0) < recipe.max_minutes * 60:
        use_hr = rng.random() < recipe.hr_fraction
        lat, ids_all, mask_all = sets[1] if use_hr else sets[0]
        bs = recipe.batch_size_hr if use_hr else recipe.batch_size
        idx = torch.randint(0, len(lat), (bs,), device=dev, generator=gen)
        x0 = lat[idx].float()
        ids, mask = ids_all[idx], mask_all[idx]
        drop = torch.rand(bs, device=dev, generator=gen) < recipe.caption_dropout
        ids = torch.where(drop[:, None], empty_ids, ids)
        mask = torch.where(drop[:, None], empty_mask, mask)
        u = torch.rand(bs, device=dev, generator=gen)
        s = recipe.flow_shift * u / (1 + (recipe.flow_shift - 1) * u)
        eps = torch.randn(x0.shape, device=dev, generator=gen)
        zt = (1 - s.view(-1, 1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1, 1) * eps
        pad_len = int(rng.choice(recipe.pad_lengths))
        factor = min(1.0, (step + 1) / recipe.warmup_steps) * wallclock_decay(
            time.time() - t0, recipe.max_minutes * 60, recipe.lr_decay_frac)  # fmt: skip
        for i, g in enumerate(opt.param_groups):
            g["lr"] = (recipe.lr, recipe.text_lr)[i] * factor
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            emb = text_embeddings(text_encoder, ids, mask, pad_len)
            pred = transformer(hidden_states=zt, timestep=s * 1000, encoder_hidden_states=emb, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(recipe.ema_decay, (1 + step) / (10 + step))
        _ema_update(ema_tr, transformer, decay)
        if recipe.text_lr > 0:  # a frozen text encoder's EMA is itself
            _ema_update(ema_te, text_encoder, decay)
        hist.append(loss.item() if step % 10 == 0 else None)
        if step % recipe.log_every == 0:
            recent = [h for h in hist[-recipe.log_every :] if h is not None]
            print(f"base step {step} loss {np.mean(recent):.4f} {time.time() - t0:.0f}s", flush=True)
        if recipe.eval_every and step % recipe.eval_every == 0:
            pipe = _make_pipe(tokenizer, ema_te, vae, ema_tr)
            vids = generate_eval(pipe, eval_caps, r, range(len(eval_caps)), steps=20)
            ev = {"step": step, "minutes": (time.time() - t0) / 60, **adherence(vids, eval_caps)}
            evals.append(ev)
            print("eval", json.dumps(ev), flush=True)
    train_minutes = (time.time() - t0) / 60
    final_loss = float(np.mean([h for h in hist[-500:] if h is not None]))
    pipe = _make_pipe(tokenizer, ema_te, vae, ema_tr)
    metrics = {"steps": step, "train_minutes": train_minutes, "final_loss": final_loss, "evals": evals}
    atomic_save_dir(out_dir, lambda d: pipe.save_pretrained(d, safe_serialization=True))
    if final_eval:
        caps = eval_captions(final_eval)
        for size in (r, hr):
            vids = generate_eval(pipe, caps, size, [EVAL_SEED_BASE + i for i in range(len(caps))])
            metrics[f"adherence_{size}"] = adherence(vids, caps)
            print(f"final adherence at {size}:", json.dumps(metrics[f"adherence_{size}"]), flush=True)
    return metrics
